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
// that cannot be read is moved aside, with a warning.
type Decisions struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex
}

// NewDecisions returns the record kept in dir/decisions.json.
func NewDecisions(dir string, log *slog.Logger) *Decisions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Decisions{path: filepath.Join(dir, "decisions.json"), log: log}
}

func (d *Decisions) read() ([]Decision, error) {
	var out []Decision
	if ok, err := readState(d.path, "decisions", d.log, &out, nil); !ok {
		return nil, err
	}
	return out, nil
}

func (d *Decisions) write(ds []Decision) error { return writeState(d.path, "decisions", ds) }

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
