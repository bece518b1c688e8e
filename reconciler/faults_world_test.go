package reconciler

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/faults"
)

// faultWorld is a memWorld whose executor speaks to the memTarget through
// a faults.Target, and watches every pass: the instances in traffic that
// really run (the floor) and the live instances (the strategy's bound),
// read from the memTarget and the front, never from the faulty view.
type faultWorld struct {
	*memWorld
	faults *faults.Target

	mu         sync.Mutex
	watching   bool
	passes     int
	minServing int // fewest instances in traffic that run, over the passes watched
	maxLive    int // most live instances of the fleet, over the passes watched
	notes      []string
}

// faultTotals adds up, over every test of this package, the faults the
// faultWorlds injected, for the figures TestMain prints.
var faultTotals = struct {
	sync.Mutex
	m map[faults.Kind]int
}{m: map[faults.Kind]int{}}

func newFaultWorld(t *testing.T) *faultWorld {
	w := &faultWorld{memWorld: newMemWorld(t)}
	w.faults = faults.Wrap(w.target)
	w.exec.Target = w.faults
	w.exec.OnObserve = func(fleet string, _ []Observed) { w.sample(fleet) }
	t.Cleanup(func() {
		w.faults.Wait()
		faultTotals.Lock()
		for k, n := range w.faults.Injected() {
			faultTotals.m[k] += n
		}
		faultTotals.Unlock()
	})
	return w
}

// fleet is memWorld's one-service fleet; blue-green keeps no warm
// previous generation, so that a converged fleet holds exactly replicas.
func (w *faultWorld) fleet(rev, version string, r int, strategy schema.Strategy) *schema.Fleet {
	f := w.memWorld.fleet("shop", rev, version, r, strategy)
	f.Services["web"].Rollout.KeepPrevious = 0
	return f
}

// watch starts watching the passes (after the first generation is up, so
// that the floor means something).
func (w *faultWorld) watch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watching, w.passes, w.minServing, w.maxLive = true, 0, 1<<30, 0
}

func (w *faultWorld) sample(fleet string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.watching {
		return
	}
	live := map[string]bool{}
	insts, _ := w.target.List(context.Background())
	for _, in := range insts {
		if in.Labels.Fleet == fleet && in.State == targets.Running {
			live[in.ID] = true
		}
	}
	routes, _ := w.front.Routes(context.Background(), fleet)
	serving := 0
	for _, r := range routes {
		for _, b := range r.Backends {
			if live[b.Instance] {
				serving++
			}
		}
	}
	w.passes++
	w.minServing = min(w.minServing, serving)
	w.maxLive = max(w.maxLive, len(live))
	w.notes = append(w.notes, fmt.Sprintf("pass %d: %d live, %d serving", w.passes, len(live), serving))
}

// check fails t unless, over the passes watched, at least floor instances
// in traffic ran and at most bound lived.
func (w *faultWorld) check(t *testing.T, floor, bound int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.passes == 0 {
		t.Fatal("no pass was watched")
	}
	if w.minServing < floor || w.maxLive > bound {
		t.Fatalf("over %d passes: at least %d serving (want >= %d), at most %d live (want <= %d):\n%s",
			w.passes, w.minServing, floor, w.maxLive, bound, strings.Join(w.notes, "\n"))
	}
}

// holdsExactly fails t unless the memTarget holds exactly n instances of
// the fleet, all of generation hash, running, and in its route: nothing
// leaked.
func (w *faultWorld) holdsExactly(t *testing.T, hash string, n int) []string {
	t.Helper()
	insts, _ := w.target.List(context.Background())
	var ids, bad []string
	for _, in := range insts {
		if in.Labels.Fleet != "shop" {
			continue
		}
		ids = append(ids, in.ID)
		if in.Labels.SpecHash != hash || in.State != targets.Running {
			bad = append(bad, in.ID)
		}
	}
	sort.Strings(ids)
	if len(ids) != n || len(bad) > 0 {
		t.Fatalf("the target holds %v (%d, %v not of %s or not running), want exactly %d of %s", ids, len(ids), bad, short(hash), n, short(hash))
	}
	var routed []string
	routes, _ := w.front.Routes(context.Background(), "shop")
	for _, r := range routes {
		for _, b := range r.Backends {
			routed = append(routed, b.Instance)
		}
	}
	sort.Strings(routed)
	if !slices.Equal(routed, ids) {
		t.Fatalf("the route holds %v, the target %v", routed, ids)
	}
	return ids
}

// applyFor is memWorld.apply with its own bound and no failure on error.
func (w *faultWorld) applyFor(f *schema.Fleet, rev string, d time.Duration) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return w.exec.Apply(ctx, f, rev)
}

// bound is the most instances the strategy lets live during a rollout of
// svc (no warm previous generation): replicas + maxSurge rolling, twice
// the replicas blue-green.
func bound(svc *schema.Service) int {
	if svc.Rollout.Strategy == schema.BlueGreen {
		return 2 * svc.Replicas
	}
	surge, _ := resolved(svc)
	return svc.Replicas + surge
}

// floor is replicas − maxUnavailable.
func floor(svc *schema.Service) int {
	_, unavail := resolved(svc)
	return svc.Replicas - unavail
}
