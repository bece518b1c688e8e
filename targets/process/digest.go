package process

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"
)

// racyWindow: a file changed less than this long before it was hashed is
// not cached, because a later change within the same timestamp tick (file
// systems keep coarse times) could leave its size, times and inode as
// they were. Git calls such entries "racily clean".
const racyWindow = 2 * time.Second

// fileKey identifies one content of one file as far as stat can tell: a
// rewrite, a rename over it, a chmod or a touch changes it.
type fileKey struct {
	size  int64
	mtime time.Time
	dev   uint64
	ino   uint64
	ctime time.Time
}

// keyOf returns the key of fi; ok is false where the platform has no inode
// and change time (then nothing is cached).
func keyOf(fi os.FileInfo) (fileKey, bool) {
	dev, ino, ctime, ok := inodeOf(fi)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{size: fi.Size(), mtime: fi.ModTime(), dev: dev, ino: ino, ctime: ctime}, true
}

// cachedDigest is the digest of the file at one path while its key holds.
type cachedDigest struct {
	key    fileKey
	digest string
}

// digestOf returns the lower-case hex SHA-256 of the file at the absolute
// path abs (symbolic links followed). It hashes the file only when the
// cache has no digest for its current key, and caches what it hashed
// unless the file changed while it was read or changed very lately.
func (t *Target) digestOf(abs string) (string, error) {
	if fi, err := os.Stat(abs); err == nil {
		if key, ok := keyOf(fi); ok {
			t.cacheMu.Lock()
			c, hit := t.digests[abs]
			t.cacheMu.Unlock()
			if hit && c.key == key {
				return c.digest, nil
			}
		}
	}
	start := t.now()
	f, err := os.Open(abs)
	if err != nil {
		return "", err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !before.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", abs)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", abs, err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	after, err := f.Stat()
	if err != nil {
		return "", err
	}
	t.remember(abs, before, after, start, digest)
	return digest, nil
}

// remember caches digest for abs when the file read is trustworthy: the
// same before and after the read, and not changed within racyWindow of
// the moment the read started.
func (t *Target) remember(abs string, before, after os.FileInfo, start time.Time, digest string) {
	kb, ok1 := keyOf(before)
	ka, ok2 := keyOf(after)
	if !ok1 || !ok2 || kb != ka {
		return
	}
	edge := start.Add(-racyWindow)
	if !kb.mtime.Before(edge) || !kb.ctime.Before(edge) {
		return
	}
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	t.digests[abs] = cachedDigest{key: kb, digest: digest}
}

// trust caches digest for the file abs as it is now, however lately it
// changed: for a store file just written, whose content was hashed as it
// was written and which nothing writes again.
func (t *Target) trust(abs, digest string) {
	fi, err := os.Stat(abs)
	if err != nil {
		return
	}
	key, ok := keyOf(fi)
	if !ok {
		return
	}
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	t.digests[abs] = cachedDigest{key: key, digest: digest}
}

// forgetDigest drops what the cache knows of abs (a store file removed).
func (t *Target) forgetDigest(abs string) {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	delete(t.digests, abs)
}

// validDigest reports whether s is a lower-case hex SHA-256, as the store
// names its files.
func validDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
