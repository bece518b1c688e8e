package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Failures is the record of failed rollouts under the state directory
// (failed.json): a revision that failed for a service is not tried again
// for that service until a new revision comes, or the record is cleared
// (`molt apply --retry`). Deleting the file is safe: the next apply tries
// the revision once more.
type Failures struct {
	path string
	mu   sync.Mutex
}

// Failure is one recorded failed rollout.
type Failure struct {
	Service  string    `json:"service"`
	Revision string    `json:"revision"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// NewFailures returns the record kept in dir/failed.json.
func NewFailures(dir string) *Failures {
	return &Failures{path: filepath.Join(dir, "failed.json")}
}

func (f *Failures) read() (map[string]map[string]Failure, error) {
	m := map[string]map[string]Failure{}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read failure record: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read failure record %s: %w", f.path, err)
	}
	return m, nil
}

// Lookup returns the failure recorded for the service at the revision.
func (f *Failures) Lookup(revision, service string) (Failure, bool, error) {
	m, err := f.ForRevision(revision)
	fl, ok := m[service]
	return fl, ok, err
}

// ForRevision returns the failures recorded at the revision, by service
// (an empty map when there are none).
func (f *Failures) ForRevision(revision string) (map[string]Failure, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return nil, err
	}
	if m[revision] == nil {
		return map[string]Failure{}, nil
	}
	return m[revision], nil
}

// Record writes a failure down (atomically: temp file and rename).
func (f *Failures) Record(fl Failure) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return err
	}
	if m[fl.Revision] == nil {
		m[fl.Revision] = map[string]Failure{}
	}
	m[fl.Revision][fl.Service] = fl
	return f.write(m)
}

// Clear forgets every failure of the revision; it reports how many it forgot.
func (f *Failures) Clear(revision string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return 0, err
	}
	n := len(m[revision])
	if n == 0 {
		return 0, nil
	}
	delete(m, revision)
	return n, f.write(m)
}

func (f *Failures) write(m map[string]map[string]Failure) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
		return fmt.Errorf("write failure record: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".failed-*.json")
	if err != nil {
		return fmt.Errorf("write failure record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write failure record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write failure record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write failure record: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("write failure record: %w", err)
	}
	return nil
}
