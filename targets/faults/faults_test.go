package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// memTarget is the smallest target: instances in a map.
type memTarget struct {
	mu    sync.Mutex
	seq   int
	insts map[string]targets.Instance
}

func (m *memTarget) List(context.Context) ([]targets.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []targets.Instance
	for _, in := range m.insts {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b targets.Instance) int { return cmpString(a.ID, b.ID) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *memTarget) Provision(_ context.Context, spec targets.Spec) (targets.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	in := targets.Instance{ID: fmt.Sprintf("i%d", m.seq), Labels: spec.Labels, State: targets.Running}
	if m.insts == nil {
		m.insts = map[string]targets.Instance{}
	}
	m.insts[in.ID] = in
	return in, nil
}

func (m *memTarget) Retire(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.insts, id)
	return nil
}

func spec(service string) targets.Spec {
	return targets.Spec{Labels: targets.Labels{Fleet: "f", Service: service}, Service: &schema.Service{Name: service}}
}

func ids(t *testing.T, tg targets.Target) []string {
	t.Helper()
	insts, err := tg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range insts {
		out = append(out, in.ID)
	}
	return out
}

// TestRulesSkipTimesMatch: a rule hits the calls it matches after Skip of
// them, Times times; other calls pass through; every hit is counted by
// kind, and Set replaces the rules.
func TestRulesSkipTimesMatch(t *testing.T) {
	w := Wrap(&memTarget{},
		Rule{Fault: Fault{Kind: ProvisionFail}, Match: func(c Call) bool { return c.Spec.Labels.Service == "web" }, Skip: 1, Times: 2})
	ctx := context.Background()
	var got []bool
	for range 5 {
		_, err := w.Provision(ctx, spec("web"))
		got = append(got, err == nil)
	}
	if want := []bool{true, false, false, true, true}; !slices.Equal(got, want) {
		t.Fatalf("web provisions succeeded %v, want %v", got, want)
	}
	if _, err := w.Provision(ctx, spec("api")); err != nil {
		t.Fatalf("api is not matched: %v", err)
	}
	if inj := w.Injected(); inj[ProvisionFail] != 2 || w.Total() != 2 || w.Calls(OpProvision) != 6 {
		t.Fatalf("injected %v, total %d, calls %d", inj, w.Total(), w.Calls(OpProvision))
	}
	if n := len(ids(t, w)); n != 4 {
		t.Fatalf("%d instances, want 4: a failed provision left something", n)
	}
	w.Set(Rule{Fault: Fault{Kind: RetireFail}, Times: 1})
	if _, err := w.Provision(ctx, spec("web")); err != nil {
		t.Fatalf("the old rules still apply after Set: %v", err)
	}
}

// TestErrorClasses: a failing fault's error is transient (ErrInjected, or
// the one given); an invalid one wraps targets.ErrInvalidSpec.
func TestErrorClasses(t *testing.T) {
	mine := errors.New("engine unreachable")
	w := Wrap(&memTarget{},
		Rule{Fault: Fault{Kind: ProvisionInvalid}, Times: 1},
		Rule{Fault: Fault{Kind: ProvisionFail, Err: mine}, Times: 1},
		Rule{Fault: Fault{Kind: RetireFail}, Times: 2},
		Rule{Fault: Fault{Kind: ListFail}, Times: 1})
	ctx := context.Background()
	if _, err := w.Provision(ctx, spec("web")); !errors.Is(err, targets.ErrInvalidSpec) {
		t.Fatalf("invalid: %v", err)
	}
	if _, err := w.Provision(ctx, spec("web")); !errors.Is(err, mine) || errors.Is(err, targets.ErrInvalidSpec) {
		t.Fatalf("fail: %v", err)
	}
	in, err := w.Provision(ctx, spec("web"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Retire(ctx, in.ID); !errors.Is(err, ErrInjected) {
			t.Fatalf("retire %d: %v, want the injected fault", i+1, err)
		}
	}
	if _, err := w.List(ctx); !errors.Is(err, ErrInjected) {
		t.Fatalf("list: %v", err)
	}
	if got := ids(t, w); !slices.Equal(got, []string{in.ID}) {
		t.Fatalf("a failed retire removed the instance: %v", got)
	}
	if err := w.Retire(ctx, in.ID); err != nil {
		t.Fatalf("third retire: %v, want it to pass", err)
	}
	if got := ids(t, w); len(got) != 0 {
		t.Fatalf("left: %v", got)
	}
}

// TestListStale: a stale list answers what the wrapped target answered
// last, however it changed since; before any answer it passes through.
func TestListStale(t *testing.T) {
	w := Wrap(&memTarget{}, Rule{Fault: Fault{Kind: ListStale}})
	ctx := context.Background()
	a, _ := w.Provision(ctx, spec("web"))
	if got := ids(t, w); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("the first list is the target's: %v", got)
	}
	b, _ := w.Provision(ctx, spec("web"))
	w.Retire(ctx, a.ID)
	for range 2 {
		if got := ids(t, w); !slices.Equal(got, []string{a.ID}) {
			t.Fatalf("stale list: %v, want the previous answer [%s]", got, a.ID)
		}
	}
	if n := w.Injected()[ListStale]; n != 2 {
		t.Fatalf("%d stale lists counted, want 2", n)
	}
	w.Set()
	if got := ids(t, w); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("fresh list: %v", got)
	}
}

// TestHangSlowLate: a hang returns only once its context ends (and
// Delay after), with nothing made; a slow provision makes its instance
// after Delay, or nothing when the context ends first; a late one returns
// the context's error and its instance appears afterwards.
func TestHangSlowLate(t *testing.T) {
	inner := &memTarget{}
	w := Wrap(inner,
		Rule{Fault: Fault{Kind: ProvisionHang, Delay: 10 * time.Millisecond}, Times: 1},
		Rule{Fault: Fault{Kind: ProvisionSlow, Delay: 20 * time.Millisecond}, Times: 2},
		Rule{Fault: Fault{Kind: ProvisionLate, Delay: 20 * time.Millisecond}, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := w.Provision(ctx, spec("web")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}
	if time.Since(start) < 50*time.Millisecond || len(ids(t, inner)) != 0 {
		t.Fatalf("hang returned before its deadline, or made something")
	}
	if _, err := w.Provision(context.Background(), spec("web")); err != nil || len(ids(t, inner)) != 1 {
		t.Fatalf("slow: %v, %v", err, ids(t, inner))
	}
	short, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	if _, err := w.Provision(short, spec("web")); !errors.Is(err, context.DeadlineExceeded) || len(ids(t, inner)) != 1 {
		t.Fatalf("slow past its deadline: %v, %v", err, ids(t, inner))
	}
	late, cancel3 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel3()
	if _, err := w.Provision(late, spec("web")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("late: %v", err)
	}
	w.Wait()
	got := ids(t, inner)
	if l := w.Late(); len(l) != 1 || len(got) != 2 || !slices.Contains(got, l[0]) {
		t.Fatalf("late %v, instances %v: want the late instance there", l, got)
	}
	want := map[Kind]int{ProvisionHang: 1, ProvisionSlow: 2, ProvisionLate: 1}
	if inj := w.Injected(); fmt.Sprint(inj) != fmt.Sprint(want) {
		t.Fatalf("injected %v, want %v", inj, want)
	}
}

// TestConcurrentUse: calls from many goroutines are counted exactly (run
// with -race).
func TestConcurrentUse(t *testing.T) {
	w := Wrap(&memTarget{}, Rule{Fault: Fault{Kind: ProvisionFail}, Times: 10}, Rule{Fault: Fault{Kind: ListStale}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				w.Provision(context.Background(), spec("web"))
				w.List(context.Background())
			}
		})
	}
	wg.Wait()
	if w.Injected()[ProvisionFail] != 10 || w.Calls(OpProvision) != 160 || w.Calls(OpList) != 160 {
		t.Fatalf("injected %v, calls %d/%d", w.Injected(), w.Calls(OpProvision), w.Calls(OpList))
	}
}
