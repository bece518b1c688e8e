package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/molt-dev/molt/targets"
)

// tableFormat is the format of routes.json that this router writes and
// reads. Format 1 (no "format" field, one "services" table for the whole
// directory) predates fleets.
const tableFormat = 2

// tableFile is routes.json.
type tableFile struct {
	Format  int                        `json:"format"`
	Version int64                      `json:"version"`
	Fleets  map[string][]targets.Route `json:"fleets"`
}

// errUnreadable wraps the reason why a routes file cannot be used.
var errUnreadable = errors.New("unreadable routes file")

// readTable reads the persisted table. A missing file is an empty table. A
// file that cannot be read, does not parse, is of another format or holds
// an invalid table gives an error wrapping errUnreadable.
func readTable(path string) (Table, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return emptyTable(), nil
	}
	if err != nil {
		return Table{}, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return Table{}, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	if _, ok := keys["services"]; ok {
		return Table{}, fmt.Errorf("%w: a table of the format before fleets (\"services\")", errUnreadable)
	}
	var f tableFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Table{}, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	if f.Format != tableFormat {
		return Table{}, fmt.Errorf("%w: format %d, this router reads format %d", errUnreadable, f.Format, tableFormat)
	}
	t := Table{Version: f.Version, Fleets: make(map[string][]targets.Route, len(f.Fleets))}
	for fleet, routes := range f.Fleets {
		if len(routes) > 0 {
			t.Fleets[fleet] = sortedRoutes(routes)
		}
	}
	if err := checkTable(t); err != nil {
		return Table{}, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	return t, nil
}

// moveAside renames the file at path to path.unreadable-<unix seconds> and
// returns the new path.
func moveAside(path string, now time.Time) (string, error) {
	aside := fmt.Sprintf("%s.unreadable-%d", path, now.Unix())
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return aside, nil
}

// saveTable writes the table atomically: a temporary file in the same
// directory, fsynced, renamed over the old one, and the directory fsynced.
func saveTable(path string, t Table) error {
	data, err := json.MarshalIndent(tableFile{Format: tableFormat, Version: t.Version, Fleets: t.Fleets}, "", "  ")
	if err != nil {
		return fmt.Errorf("save routes: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".routes-*.tmp")
	if err != nil {
		return fmt.Errorf("save routes: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save routes: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save routes: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save routes: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save routes: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save routes: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
