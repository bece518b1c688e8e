package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleTemp is the age after which a temporary file of the store is the
// remains of a copy that was interrupted (molt killed mid-copy).
const staleTemp = time.Minute

// PruneArtifacts deletes the files of the artifact store that no instance
// record of Dir names, whatever the instance's state (a dead instance not
// yet retired keeps its artifact), once they have been unused for
// Options.KeepArtifacts (an hour by default: a rollback soon after runs the
// same program), and the store's temporary files older than a minute. It
// returns how many files it deleted. A file in use has its modification
// time set to now, which is how "unused since" is kept across restarts.
//
// It waits for provisions in progress to record their instances (so it
// never deletes an artifact about to be run) and holds provisions back
// while it works. It never touches files of the store it did not name
// (anything but 64-hex-digit names and its temporary files). A process
// still running from a deleted file keeps running. When an instance
// directory cannot be read, PruneArtifacts deletes nothing and returns the
// error; a directory without a valid instance.json names nothing. ctx is
// looked at between files: when it ends, the prune stops and returns its
// error.
func (t *Target) PruneArtifacts(ctx context.Context) (removed int, err error) {
	t.store.Lock()
	defer t.store.Unlock()
	return t.prune(ctx, func(string) bool { return true }, t.keep)
}

// dropArtifact deletes the store file of digest unless an instance record
// names it: the undoing of a copy made by a provision that failed.
func (t *Target) dropArtifact(digest string) {
	t.store.Lock()
	defer t.store.Unlock()
	if _, err := t.prune(context.Background(), func(name string) bool { return name == digest }, 0); err != nil {
		t.log.Warn("cannot remove an executable stored for a failed provision", "sha256", digest, "err", err)
	}
}

// prune deletes the unused store files that match; the caller holds
// t.store.
func (t *Target) prune(ctx context.Context, match func(name string) bool, keep time.Duration) (int, error) {
	entries, err := os.ReadDir(t.artifactDir())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune artifacts: %w", err)
	}
	used, err := t.usedArtifacts(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune artifacts: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		name := e.Name()
		if used[name] {
			now := t.now()
			_ = os.Chtimes(t.artifactPath(name), now, now) // in use until now
			continue
		}
		if !match(name) || !t.unused(e, used) {
			continue
		}
		if fi, err := e.Info(); keep > 0 && validDigest(name) && (err != nil || t.now().Sub(fi.ModTime()) < keep) {
			continue // unused, but not for long enough
		}
		if err := t.removeArtifact(name); err != nil {
			return removed, fmt.Errorf("prune artifacts: %w", err)
		}
		removed++
		t.log.Info("removed unused executable from the store", "file", name)
	}
	return removed, nil
}

// unused reports whether the store entry e may go: an artifact that no
// record names, or a stale temporary file.
func (t *Target) unused(e fs.DirEntry, used map[string]bool) bool {
	name := e.Name()
	if strings.HasPrefix(name, artifactTemp) {
		fi, err := e.Info()
		return err == nil && t.now().Sub(fi.ModTime()) > staleTemp
	}
	return validDigest(name) && !used[name]
}

// usedArtifacts returns the digests that the instance records of Dir name.
func (t *Target) usedArtifacts(ctx context.Context) (map[string]bool, error) {
	entries, err := os.ReadDir(t.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	used := make(map[string]bool)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.IsDir() && strings.HasPrefix(e.Name(), stagePrefix) {
			// a provision in progress, or one a crash left for the sweep
			if in, err := readIntent(filepath.Join(t.dir, e.Name())); err == nil && in.Artifact != "" {
				used[in.Artifact] = true
			}
			continue
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue // hidden entries are retires in progress and kept logs
		}
		rec, err := readRecord(filepath.Join(t.dir, e.Name()))
		var pathErr *fs.PathError
		switch {
		case err == nil:
			if rec.Artifact != "" {
				used[rec.Artifact] = true
			}
		case errors.Is(err, fs.ErrNotExist):
			// not an instance
		case errors.As(err, &pathErr):
			return nil, err // unreadable: it may name anything
		default:
			// corrupt: not an instance, as List sees it
		}
	}
	return used, nil
}
