package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// The reconciler's own records in the state directory (revisions.json,
// decisions.json) are JSON files that are only ever a cache of decisions:
// one that cannot be read is moved aside, with a warning, and started
// afresh, never a reason to stop; one is always replaced whole and
// atomically.

// readState decodes the record at path into v and reports whether v holds
// it: false, with a nil error, when there is none or when it could not be
// decoded (or valid, when given, refused it) and was moved aside. what
// names the record in errors and logs.
func readState(path, what string, log *slog.Logger, v any, valid func() bool) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if json.Unmarshal(b, v) == nil && (valid == nil || valid()) {
		return true, nil
	}
	aside := fmt.Sprintf("%s.unreadable-%d", path, time.Now().Unix())
	if err := os.Rename(path, aside); err != nil {
		// A directory that cannot be written: the record is unknown,
		// which means nothing failed; it is moved aside once it can be.
		log.Warn(what+" unreadable and cannot be moved aside: starting afresh", "path", path, "error", err)
		return false, nil
	}
	log.Warn(what+" unreadable: moved aside, starting afresh", "path", path, "moved-to", aside)
	return false, nil
}

// WriteReporter hears the outcome of a write of a state file: path is
// the file's, err nil when it was written. A record given one goes on
// from memory when its file cannot be written (a read-only or full state
// directory): the write is reported, not returned, and tried again at the
// record's next use, until it succeeds. It is called with the record's
// lock held: it must be quick and must not call the record.
type WriteReporter func(path string, err error)

// writeFunc writes a record (writeState; tests inject failures).
type writeFunc func(path, what string, v any) error

// writeState replaces the record at path with v: a temporary file in the
// same directory, fsynced, renamed over it.
func writeState(path, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}
