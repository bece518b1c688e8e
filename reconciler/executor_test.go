package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"pgregory.net/rapid"
)

// memTarget is an in-memory target for the executor's own tests (the real
// targets are tested against it in cmd/molt: this package may not import
// them). Services have no health check, so a running instance is healthy
// at once; instances of a hash in dies are dead as soon as they exist, and
// fail makes provisions of a service fail.
type memTarget struct {
	mu    sync.Mutex
	seq   int
	insts map[string]targets.Instance
	dies  map[string]bool
	fail  func(spec targets.Spec) error
	calls []string       // "provision web" / "retire ID", in order
	specs []targets.Spec // every spec provisioned, in order
}

func newMemTarget() *memTarget {
	return &memTarget{insts: map[string]targets.Instance{}, dies: map[string]bool{}}
}

func (m *memTarget) List(context.Context) ([]targets.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []targets.Instance
	for _, in := range m.insts {
		if m.dies[in.Labels.SpecHash] {
			in.State = targets.Dead
		}
		out = append(out, in)
	}
	return out, nil
}

func (m *memTarget) Provision(_ context.Context, spec targets.Spec) (targets.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "provision "+spec.Labels.Service)
	if m.fail != nil {
		if err := m.fail(spec); err != nil {
			return targets.Instance{}, err
		}
	}
	m.specs = append(m.specs, spec)
	m.seq++
	id := fmt.Sprintf("%s-%s-%03d", spec.Labels.Service, short(spec.Labels.SpecHash), m.seq)
	in := targets.Instance{ID: id, Labels: spec.Labels, State: targets.Running,
		Endpoints: map[string]string{"http": fmt.Sprintf("127.0.0.1:%d", 20000+m.seq)}}
	m.insts[id] = in
	return in, nil
}

func (m *memTarget) Retire(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "retire "+id)
	delete(m.insts, id)
	return nil
}

// made counts the instances of spec hash hash that Provision made.
func (m *memTarget) made(hash string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, s := range m.specs {
		if s.Labels.SpecHash == hash {
			n++
		}
	}
	return n
}

// running counts the live instances of a fleet's service.
func (m *memTarget) running(fleet, service string) int {
	insts, _ := m.List(context.Background())
	n := 0
	for _, in := range insts {
		if in.Labels.Fleet == fleet && in.Labels.Service == service && in.State == targets.Running {
			n++
		}
	}
	return n
}

// memFront is an in-memory front, fleet-scoped like the real ones.
type memFront struct {
	mu     sync.Mutex
	fleets map[string][]targets.Route
	sets   int
	counts map[string]targets.Counts // by generation, for Counts
}

func newMemFront() *memFront { return &memFront{fleets: map[string][]targets.Route{}} }

func (f *memFront) Routes(_ context.Context, fleet string) ([]targets.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fleets[fleet]), nil
}

func (f *memFront) SetRoutes(_ context.Context, fleet string, routes []targets.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	if len(routes) == 0 {
		delete(f.fleets, fleet)
		return nil
	}
	f.fleets[fleet] = slices.Clone(routes)
	return nil
}

func (f *memFront) Drain(context.Context, []string) error { return nil }

// Counts answers what the test set in counts, by generation, for every
// service of the fleet.
func (f *memFront) Counts(_ context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]targets.Counts{}
	for _, r := range f.fleets[fleet] {
		out[r.Service] = f.counts
	}
	return out, since, nil
}

// memWorld is an executor over a memTarget and a memFront, with fleets by
// revision for rollbacks.
type memWorld struct {
	target *memTarget
	front  *memFront
	exec   *Executor
	fleets map[string]*schema.Fleet
}

func newMemWorld(t testing.TB) *memWorld {
	w := &memWorld{target: newMemTarget(), front: newMemFront(), fleets: map[string]*schema.Fleet{}}
	w.exec = &Executor{Target: w.target, Front: w.front, Prober: NewProber(), Revisions: NewRevisions(t.TempDir(), nil),
		Tick: time.Millisecond,
		Specs: func(_ context.Context, rev string) (*schema.Fleet, error) {
			if f := w.fleets[rev]; f != nil {
				return f, nil
			}
			return nil, fmt.Errorf("no revision %s", rev)
		}}
	return w
}

// fleet is a one-service fleet: web, rolling, replicas r, its spec made
// distinct by version.
func (w *memWorld) fleet(name, rev, version string, r int, strategy schema.Strategy) *schema.Fleet {
	svc := rolling(r, "1", "0")
	svc.Rollout.Strategy = strategy
	if strategy == schema.BlueGreen {
		svc.Rollout.KeepPrevious = time.Hour
	}
	svc.Process = &schema.Process{Command: []string{"./app"}}
	svc.Env = map[string]string{"VERSION": version}
	svc.Expose = &schema.Expose{Listen: "127.0.0.1:18080", Port: "http"}
	f := &schema.Fleet{Name: name, Services: map[string]*schema.Service{"web": svc}}
	w.fleets[rev] = f
	return f
}

func (w *memWorld) apply(t rapid.TB, f *schema.Fleet, rev string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := w.exec.Apply(ctx, f, rev)
	if err != nil {
		t.Fatalf("apply %s: %v", rev, err)
	}
	return res
}

// TestRollbackRestoresLastGoodReplicas: replicas 3 (v1), then replicas 1
// (v1 again), then a failing v2 with replicas 1: the rollback returns to
// the last good revision, with its one replica, not to the three of the
// revision where v1 first appeared.
func TestRollbackRestoresLastGoodReplicas(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newMemWorld(t)
		r1 := rapid.IntRange(0, 5).Draw(rt, "replicas at v1")
		r2 := rapid.IntRange(0, 5).Draw(rt, "replicas at v1 again")
		r3 := rapid.IntRange(1, 5).Draw(rt, "replicas of failing v2")
		strategy := rapid.SampledFrom([]schema.Strategy{schema.Rolling, schema.BlueGreen}).Draw(rt, "strategy")
		w.apply(rt, w.fleet("shop", "main@sha1:1", "v1", r1, strategy), "main@sha1:1")
		w.apply(rt, w.fleet("shop", "main@sha1:2", "v1", r2, strategy), "main@sha1:2")
		v2 := w.fleet("shop", "main@sha1:3", "v2", r3, strategy)
		w.target.dies[v2.Services["web"].SpecHash(nil)] = true
		res := w.apply(rt, v2, "main@sha1:3")
		if len(res.Failures) != 1 {
			rt.Fatalf("failures = %+v, want the v2 rollout to fail", res.Failures)
		}
		if !res.Converged {
			rt.Fatalf("the rollback did not converge: %+v", res.Plan)
		}
		if len(res.Held) != 1 || res.Held[0].Revision != "main@sha1:3" {
			rt.Fatalf("held = %+v, want the v2 failure holding web", res.Held)
		}
		if again := w.apply(rt, v2, "main@sha1:3"); len(again.Failures) != 0 || len(again.Held) != 1 {
			rt.Fatalf("applied again: failures %+v, held %+v; want no new failure, the old one holding", again.Failures, again.Held)
		}
		if got := w.target.running("shop", "web"); got != r2 {
			rt.Fatalf("%d instances run after the rollback, want %d (the last good revision's replicas)", got, r2)
		}
	})
}

// TestTransientProvisionErrorIsRetried: a provision that times out (as a
// Docker engine does) is retried with backoff; the revision is not failed.
func TestTransientProvisionErrorIsRetried(t *testing.T) {
	w := newMemWorld(t)
	w.apply(t, w.fleet("shop", "main@sha1:1", "v1", 2, schema.Rolling), "main@sha1:1")
	left := 2
	w.target.fail = func(targets.Spec) error {
		if left > 0 {
			left--
			return fmt.Errorf("create container: %w", context.DeadlineExceeded)
		}
		return nil
	}
	res := w.apply(t, w.fleet("shop", "main@sha1:2", "v2", 2, schema.Rolling), "main@sha1:2")
	if len(res.Failures) != 0 || !res.Converged {
		t.Fatalf("failures %+v, converged %v: a transient error failed the rollout", res.Failures, res.Converged)
	}
	if f, _ := w.exec.Revisions.ForRevision("shop", "main@sha1:2"); len(f) != 0 {
		t.Fatalf("the revision was recorded as failed: %+v", f)
	}
	if got := w.target.running("shop", "web"); got != 2 {
		t.Fatalf("%d running, want 2", got)
	}
}

// TestSelfHealInvalidSpecIsDegradedNotRolledBack: an invalid spec while
// replacing a dead instance of the serving generation fails nothing and
// retires nothing: the service is degraded, and says why.
func TestSelfHealInvalidSpecIsDegradedNotRolledBack(t *testing.T) {
	w := newMemWorld(t)
	f := w.fleet("shop", "main@sha1:1", "v1", 3, schema.BlueGreen)
	w.apply(t, f, "main@sha1:1")
	insts, _ := w.target.List(context.Background())
	w.target.Retire(context.Background(), insts[0].ID) // killed behind molt's back
	w.target.fail = func(targets.Spec) error {
		return fmt.Errorf("%w: executable ./app has sha256 aaaa, the spec pins bbbb", targets.ErrInvalidSpec)
	}
	res := w.apply(t, f, "main@sha1:1")
	if len(res.Failures) != 0 {
		t.Fatalf("a self-heal failure counted as a failed rollout: %+v", res.Failures)
	}
	if res.Converged || len(res.Degraded) != 1 || res.Degraded[0].DegradedReason != DegradedStalled {
		t.Fatalf("converged %v, degraded %+v: want web degraded (stalled)", res.Converged, res.Degraded)
	}
	if got := w.target.running("shop", "web"); got != 2 {
		t.Fatalf("%d running, want the 2 that survived", got)
	}
	if sp := res.Degraded[0]; sp.Healthy != 2 || sp.Replicas != 3 {
		t.Fatalf("degraded %d/%d healthy, want 2/3", sp.Healthy, sp.Replicas)
	}
}

// TestRolloutInvalidSpecRollsBack: an invalid spec of a new generation
// fails that rollout and rolls it back; the serving generation stays.
func TestRolloutInvalidSpecRollsBack(t *testing.T) {
	w := newMemWorld(t)
	w.apply(t, w.fleet("shop", "main@sha1:1", "v1", 2, schema.Rolling), "main@sha1:1")
	v2 := w.fleet("shop", "main@sha1:2", "v2", 2, schema.Rolling)
	h2 := v2.Services["web"].SpecHash(nil)
	w.target.fail = func(s targets.Spec) error {
		if s.Labels.SpecHash == h2 {
			return fmt.Errorf("%w: no such image", targets.ErrInvalidSpec)
		}
		return nil
	}
	res := w.apply(t, v2, "main@sha1:2")
	if len(res.Failures) != 1 || !res.Converged {
		t.Fatalf("failures %+v converged %v: want one failure, rolled back", res.Failures, res.Converged)
	}
	if got := w.target.running("shop", "web"); got != 2 {
		t.Fatalf("%d running, want v1's 2", got)
	}
}

// TestFleetsNeverTouchEachOther: two fleets with a service named web share
// the target and the front; applying one never retires, routes or
// records anything of the other.
func TestFleetsNeverTouchEachOther(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newMemWorld(t)
		ra := rapid.IntRange(0, 4).Draw(rt, "alpha replicas")
		rb := rapid.IntRange(0, 4).Draw(rt, "beta replicas")
		alpha := w.fleet("alpha", "a@sha1:1", "a1", ra, schema.Rolling)
		beta := w.fleet("beta", "b@sha1:1", "b1", rb, schema.BlueGreen)
		beta.Services["web"].Expose.Listen = "127.0.0.1:18081"
		w.apply(rt, alpha, "a@sha1:1")
		w.apply(rt, beta, "b@sha1:1")
		before, _ := w.front.Routes(context.Background(), "alpha")
		betaIDs := w.ids("beta")
		steps := rapid.IntRange(1, 4).Draw(rt, "alpha revisions")
		for i := range steps {
			rev := fmt.Sprintf("a@sha1:%d", i+2)
			version := fmt.Sprintf("a%d", rapid.IntRange(1, 3).Draw(rt, "version"))
			fails := rapid.Bool().Draw(rt, "fails")
			if fails {
				version = fmt.Sprintf("broken%d", i) // a new generation that fails
			}
			f := w.fleet("alpha", rev, version, rapid.IntRange(0, 4).Draw(rt, "replicas"), schema.Rolling)
			if fails {
				w.target.dies[f.Services["web"].SpecHash(nil)] = true
			}
			w.apply(rt, f, rev)
		}
		if got := w.ids("beta"); !slices.Equal(got, betaIDs) {
			rt.Fatalf("beta's instances changed: %v, were %v", got, betaIDs)
		}
		after, _ := w.front.Routes(context.Background(), "beta")
		for _, r := range after {
			for _, b := range r.Backends {
				if !slices.Contains(betaIDs, b.Instance) {
					rt.Fatalf("beta's route holds %s, not one of beta's instances", b.Instance)
				}
			}
		}
		if g, _ := w.exec.Revisions.Good("beta"); g["web"].Revision != "b@sha1:1" {
			rt.Fatalf("beta's record changed: %+v", g)
		}
		_ = before
		// Removing alpha entirely leaves beta as it was too.
		w.apply(rt, &schema.Fleet{Name: "alpha", Services: map[string]*schema.Service{}}, "a@sha1:99")
		if got := w.ids("beta"); !slices.Equal(got, betaIDs) {
			rt.Fatalf("pruning alpha changed beta's instances")
		}
		if rs, _ := w.front.Routes(context.Background(), "alpha"); len(rs) != 0 {
			rt.Fatalf("alpha's routes left after pruning: %+v", rs)
		}
		if rs, _ := w.front.Routes(context.Background(), "beta"); len(rs) != 1 {
			rt.Fatalf("beta's routes: %+v", rs)
		}
	})
}

func (w *memWorld) ids(fleet string) []string {
	insts, _ := w.target.List(context.Background())
	var out []string
	for _, in := range insts {
		if in.Labels.Fleet == fleet {
			out = append(out, in.ID)
		}
	}
	slices.Sort(out)
	return out
}

// TestPlanIsWhatApplyDoes: the plan that `molt plan` prints (Executor.Plan)
// is the plan of apply's first pass, and that pass carries out exactly its
// step: the provisions, the retires and the routes.
func TestPlanIsWhatApplyDoes(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newMemWorld(t)
		strategy := rapid.SampledFrom([]schema.Strategy{schema.Rolling, schema.BlueGreen}).Draw(rt, "strategy")
		w.apply(rt, w.fleet("shop", "main@sha1:1", "v1", rapid.IntRange(0, 4).Draw(rt, "replicas v1"), strategy), "main@sha1:1")
		// Disturb the fleet: kill some instances behind molt's back.
		for _, id := range w.ids("shop") {
			if rapid.Bool().Draw(rt, "kill "+id) {
				w.target.Retire(context.Background(), id)
			}
		}
		next := w.fleet("shop", "main@sha1:2", rapid.SampledFrom([]string{"v1", "v2"}).Draw(rt, "version"),
			rapid.IntRange(0, 4).Draw(rt, "replicas v2"), strategy)
		fixed := time.Now() // one clock for the plan and the pass
		w.exec.Now = func() time.Time { return fixed }
		planned, err := w.exec.Plan(context.Background(), next, "main@sha1:2")
		if err != nil {
			rt.Fatal(err)
		}
		w.target.calls = nil
		sets := w.front.sets
		x := *w.exec
		var first *Plan
		x.OnPass = func(p Plan) {
			if first == nil {
				first = &p
			}
		}
		x.Preempt = func() bool { return true } // stop after the first step
		if _, err := x.Apply(context.Background(), next, "main@sha1:2"); err != nil {
			rt.Fatal(err)
		}
		clearWake := func(p Plan) Plan {
			for i := range p.Services {
				p.Services[i].Wake = time.Time{}
			}
			return p
		}
		if first == nil || !equalPlans(clearWake(planned), clearWake(*first)) {
			rt.Fatalf("molt plan and apply's first pass differ (-plan +apply):\n%s", cmp.Diff(clearWake(planned), first))
		}
		var want []string
		acts := false
		for _, sp := range planned.Services {
			for _, r := range sp.Step.Retire {
				want = append(want, "retire "+r.Instance)
			}
			for range sp.Step.Provision {
				want = append(want, "provision "+sp.Service)
			}
			acts = acts || sp.Route != nil
		}
		got := slices.Clone(w.target.calls)
		slices.Sort(got)
		slices.Sort(want)
		if planned.Services[0].Failed == "" && !slices.Equal(got, want) {
			rt.Fatalf("apply did %v, the plan said %v", got, want)
		}
		if routed := w.front.sets > sets; planned.Services[0].Failed == "" && routed != acts {
			rt.Fatalf("apply set routes %v, the plan changes routes %v", routed, acts)
		}
		if acts && planned.Services[0].Failed == "" {
			rs, _ := w.front.Routes(context.Background(), "shop")
			byName := maps.Collect(func(yield func(string, targets.Route) bool) {
				for _, r := range rs {
					if !yield(r.Service, r) {
						return
					}
				}
			})
			if r := planned.Services[0].Route; r != nil && !emptyRoute(*r) && !routeEqual(byName["web"], *r) {
				rt.Fatalf("the front has %+v, the plan said %+v", byName["web"], *r)
			}
		}
	})
}

func equalPlans(a, b Plan) bool { return cmp.Equal(a, b) }

// TestClassify: errors are classified through any wrapping.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("provision web: %w", targets.ErrInvalidSpec), Stalling},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", &schema.InvalidError{})), Stalling},
		{fmt.Errorf("a: %w", &WaitError{Until: t0, Err: errors.New("window")}), Waiting},
		{fmt.Errorf("create container: %w", context.DeadlineExceeded), Transient},
		{errors.New("connection refused"), Transient},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestFailedFirstRolloutStaysFailed: a first rollout that fails rolls back
// to nothing, and applying the same revision again (without a retry) does
// not provision the failed generation: it never became the active one.
func TestFailedFirstRolloutStaysFailed(t *testing.T) {
	for _, strategy := range []schema.Strategy{schema.Rolling, schema.BlueGreen} {
		w := newMemWorld(t)
		f := w.fleet("shop", "main@sha1:1", "v1", 2, strategy)
		w.target.dies[f.Services["web"].SpecHash(nil)] = true
		if res := w.apply(t, f, "main@sha1:1"); len(res.Failures) != 1 {
			t.Fatalf("%s: failures %+v, want the first rollout to fail", strategy, res.Failures)
		}
		w.target.calls = nil
		res := w.apply(t, f, "main@sha1:1")
		if slices.Contains(w.target.calls, "provision web") || w.target.running("shop", "web") != 0 {
			t.Fatalf("%s: the failed revision was provisioned again: %v (%+v)", strategy, w.target.calls, res.Plan)
		}
	}
}

// TestPausePromoteAbort: with rollout.pause, apply stops before the
// blue-green switch (Result.Paused); a promote decision lets the next
// apply switch and is then forgotten; an abort rolls the next rollout back.
func TestPausePromoteAbort(t *testing.T) {
	w := newMemWorld(t)
	w.exec.Decisions = NewDecisions(t.TempDir(), nil)
	paused := func(f *schema.Fleet) *schema.Fleet { f.Services["web"].Rollout.Pause = true; return f }
	w.apply(t, paused(w.fleet("shop", "main@sha1:1", "v1", 2, schema.BlueGreen)), "main@sha1:1")
	v2 := paused(w.fleet("shop", "main@sha1:2", "v2", 2, schema.BlueGreen))
	res := w.apply(t, v2, "main@sha1:2")
	if len(res.Paused) != 1 || res.Converged || !strings.Contains(res.Paused[0].Paused, "before the switch") {
		t.Fatalf("want web paused before the switch: %+v", res.Paused)
	}
	tr := TrafficOf(must(w.front.Routes(context.Background(), "shop")))["web"]
	if tr.Active != w.fleets["main@sha1:1"].Services["web"].SpecHash(nil) {
		t.Fatalf("switched while paused: %+v", tr)
	}
	if err := w.exec.Decisions.Record(Decision{Fleet: "shop", Service: "web", Action: ActionPromote, By: "test"}); err != nil {
		t.Fatal(err)
	}
	if res := w.apply(t, v2, "main@sha1:2"); !res.Converged {
		t.Fatalf("promoted, not converged: %+v", res.Plan)
	}
	if d, _ := w.exec.Decisions.For("shop"); len(d) != 0 {
		t.Fatalf("the promotion outlived its rollout: %+v", d)
	}
	v3 := paused(w.fleet("shop", "main@sha1:3", "v3", 2, schema.BlueGreen))
	if res := w.apply(t, v3, "main@sha1:3"); len(res.Paused) != 1 {
		t.Fatalf("v3 did not pause: %+v", res.Plan)
	}
	w.exec.Decisions.Record(Decision{Fleet: "shop", Service: "web", Action: ActionAbort, By: "test"})
	res = w.apply(t, v3, "main@sha1:3")
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Reason, "aborted by test") || !res.Converged {
		t.Fatalf("want v3 aborted and rolled back: %+v %+v", res.Failures, res.Plan)
	}
	tr = TrafficOf(must(w.front.Routes(context.Background(), "shop")))["web"]
	if tr.Active != v2.Services["web"].SpecHash(nil) {
		t.Fatalf("after the abort %s serves, want v2", tr.Active)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCanaryThroughTheExecutor: a canary is judged from the front's counts
// once its window ends: a bad one rolls back (the old generation never
// left), a good one promotes and the rollout goes on to every replica.
func TestCanaryThroughTheExecutor(t *testing.T) {
	for _, good := range []bool{false, true} {
		w := newMemWorld(t)
		canary := func(f *schema.Fleet) *schema.Fleet {
			s := f.Services["web"]
			s.Rollout.Strategy = schema.CanaryRun
			s.Rollout.Canary = &schema.Canary{Count: 1, Weight: 20, Duration: 30 * time.Millisecond, MaxErrorRate: 0.05,
				Then: schema.Rolling, MinRequests: 10, MaxLatencyRatio: 2, OnInsufficientTraffic: "rollback"}
			return f
		}
		v1 := canary(w.fleet("shop", "main@sha1:1", "v1", 2, schema.Rolling))
		w.apply(t, v1, "main@sha1:1")
		v2 := canary(w.fleet("shop", "main@sha1:2", "v2", 2, schema.Rolling))
		h1, h2 := v1.Services["web"].SpecHash(nil), v2.Services["web"].SpecHash(nil)
		bad := int64(40)
		if good {
			bad = 0
		}
		w.front.counts = map[string]targets.Counts{h1: counts(400, 0, time.Millisecond), h2: counts(100, bad, time.Millisecond)}
		res := w.apply(t, v2, "main@sha1:2")
		j, ok := res.Judgements["web"]
		switch {
		case !ok:
			t.Fatalf("good=%v: no judgement: %+v", good, res.Plan)
		case good && (j.Verdict != Promote || !res.Converged || w.target.running("shop", "web") != 2):
			t.Fatalf("good canary: %+v converged %v", j, res.Converged)
		case !good && (j.Verdict != Rollback || len(res.Failures) != 1):
			t.Fatalf("bad canary: %+v failures %+v", j, res.Failures)
		}
		tr := TrafficOf(must(w.front.Routes(context.Background(), "shop")))["web"]
		if want := map[bool]string{true: h2, false: h1}[good]; tr.Active != want || tr.Canary != nil {
			t.Fatalf("good=%v: %+v, want %s active and no canary record", good, tr, want)
		}
	}
}
