// Package faults wraps any targets.Target with faults injected on purpose:
// a provision that fails (transiently, or with an invalid spec), hangs
// past its context's deadline, succeeds slowly, or hangs while its
// instance appears in the wrapped target later; a retire that fails; a
// list that fails or answers with the view it gave before. Tests use it
// to prove that the reconciler retries, rolls back, keeps the old
// generation serving and leaks nothing whatever a target does.
//
// Faults are programmed per operation and per call with Rules, which a
// test may replace at any time (Set); every fault injected is counted by
// kind (Injected). A Target is safe for concurrent use.
//
// It deliberately injects nothing into what a target does on its own
// (an instance dying, a port in use): the wrapped target and the test do
// that. It is for tests only; molt never wraps a target with it.
package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Op names an operation of targets.Target.
type Op string

const (
	OpProvision Op = "provision"
	OpRetire    Op = "retire"
	OpList      Op = "list"
)

// Kind is one kind of fault. The kinds of an Op start with its name.
type Kind string

const (
	// ProvisionFail: Provision returns a transient error (Fault.Err, or
	// ErrInjected); nothing is created.
	ProvisionFail Kind = "provision.fail"
	// ProvisionInvalid: Provision returns an error wrapping
	// targets.ErrInvalidSpec; nothing is created.
	ProvisionInvalid Kind = "provision.invalid"
	// ProvisionHang: Provision blocks until its context ends, then for
	// Fault.Delay more (a call stuck past its deadline), and returns the
	// context's error; nothing is created.
	ProvisionHang Kind = "provision.hang"
	// ProvisionSlow: Provision waits Fault.Delay, then provisions. A
	// context that ends first makes it return the context's error with
	// nothing created.
	ProvisionSlow Kind = "provision.slow"
	// ProvisionLate: Provision blocks until its context ends and returns
	// the context's error, but the instance is provisioned all the same,
	// Fault.Delay after that, in the background: the instance that a
	// target whose call timed out still makes (the "late instance"). Its
	// id is in Late once it exists; Wait waits for it.
	ProvisionLate Kind = "provision.late"
	// RetireFail: Retire returns a transient error (Fault.Err, or
	// ErrInjected); the instance is left as it is.
	RetireFail Kind = "retire.fail"
	// ListFail: List returns a transient error (Fault.Err, or
	// ErrInjected).
	ListFail Kind = "list.fail"
	// ListStale: List returns the last answer the wrapped target gave
	// (a cache that has not caught up), without asking it. Before any
	// answer there is nothing stale to give: the call is passed through
	// and no fault is counted.
	ListStale Kind = "list.stale"
)

// Kinds are every kind of fault, in the order of the Ops.
var Kinds = []Kind{ProvisionFail, ProvisionInvalid, ProvisionHang, ProvisionSlow, ProvisionLate, RetireFail, ListFail, ListStale}

// Op returns the operation the kind applies to.
func (k Kind) Op() Op {
	switch k {
	case RetireFail:
		return OpRetire
	case ListFail, ListStale:
		return OpList
	}
	return OpProvision
}

// ErrInjected is the transient error a failing fault returns when its
// Fault.Err is nil.
var ErrInjected = errors.New("injected fault")

// Fault is what one call suffers.
type Fault struct {
	Kind Kind
	// Delay: see each Kind.
	Delay time.Duration
	// Err is the error of ProvisionFail, RetireFail and ListFail (nil:
	// ErrInjected) and the cause of ProvisionInvalid (nil: ErrInjected).
	Err error
	// Hold, when set, keeps ProvisionLate's instance from being made
	// before it is closed (and Delay has passed), so that a test can
	// choose when it appears.
	Hold <-chan struct{}
}

// Call is one call of an operation, as a Rule's Match sees it.
type Call struct {
	Op Op
	// N counts the calls of Op since the Target was made, from 1.
	N int
	// Spec is Provision's spec (zero for other operations).
	Spec targets.Spec
	// ID is the instance Retire was asked to retire ("" otherwise).
	ID string
}

// Rule injects Fault into the calls of Fault.Kind's operation that Match
// selects (all of them when Match is nil), after the first Skip of them
// and for Times of them (every one when Times is 0). Match runs with the
// Target's lock held: it must not call the Target.
type Rule struct {
	Fault Fault
	Match func(Call) bool
	Skip  int
	Times int
}

// rule is a Rule with its counts.
type rule struct {
	Rule
	seen, hit int
}

// Target wraps a targets.Target with faults. It implements
// targets.Resolver, targets.DriftInspector and Engines by asking the
// wrapped target when it does (and answering nothing when it does not),
// without faults.
type Target struct {
	inner targets.Target

	mu       sync.Mutex
	rules    []*rule
	calls    map[Op]int
	injected map[Kind]int
	last     []targets.Instance // the wrapped target's last List answer
	listed   bool
	late     []string
	pending  sync.WaitGroup
}

var (
	_ targets.Target         = (*Target)(nil)
	_ targets.Resolver       = (*Target)(nil)
	_ targets.DriftInspector = (*Target)(nil)
)

// Wrap returns t with the faults of rules. The first rule that selects a
// call and has calls left decides its fault; a call no rule selects is
// passed through.
func Wrap(t targets.Target, rules ...Rule) *Target {
	w := &Target{inner: t, calls: map[Op]int{}, injected: map[Kind]int{}}
	w.Set(rules...)
	return w
}

// Inner returns the wrapped target.
func (w *Target) Inner() targets.Target { return w.inner }

// Set replaces every rule (none: no more faults); the new rules count
// their calls from now on. Calls in progress keep the fault they had.
func (w *Target) Set(rules ...Rule) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rules = w.rules[:0]
	for _, r := range rules {
		w.rules = append(w.rules, &rule{Rule: r})
	}
}

// Add appends rules after those already set.
func (w *Target) Add(rules ...Rule) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rules {
		w.rules = append(w.rules, &rule{Rule: r})
	}
}

// Injected returns how many faults of each kind were injected so far (a
// kind never injected is absent).
func (w *Target) Injected() map[Kind]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.injected)
}

// Total returns how many faults were injected so far, of every kind.
func (w *Target) Total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.injected {
		n += c
	}
	return n
}

// Calls returns how many calls of op were made so far.
func (w *Target) Calls(op Op) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[op]
}

// Late returns the ids of the instances that ProvisionLate calls made
// after their call had returned, in the order they appeared.
func (w *Target) Late() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.late)
}

// Wait waits until every late instance in progress is provisioned (or
// failed to be). Call it before a test ends: the background provisions of
// ProvisionLate are the Target's to finish.
func (w *Target) Wait() { w.pending.Wait() }

// decide counts a call of op and returns the fault it suffers, if any.
func (w *Target) decide(c Call) (Fault, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls[c.Op]++
	c.N = w.calls[c.Op]
	for _, r := range w.rules {
		if r.Fault.Kind.Op() != c.Op || (r.Match != nil && !r.Match(c)) {
			continue
		}
		r.seen++
		if r.seen <= r.Skip || (r.Times > 0 && r.hit >= r.Times) {
			continue
		}
		if r.Fault.Kind == ListStale && !w.listed {
			continue // nothing stale to give yet
		}
		r.hit++
		w.injected[r.Fault.Kind]++
		return r.Fault, true
	}
	return Fault{}, false
}

func (f Fault) err() error {
	if f.Err != nil {
		return f.Err
	}
	return ErrInjected
}

// List lists the wrapped target, or fails, or answers its last answer
// again, as the rules say.
func (w *Target) List(ctx context.Context) ([]targets.Instance, error) {
	f, ok := w.decide(Call{Op: OpList})
	if ok {
		switch f.Kind {
		case ListFail:
			return nil, fmt.Errorf("list instances: %w", f.err())
		case ListStale:
			w.mu.Lock()
			defer w.mu.Unlock()
			return cloneInstances(w.last), nil
		}
	}
	insts, err := w.inner.List(ctx)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.last, w.listed = cloneInstances(insts), true
	w.mu.Unlock()
	return insts, nil
}

// Provision provisions on the wrapped target, or fails, hangs, waits or
// provisions late, as the rules say.
func (w *Target) Provision(ctx context.Context, spec targets.Spec) (targets.Instance, error) {
	f, ok := w.decide(Call{Op: OpProvision, Spec: spec})
	if !ok {
		return w.inner.Provision(ctx, spec)
	}
	name := spec.Labels.Service
	switch f.Kind {
	case ProvisionFail:
		return targets.Instance{}, fmt.Errorf("provision %s: %w", name, f.err())
	case ProvisionInvalid:
		return targets.Instance{}, fmt.Errorf("provision %s: %w: %w", name, targets.ErrInvalidSpec, f.err())
	case ProvisionHang:
		<-ctx.Done()
		time.Sleep(f.Delay)
		return targets.Instance{}, fmt.Errorf("provision %s: %w", name, ctx.Err())
	case ProvisionSlow:
		select {
		case <-ctx.Done():
			return targets.Instance{}, fmt.Errorf("provision %s: %w", name, ctx.Err())
		case <-time.After(f.Delay):
		}
		return w.inner.Provision(ctx, spec)
	case ProvisionLate:
		w.pending.Add(1)
		<-ctx.Done()
		go func() {
			defer w.pending.Done()
			time.Sleep(f.Delay)
			if f.Hold != nil {
				<-f.Hold
			}
			inst, err := w.inner.Provision(context.WithoutCancel(ctx), spec)
			if err != nil {
				return
			}
			w.mu.Lock()
			w.late = append(w.late, inst.ID)
			w.mu.Unlock()
		}()
		return targets.Instance{}, fmt.Errorf("provision %s: %w", name, ctx.Err())
	}
	return w.inner.Provision(ctx, spec)
}

// Retire retires on the wrapped target, or fails, as the rules say.
func (w *Target) Retire(ctx context.Context, id string) error {
	if f, ok := w.decide(Call{Op: OpRetire, ID: id}); ok && f.Kind == RetireFail {
		return fmt.Errorf("retire %s: %w", id, f.err())
	}
	return w.inner.Retire(ctx, id)
}

// Resolve asks the wrapped target, when it resolves anything.
func (w *Target) Resolve(ctx context.Context, svc *schema.Service) (map[string]string, error) {
	if r, ok := w.inner.(targets.Resolver); ok {
		return r.Resolve(ctx, svc)
	}
	return nil, nil
}

// Drift asks the wrapped target, when it inspects drift.
func (w *Target) Drift(ctx context.Context, inst targets.Instance) (string, error) {
	if d, ok := w.inner.(targets.DriftInspector); ok {
		return d.Drift(ctx, inst)
	}
	return "", nil
}

// Engines returns the wrapped target's engines, when it reports them.
func (w *Target) Engines() []targets.Engine {
	if r, ok := w.inner.(interface{ Engines() []targets.Engine }); ok {
		return r.Engines()
	}
	return nil
}

func cloneInstances(in []targets.Instance) []targets.Instance {
	out := make([]targets.Instance, len(in))
	for i, x := range in {
		x.Endpoints = maps.Clone(x.Endpoints)
		out[i] = x
	}
	return out
}
