package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	// artifactAlgo names the store's only sub-directory: Artifacts/sha256/<hex>.
	artifactAlgo = "sha256"
	// artifactTemp prefixes the store's files being written.
	artifactTemp = ".tmp-"
	// artifactMode: store files are never written once in place.
	artifactMode = 0o555
)

// artifactDir is the directory of the store's files.
// errChanged says that the executable no longer has the digest wanted and
// the store has no copy of it.
var errChanged = errors.New("the executable does not have the planned digest")

func (t *Target) artifactDir() string {
	return filepath.Join(t.artifacts, artifactAlgo)
}

// artifactPath is the store file of digest (valid, lower case).
func (t *Target) artifactPath(digest string) string {
	return filepath.Join(t.artifactDir(), digest)
}

// stored reports whether the store holds a file with digest. A store file
// whose content does not match its name (damaged behind molt's back) does
// not count; it is hashed only when it changed since last looked at.
func (t *Target) stored(digest string) bool {
	got, err := t.digestOf(t.artifactPath(digest))
	return err == nil && got == digest
}

// ensureArtifact makes sure the store holds digest, copying it from the
// executable that name resolves to (as Resolve finds it) when it does not.
// It reports whether it added the file. The caller holds t.store for
// reading, so that no prune runs meanwhile.
//
// A copy whose content does not have digest (the file changed since it
// was resolved) is removed, and the error says so; it is not an invalid
// spec, as resolving again gives the file's new digest.
func (t *Target) ensureArtifact(ctx context.Context, digest, name string) (bool, error) {
	t.copyMu.Lock() // one copy at a time, so that no copy replaces a file in use
	defer t.copyMu.Unlock()
	if t.stored(digest) {
		return false, nil
	}
	exe, err := resolveExecutable(name)
	if err != nil {
		return false, err
	}
	if err := t.copyArtifact(ctx, digest, exe); err != nil {
		return false, fmt.Errorf("store executable %s: %w", exe, err)
	}
	t.log.Info("stored executable", "path", exe, "sha256", digest)
	return true, nil
}

// copyArtifact copies exe to the store file of digest: into a temporary
// file of the store directory, hashed as it is written, synced, made
// read-only, checked against digest, and only then renamed into place
// (and the directory synced, best effort). On error nothing is left of
// the copy. A
// cancelled ctx stops the copy.
func (t *Target) copyArtifact(ctx context.Context, digest, exe string) error {
	src, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer src.Close()
	dir := t.artifactDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, artifactTemp+"*")
	if err != nil {
		return err
	}
	got, err := copyHashed(ctx, tmp, src)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(artifactMode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && got != digest {
		err = fmt.Errorf("%w: it has sha256 %s now, not %s", errChanged, got, digest)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), t.artifactPath(digest))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	t.trust(t.artifactPath(digest), digest)
	if err := syncDir(dir); err != nil {
		t.log.Warn("cannot sync the artifact store", "dir", dir, "err", err)
	}
	return nil
}

// removeArtifact deletes the store file name (a digest or a temporary
// file). A file already gone is not an error.
func (t *Target) removeArtifact(name string) error {
	p := filepath.Join(t.artifactDir(), name)
	t.forgetDigest(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copyHashed copies src to dst and returns the hex SHA-256 of the bytes
// written. It stops when ctx is done.
func copyHashed(ctx context.Context, dst io.Writer, src io.Reader) (string, error) {
	h := sha256.New()
	w := io.MultiWriter(dst, h)
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return "", werr
			}
		}
		if errors.Is(err, io.EOF) {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}
