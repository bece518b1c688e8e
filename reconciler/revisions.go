package reconciler

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// Revisions is the record, under the state directory (revisions.json), of
// what happened to each fleet's revisions: the rollouts that failed (a
// revision that failed for a service is not tried again for that service
// until a new revision comes, or the failure is cleared with `molt apply
// --retry`) and, per service, the last revision that converged, with its
// generation and replica count (what a rollback returns to).
//
// Every entry is scoped by fleet: fleets sharing a state directory never
// see each other's. The record is a cache of decisions, not the truth of
// what runs: deleting it is safe (a failed revision is tried once more; a
// rollback falls back to the serving generation as the live fleet shows
// it). A file that cannot be read is moved aside, with a warning, and the
// record starts afresh: it never blocks a reconcile.
//
// With a WriteReporter (ReportWrites), a record that cannot be written
// is kept in memory and written at its next use; without one, the write
// error is returned.
type Revisions struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex

	write   writeFunc
	report  WriteReporter
	unsaved *revisionsFile // what could not be written yet; nil when the file holds it all
}

// Failure is one recorded failed rollout.
type Failure struct {
	Fleet    string `json:"fleet"`
	Service  string `json:"service"`
	Revision string `json:"revision"`
	// Hash is the generation that failed. The same revision with another
	// generation (an executable rebuilt, an image tag moved) is a new
	// rollout, not the failed one.
	Hash   string    `json:"hash,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Applies reports whether the failure is of the generation hash (a failure
// recorded without one applies to every generation of its revision).
func (f Failure) Applies(hash string) bool { return f.Hash == "" || f.Hash == hash }

// Good is the last revision that converged for a service.
type Good struct {
	Revision string            `json:"revision"`
	Hash     string            `json:"hash"`
	Replicas int               `json:"replicas"`
	Resolved map[string]string `json:"resolved,omitempty"`
	At       time.Time         `json:"at"`
}

type fleetRecord struct {
	// Failed by revision, then service.
	Failed map[string]map[string]Failure `json:"failed,omitempty"`
	// Good by service.
	Good map[string]Good `json:"good,omitempty"`
}

type revisionsFile struct {
	Format int                     `json:"format"`
	Fleets map[string]*fleetRecord `json:"fleets"`
}

const revisionsFormat = 1

// NewRevisions returns the record kept in dir/revisions.json; log (nil
// discards) hears about files moved aside.
func NewRevisions(dir string, log *slog.Logger) *Revisions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Revisions{path: filepath.Join(dir, "revisions.json"), log: log, write: writeState}
}

// ReportWrites makes the record go on from memory when its file cannot
// be written, and tells fn the outcome of every write (see
// WriteReporter). Call it before the record is used.
func (r *Revisions) ReportWrites(fn WriteReporter) { r.report = fn }

// dir is the directory the record is kept in.
func (r *Revisions) dir() string { return filepath.Dir(r.path) }

// read returns the record: what could not be written yet (written now
// when it can be), or the file's content; r.mu is held.
func (r *Revisions) read() (*revisionsFile, error) {
	if r.unsaved != nil {
		f := r.unsaved
		r.save(f)
		return f, nil
	}
	f := &revisionsFile{}
	ok, err := readState(r.path, "revision record", r.log, f, func() bool { return f.Format == revisionsFormat })
	if err != nil {
		return nil, err
	}
	if !ok || f.Fleets == nil {
		f.Format, f.Fleets = revisionsFormat, map[string]*fleetRecord{}
	}
	return f, nil
}

func (f *revisionsFile) fleet(name string) *fleetRecord {
	fr := f.Fleets[name]
	if fr == nil {
		fr = &fleetRecord{}
		f.Fleets[name] = fr
	}
	return fr
}

// ForRevision returns the failures recorded for the fleet at the revision,
// by service (an empty map when there are none).
func (r *Revisions) ForRevision(fleet, revision string) (map[string]Failure, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.read()
	if err != nil {
		return nil, err
	}
	out := map[string]Failure{}
	if fr := f.Fleets[fleet]; fr != nil {
		for k, v := range fr.Failed[revision] {
			out[k] = v
		}
	}
	return out, nil
}

// RecordFailure writes a failure down.
func (r *Revisions) RecordFailure(fl Failure) error {
	return r.update(func(f *revisionsFile) bool {
		fr := f.fleet(fl.Fleet)
		if fr.Failed == nil {
			fr.Failed = map[string]map[string]Failure{}
		}
		if fr.Failed[fl.Revision] == nil {
			fr.Failed[fl.Revision] = map[string]Failure{}
		}
		fr.Failed[fl.Revision][fl.Service] = fl
		return true
	})
}

// Clear forgets every failure of the fleet at the revision; it reports how
// many it forgot.
func (r *Revisions) Clear(fleet, revision string) (int, error) {
	n := 0
	err := r.update(func(f *revisionsFile) bool {
		fr := f.Fleets[fleet]
		if fr == nil {
			return false
		}
		n = len(fr.Failed[revision])
		delete(fr.Failed, revision)
		return n > 0
	})
	return n, err
}

// Good returns the last good revision of each service of the fleet.
func (r *Revisions) Good(fleet string) (map[string]Good, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.read()
	if err != nil {
		return nil, err
	}
	out := map[string]Good{}
	if fr := f.Fleets[fleet]; fr != nil {
		for k, v := range fr.Good {
			out[k] = v
		}
	}
	return out, nil
}

// RecordGood records that the service of the fleet converged as g says.
func (r *Revisions) RecordGood(fleet, service string, g Good) error {
	return r.update(func(f *revisionsFile) bool {
		fr := f.fleet(fleet)
		if fr.Good == nil {
			fr.Good = map[string]Good{}
		}
		fr.Good[service] = g
		return true
	})
}

// Forget drops everything recorded for the fleet (a fleet that was pruned).
func (r *Revisions) Forget(fleet string) error {
	return r.update(func(f *revisionsFile) bool {
		_, ok := f.Fleets[fleet]
		delete(f.Fleets, fleet)
		return ok
	})
}

// update reads the record, lets fn change it, and writes it back
// (atomically: temp file, fsync, rename) when fn reports a change.
func (r *Revisions) update(fn func(*revisionsFile) bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.read()
	if err != nil {
		return err
	}
	if !fn(f) {
		return nil
	}
	if r.report == nil {
		return r.write(r.path, "revision record", f)
	}
	r.save(f)
	return nil
}

// save writes f, or keeps it to write at the next use; r.mu is held and
// r.report is set.
func (r *Revisions) save(f *revisionsFile) {
	err := r.write(r.path, "revision record", f)
	r.report(r.path, err)
	if err != nil {
		r.unsaved = f
		return
	}
	r.unsaved = nil
}
