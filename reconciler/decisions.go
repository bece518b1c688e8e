package reconciler

import (
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Action is an operator's decision on a rollout.
type Action string

const (
	// ActionPromote lets a paused rollout go on.
	ActionPromote Action = "promote"
	// ActionAbort fails the rollout under way: it is rolled back.
	ActionAbort Action = "abort"
)

// Decision is one operator's decision on a service's rollout (`molt
// promote`, `molt abort`, or a `/molt promote` comment).
type Decision struct {
	Fleet   string `json:"fleet"`
	Service string `json:"service"`
	Action  Action `json:"action"`
	// Hash is the generation the decision is about; "" means the rollout
	// under way when apply or serve next looks.
	Hash string    `json:"hash,omitempty"`
	By   string    `json:"by,omitempty"`
	At   time.Time `json:"at"`
}

// Decisions is the record of operators' decisions (decisions.json in the
// state directory), read by apply and serve on their next pass, so that a
// decision works with or without a running server and survives restarts.
// A decision is dropped once the rollout it is about has ended. A file
// that cannot be read is moved aside, with a warning. With a
// WriteReporter (ReportWrites), decisions that cannot be written are kept
// in memory and written at the next use; without one, the write error is
// returned.
type Decisions struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex

	writeFile writeFunc
	report    WriteReporter
	unsaved   []Decision // what could not be written yet
	dirty     bool       // unsaved holds the record
}

// NewDecisions returns the record kept in dir/decisions.json.
func NewDecisions(dir string, log *slog.Logger) *Decisions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Decisions{path: filepath.Join(dir, "decisions.json"), log: log, writeFile: writeState}
}

// ReportWrites makes the record go on from memory when its file cannot
// be written, and tells fn the outcome of every write (see
// WriteReporter). Call it before the record is used.
func (d *Decisions) ReportWrites(fn WriteReporter) { d.report = fn }

// read returns the decisions: those that could not be written yet
// (written now when they can be), or the file's; d.mu is held.
func (d *Decisions) read() ([]Decision, error) {
	if d.dirty {
		ds := slices.Clone(d.unsaved)
		d.save(ds)
		return ds, nil
	}
	var out []Decision
	if ok, err := readState(d.path, "decisions", d.log, &out, nil); !ok {
		return nil, err
	}
	return out, nil
}

// write replaces the record with ds; d.mu is held.
func (d *Decisions) write(ds []Decision) error {
	if d.report == nil {
		return d.writeFile(d.path, "decisions", ds)
	}
	d.save(ds)
	return nil
}

// save writes ds, or keeps them to write at the next use; d.mu is held
// and d.report is set.
func (d *Decisions) save(ds []Decision) {
	err := d.writeFile(d.path, "decisions", ds)
	d.report(d.path, err)
	d.unsaved, d.dirty = slices.Clone(ds), err != nil
	if !d.dirty {
		d.unsaved = nil
	}
}

// Record writes a decision down; it replaces an earlier one of the same
// fleet and service.
func (d *Decisions) Record(dec Decision) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds, err := d.read()
	if err != nil {
		return err
	}
	return d.write(append(without(ds, dec.Fleet, dec.Service), dec))
}

// For returns the fleet's decisions, by service.
func (d *Decisions) For(fleet string) (map[string]Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds, err := d.read()
	if err != nil {
		return nil, err
	}
	out := map[string]Decision{}
	for _, x := range ds {
		if x.Fleet == fleet {
			out[x.Service] = x
		}
	}
	return out, nil
}

// Drop forgets the decision on a service of the fleet.
func (d *Decisions) Drop(fleet, service string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds, err := d.read()
	if err != nil {
		return err
	}
	n := len(ds)
	if ds = without(ds, fleet, service); len(ds) == n {
		return nil
	}
	return d.write(ds)
}

// without removes the decision on the service of the fleet, in place.
func without(ds []Decision, fleet, service string) []Decision {
	return slices.DeleteFunc(ds, func(x Decision) bool { return x.Fleet == fleet && x.Service == service })
}
