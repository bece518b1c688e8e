package reconciler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"pgregory.net/rapid"
)

// The simulator is an in-memory world that carries out the planner's steps
// the way the executor does (route, drain, retire, provision), one step per
// tick of a simulated clock, and checks invariants after every step.

const simTick = time.Second

// behaviour is how the instances of a generation fare.
type behaviour int

const (
	good           behaviour = iota
	neverReady               // stays unknown: only the progress deadline catches it
	turnsUnhealthy           // unknown, then unhealthy
	exits                    // unknown, then dead
)

func (b behaviour) String() string {
	return [...]string{"good", "never ready", "turns unhealthy", "exits"}[b]
}

// simGen is a generation the world can provision.
type simGen struct {
	spec       *schema.Service
	readyAfter int // ticks from the provision to healthy
	bad        behaviour
	badEvery   int // every badEvery-th instance misbehaves (1: all of them)
	count      int // instances provisioned so far
}

type simInst struct {
	id, hash string
	created  int
	// Ticks at which the instance turns healthy, unhealthy, dead; -1: never.
	readyAt, unhealthyAt, deadAt int
}

type simWorld struct {
	tb      rapid.TB
	now     int // tick
	insts   []*simInst
	traffic map[string]Traffic
	gens    map[string]*simGen
	seq     int
	// restartAt is the tick at which the reconciler restarted: every
	// verdict is unknown at that tick and every minHealthyFor clock starts
	// again after it. -1: never.
	restartAt int
	// lost: the router's record was lost, and rebuilt from every instance
	// not known to be unhealthy: the bound (b) on instances no longer holds
	// (the rebuilt route may hold a third generation). blind: lost while
	// the prober had no verdict: nothing tells a ready instance from one
	// still starting, and the floor (a) no longer holds either.
	lost, blind bool
	trace       []string
}

func newSimWorld(tb rapid.TB) *simWorld {
	return &simWorld{tb: tb, traffic: map[string]Traffic{}, gens: map[string]*simGen{}, restartAt: -1}
}

func (w *simWorld) at(tick int) time.Time { return t0.Add(time.Duration(tick) * simTick) }

func (w *simWorld) alive(i *simInst) bool { return i.deadAt < 0 || w.now < i.deadAt }

// healthy is the truth, whatever the reconciler has observed of it.
func (w *simWorld) healthy(i *simInst) bool {
	return w.alive(i) && i.readyAt >= 0 && w.now >= i.readyAt && (i.unhealthyAt < 0 || w.now < i.unhealthyAt)
}

// observe lists the instances as the executor would see them, with one
// instance of another fleet and one without labels that must never be
// touched.
func (w *simWorld) observe() []Observed {
	out := make([]Observed, 0, len(w.insts)+2)
	for _, i := range w.insts {
		o := Observed{Instance: targets.Instance{ID: i.id, State: targets.Running, Labels: targets.Labels{
			Fleet: testFleet, Service: "web", SpecHash: i.hash, Revision: "rev-" + i.hash, CreatedAt: w.at(i.created)}}}
		switch {
		case !w.alive(i):
			o.State = targets.Dead
		case w.now == w.restartAt:
			// the prober has no verdict yet
		case i.unhealthyAt >= 0 && w.now >= i.unhealthyAt:
			o.Health = Unhealthy
		case i.readyAt >= 0 && w.now >= i.readyAt:
			since := i.readyAt
			if w.restartAt >= 0 && w.now > w.restartAt && since <= w.restartAt {
				since = w.restartAt + 1
			}
			o.Health, o.HealthySince = Healthy, w.at(since)
		}
		out = append(out, o)
	}
	out = append(out,
		Observed{Instance: targets.Instance{ID: "foreign", State: targets.Running,
			Labels: targets.Labels{Fleet: "other", Service: "web", SpecHash: "v0", CreatedAt: t0}}, Health: Unhealthy},
		Observed{Instance: targets.Instance{ID: "unlabelled", State: targets.Dead}})
	return out
}

func (w *simWorld) find(id string) *simInst {
	for _, i := range w.insts {
		if i.id == id {
			return i
		}
	}
	return nil
}

// plan observes the world and plans.
func (w *simWorld) plan(desired map[string]Desired) (Input, Plan) {
	tr := make(map[string]Traffic, len(w.traffic))
	for k, v := range w.traffic {
		v.Instances = slices.Clone(v.Instances)
		tr[k] = v
	}
	in := Input{Fleet: testFleet, Revision: "rev", Desired: desired, Instances: w.observe(), Traffic: tr, Now: w.at(w.now)}
	p := PlanFleet(in)
	for i := range p.Services {
		w.logf("t=%d %s", w.now, describePlan(&p.Services[i]))
	}
	checkPlan(w.tb, in, p)
	return in, p
}

func (w *simWorld) logf(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf(format, args...))
}

// fatalf fails with the trace of the run so far.
func (w *simWorld) fatalf(format string, args ...any) {
	w.tb.Helper()
	tail := w.trace[max(0, len(w.trace)-30):]
	w.tb.Fatalf("t=%d: %s\nworld: %s\nlast plans:\n%s", w.now, fmt.Sprintf(format, args...), w, strings.Join(tail, "\n"))
}

func (w *simWorld) String() string {
	var b strings.Builder
	tr := w.traffic["web"]
	fmt.Fprintf(&b, "active=%s previous=%s route=%v", tr.Active, tr.Previous, tr.Instances)
	for _, i := range w.insts {
		state := "unknown"
		switch {
		case !w.alive(i):
			state = "dead"
		case w.healthy(i):
			state = "healthy"
		case i.unhealthyAt >= 0 && w.now >= i.unhealthyAt:
			state = "unhealthy"
		}
		fmt.Fprintf(&b, " %s:%s", i.id, state)
	}
	return b.String()
}

// apply carries out the first step of every service of the plan, as the
// executor does: the traffic change, drains (nothing to do here), retires,
// then provisions of the desired spec.
func (w *simWorld) apply(in Input, p Plan) {
	w.tb.Helper()
	for _, sp := range p.Services {
		if sp.Failed != "" {
			continue
		}
		if sp.Traffic != nil {
			if _, wanted := in.Desired[sp.Service]; !wanted && len(sp.Traffic.Instances) == 0 {
				delete(w.traffic, sp.Service)
			} else {
				t := *sp.Traffic
				t.Instances = slices.Clone(t.Instances)
				w.traffic[sp.Service] = t
			}
		}
		for _, r := range sp.Step.Retire {
			i := slices.IndexFunc(w.insts, func(i *simInst) bool { return i.id == r.Instance })
			if i < 0 {
				w.fatalf("retire of %s: no such instance", r.Instance)
			}
			w.insts = slices.Delete(w.insts, i, i+1)
		}
		d := in.Desired[sp.Service]
		for range sp.Step.Provision {
			g := w.gens[d.Hash]
			if g == nil {
				w.fatalf("provision of unknown generation %q", d.Hash)
			}
			w.seq++
			i := &simInst{id: fmt.Sprintf("%s-%03d", d.Hash, w.seq), hash: d.Hash, created: w.now,
				readyAt: w.now + 1 + g.readyAfter, unhealthyAt: -1, deadAt: -1}
			if g.bad != good && g.count%g.badEvery == 0 {
				switch g.bad {
				case neverReady:
					i.readyAt = -1
				case turnsUnhealthy:
					i.readyAt, i.unhealthyAt = -1, w.now+1+g.readyAfter
				case exits:
					i.readyAt, i.deadAt = -1, w.now+1+g.readyAfter
				}
			}
			g.count++
			w.insts = append(w.insts, i)
		}
	}
}

// scenario is one drawn rollout.
type scenario struct {
	replicas         int
	strategy         schema.Strategy
	surge, unavail   schema.IntOrPercent
	minHealthy       int // ticks
	keep             bool
	readyV1, readyV2 int // ticks
	// restartAt, when >= 0, restarts the reconciler that many ticks into
	// the rollout: with amnesia the prober forgets every verdict, with
	// loseTraffic the router's record is lost.
	restartAt            int
	amnesia, loseTraffic bool
}

func drawIntOrPercent(t *rapid.T, name string) schema.IntOrPercent {
	if rapid.Bool().Draw(t, name+" is percent") {
		return schema.IntOrPercent{Value: rapid.SampledFrom([]int{0, 25, 50, 100}).Draw(t, name+"%"), Percent: true}
	}
	return schema.IntOrPercent{Value: rapid.IntRange(0, 4).Draw(t, name)}
}

func drawScenario(t *rapid.T) scenario {
	sc := scenario{
		replicas:   rapid.IntRange(0, 12).Draw(t, "replicas"),
		strategy:   rapid.SampledFrom([]schema.Strategy{schema.Rolling, schema.BlueGreen}).Draw(t, "strategy"),
		minHealthy: rapid.IntRange(0, 3).Draw(t, "minHealthyFor"),
		keep:       rapid.Bool().Draw(t, "keepPrevious"),
		readyV1:    rapid.IntRange(0, 3).Draw(t, "ready v1"),
		readyV2:    rapid.IntRange(0, 3).Draw(t, "ready v2"),
		restartAt:  -1,
	}
	for {
		sc.surge, sc.unavail = drawIntOrPercent(t, "maxSurge"), drawIntOrPercent(t, "maxUnavailable")
		if sc.surge.Value != 0 || sc.unavail.Value != 0 {
			break
		}
	}
	if rapid.Bool().Draw(t, "restart") {
		sc.restartAt = rapid.IntRange(0, 20).Draw(t, "restart at")
		sc.loseTraffic = rapid.Bool().Draw(t, "lose traffic")
		sc.amnesia = !sc.loseTraffic || rapid.Bool().Draw(t, "amnesia")
	}
	return sc
}

// keeps reports whether the scenario keeps a warm previous generation:
// only blue-green does (rolling keeps none, whatever keepPrevious says).
func (sc scenario) keeps() bool { return sc.keep && sc.strategy != schema.Rolling }

func (sc scenario) spec(deadlineTicks int) *schema.Service {
	s := &schema.Service{Name: "web", Replicas: sc.replicas, Rollout: schema.Rollout{
		Strategy: sc.strategy, MaxSurge: sc.surge, MaxUnavailable: sc.unavail,
		MinHealthyFor:    time.Duration(sc.minHealthy) * simTick,
		ProgressDeadline: time.Duration(deadlineTicks) * simTick,
	}}
	if sc.keep {
		s.Rollout.KeepPrevious = time.Hour
	}
	return s
}

// resolved returns maxSurge and maxUnavailable as the planner resolves them.
func resolved(s *schema.Service) (surge, unavail int) {
	surge = s.Rollout.MaxSurge.Resolve(s.Replicas, true)
	unavail = s.Rollout.MaxUnavailable.Resolve(s.Replicas, false)
	if surge == 0 && unavail == 0 {
		surge = 1
	}
	return surge, unavail
}

// ticksBound is how long a rollout of the scenario may take, generously:
// one batch per replica at worst, each waiting for readiness and soak.
func (sc scenario) ticksBound(deadlineTicks int) int {
	per := sc.readyV1 + sc.readyV2 + sc.minHealthy + 4
	return 40 + deadlineTicks + 2*(sc.replicas+2)*per
}

// checkStep checks the world once a step is carried out: (a) the healthy
// floor when floor is set; (b) a step that provisions leaves at most
// replicas+maxSurge live instances in traffic or of the desired generation
// (2×replicas for blue-green), and besides them at most one warm
// generation (a rollback may count the warm generation it returns to as
// its own: it provisions nothing then); (c) a route of live instances only;
// and (a') outside a rollback, an instance of another generation leaves
// the route only while the floor holds counting a new instance only once
// healthy for minHealthyFor (blue-green: once all replicas are), or warm
// from before it left traffic.
func (w *simWorld) checkStep(in Input, d Desired, floor bool, provisioned int) {
	w.tb.Helper()
	spec := d.Spec
	r := spec.Replicas
	surge, unavail := resolved(spec)
	tr := w.traffic["web"]
	healthyRouted := 0
	for _, id := range tr.Instances {
		i := w.find(id)
		switch {
		case i == nil:
			w.fatalf("(c) route holds %s, which is gone", id)
		case !w.alive(i):
			w.fatalf("(c) route holds dead instance %s", id)
		case w.healthy(i):
			healthyRouted++
		}
	}
	if floor && !w.blind && healthyRouted < r-unavail {
		w.fatalf("(a) %d healthy instances in the route, floor is %d-%d", healthyRouted, r, unavail)
	}
	if before, known := in.Traffic["web"]; known && !d.Rollback && !w.blind {
		w.checkSoak(in, before, d, r-unavail)
	}
	nonWarm, total := 0, 0
	for _, i := range w.insts {
		if !w.alive(i) {
			continue
		}
		total++
		if i.hash == d.Hash || slices.Contains(tr.Instances, i.id) {
			nonWarm++
		}
	}
	limit := r + surge
	if spec.Rollout.Strategy == schema.BlueGreen && !d.Rollback {
		limit = max(limit, 2*r)
	}
	if w.lost {
		return
	}
	if provisioned > 0 && nonWarm > limit {
		w.fatalf("(b) %d live instances in traffic or of the desired generation, limit %d", nonWarm, limit)
	}
	if spec.Rollout.Strategy == schema.Rolling && total > r+surge {
		// Rolling means rolling: never more than replicas + maxSurge
		// instances alive, whatever keepPrevious says.
		w.fatalf("(b) %d live instances of a rolling service, replicas %d + maxSurge %d", total, r, surge)
	}
	if spec.Rollout.KeepPrevious > 0 && spec.Rollout.Strategy != schema.Rolling {
		limit += r // one warm generation
	}
	if total > limit {
		w.fatalf("(b) %d live instances, limit %d", total, limit)
	}
}

// disrupt restarts the reconciler at the scenario's tick into the rollout
// that started at start.
func (w *simWorld) disrupt(sc scenario, start int) {
	if sc.restartAt < 0 || w.now != start+sc.restartAt {
		return
	}
	if sc.amnesia {
		w.restartAt = w.now
	}
	if sc.loseTraffic {
		delete(w.traffic, "web")
		w.lost, w.blind = true, sc.amnesia
	}
	w.logf("t=%d restart (amnesia: %v, lose traffic: %v)", w.now, sc.amnesia, sc.loseTraffic)
}

// checkSoak checks (a'): see checkStep.
func (w *simWorld) checkSoak(in Input, before Traffic, d Desired, floor int) {
	w.tb.Helper()
	obs := map[string]Observed{}
	for _, o := range in.Instances {
		obs[o.ID] = o
	}
	after := w.traffic["web"].Instances
	left := false
	for _, id := range before.Instances {
		o, ok := obs[id]
		if ok && o.Labels.SpecHash != d.Hash && o.State != targets.Dead && o.Health != Unhealthy && !slices.Contains(after, id) {
			left = true
		}
	}
	if !left {
		return
	}
	soak := d.Spec.Rollout.MinHealthyFor
	if d.Spec.Rollout.Strategy == schema.BlueGreen && before.Active != d.Hash {
		floor = d.Spec.Replicas
	}
	n := 0
	for _, id := range after {
		o := obs[id]
		switch {
		case o.Labels.SpecHash != d.Hash:
			if w.healthy(w.find(id)) {
				n++
			}
		case o.Health == Healthy && !o.HealthySince.After(in.Now.Add(-soak)):
			n++
		case o.Health == Healthy && o.Labels.SpecHash == before.Previous && !o.Labels.CreatedAt.After(before.PreviousSince):
			n++ // a warm instance switched back to: proven before it left traffic
		}
	}
	if n < floor {
		w.fatalf("(a') an old instance left the route with %d old or proven instances in it, floor %d", n, floor)
	}
}

// checkConverged checks the converged world: exactly replicas healthy
// instances of hash, all in the route, and besides them only warm
// instances of the previous generation, out of traffic.
func (w *simWorld) checkConverged(hash string, r int) {
	w.tb.Helper()
	tr := w.traffic["web"]
	if tr.Active != hash {
		w.fatalf("converged with active %q, want %q", tr.Active, hash)
	}
	n := 0
	for _, i := range w.insts {
		routed := slices.Contains(tr.Instances, i.id)
		switch {
		case i.hash == hash:
			n++
			if !routed || !w.healthy(i) {
				w.fatalf("converged with %s out of traffic or not healthy", i.id)
			}
		case routed:
			w.fatalf("converged with %s of %s in traffic", i.id, i.hash)
		case i.hash != tr.Previous || !w.alive(i):
			w.fatalf("converged with %s of %s left over", i.id, i.hash)
		}
	}
	if n != r || len(tr.Instances) != r {
		w.fatalf("converged with %d instances of %s, %d routed, want %d", n, hash, len(tr.Instances), r)
	}
}

// run plans and steps until the plan converges or the bound passes. A
// failed rollout switches desired to a rollback to the active generation,
// as the executor does (to the plan's From: the active generation, or the
// one rebuilt from a lost record). floor turns the check of (a) on.
func (w *simWorld) run(desired *Desired, rollbackSpec *schema.Service, bound int, floor bool, hook func()) (failed bool) {
	w.tb.Helper()
	for end := w.now + bound; w.now <= end; w.now++ {
		if hook != nil {
			hook()
		}
		in, p := w.plan(map[string]Desired{"web": *desired})
		if sp := &p.Services[0]; sp.Failed != "" {
			if desired.Rollback {
				w.fatalf("a rollback failed: %s", sp.Failed)
			}
			if sp.From != "v1" || rollbackSpec == nil {
				w.fatalf("rollout failed from %q: %s", sp.From, sp.Failed)
			}
			failed = true
			*desired = rollbackTo(sp.From, rollbackSpec)
			in, p = w.plan(map[string]Desired{"web": *desired})
		}
		w.apply(in, p)
		w.checkStep(in, *desired, floor, len(p.Services[0].Step.Provision))
		if p.Converged() {
			return failed
		}
	}
	w.fatalf("not converged after %d ticks", bound)
	return failed
}

// TestSimRollout rolls a converged v1 to v2 (good), through an optional
// reconciler restart and an optional v3 landing mid-rollout, then reverts
// to v1, lets the warm generation expire and removes the service.
func TestSimRollout(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		w := newSimWorld(t)
		v1, v2 := sc.spec(0), sc.spec(0)
		w.gens["v1"] = &simGen{spec: v1, readyAfter: sc.readyV1}
		w.gens["v2"] = &simGen{spec: v2, readyAfter: sc.readyV2}
		bound := sc.ticksBound(0)

		d := desire("v1", v1)
		w.run(&d, nil, bound, false, nil)
		w.checkConverged("v1", sc.replicas)

		// Optionally, a v3 commit lands in the middle of the rollout.
		final, interruptAt := "v2", -1
		v3 := sc.spec(0)
		w.gens["v3"] = &simGen{spec: v3, readyAfter: sc.readyV2}
		if rapid.Bool().Draw(t, "interrupt") {
			interruptAt = rapid.IntRange(0, 15).Draw(t, "interrupt at")
			final = "v3"
		}
		start := w.now
		d = desire("v2", v2)
		hook := func() {
			w.disrupt(sc, start)
			if w.now == start+interruptAt {
				d = desire("v3", v3)
				w.logf("t=%d desired v3", w.now)
			}
		}
		if w.run(&d, v1, 2*bound, true, hook) {
			w.fatalf("a good rollout failed")
		}
		if d.Hash != final { // converged to v2 before v3 came
			d = desire("v3", v3)
			w.now++
			w.run(&d, v1, bound, true, nil)
		}
		w.checkConverged(final, sc.replicas)
		// Revert to the generation before the final one (v2 if v3 came
		// after v2 converged), known as previous with keepPrevious.
		back := w.traffic["web"].Previous
		if back == "" {
			back = "v1"
		}

		// Revert. With keepPrevious the whole generation before is warm
		// (unless the traffic record was lost, which forgets it): an
		// instant switch; or, when a warm instance died meanwhile, a
		// rollout that must not fail however old the warm instances are.
		var warm []*simInst
		for _, i := range w.insts {
			if i.hash == back {
				warm = append(warm, i)
			}
		}
		if sc.keeps() && !sc.loseTraffic && len(warm) != sc.replicas {
			w.fatalf("%d warm instances of %s, want %d", len(warm), back, sc.replicas)
		}
		killWarm := len(warm) > 0 && rapid.Bool().Draw(t, "kill a warm instance")
		if killWarm {
			warm[0].deadAt = w.now + 1
		}
		d = desire(back, w.gens[back].spec)
		w.now++
		in, p := w.plan(map[string]Desired{"web": d})
		if sp := &p.Services[0]; sc.keeps() && !sc.loseTraffic && !killWarm && sc.replicas > 0 {
			if len(sp.Step.Provision) > 0 || sp.Traffic == nil || sp.Traffic.Active != back {
				w.fatalf("revert to a warm previous generation is no instant switch: %s", describePlan(sp))
			}
		}
		w.apply(in, p)
		w.checkStep(in, d, true, len(p.Services[0].Step.Provision))
		w.now++
		w.run(&d, nil, bound, true, nil) // a failure is fatal
		w.checkConverged(back, sc.replicas)

		// keepPrevious expires: the warm generation goes.
		w.now += int(time.Hour/simTick) + 1
		w.run(&d, nil, bound, true, nil)
		w.checkConverged(back, sc.replicas)
		for _, i := range w.insts {
			if i.hash != back {
				w.fatalf("%s left after keepPrevious expired", i.id)
			}
		}

		// Remove the service: everything is pruned and the record dropped.
		for range 3 {
			w.now++
			in, p := w.plan(map[string]Desired{})
			w.apply(in, p)
		}
		if _, p := w.plan(map[string]Desired{}); len(w.insts) > 0 || len(p.Services) > 0 || len(w.traffic) > 0 {
			w.fatalf("service not pruned: %d instances, plan %+v", len(w.insts), p)
		}
	})
}

// TestSimBadRollout rolls v1 to a v2 whose instances (all, or every n-th)
// never turn healthy, turn unhealthy or exit: the rollout fails and the
// rollback returns to v1 with the healthy floor held throughout.
func TestSimBadRollout(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		// A lost traffic record in the middle of a failing rollout loses
		// which generation was good: not a case the planner can recover.
		sc.loseTraffic = false
		w := newSimWorld(t)
		deadlineTicks := rapid.IntRange(sc.minHealthy+1, 40).Draw(t, "progressDeadline")
		v1, v2 := sc.spec(0), sc.spec(deadlineTicks)
		w.gens["v1"] = &simGen{spec: v1, readyAfter: sc.readyV1}
		w.gens["v2"] = &simGen{spec: v2, readyAfter: sc.readyV2,
			bad:      rapid.SampledFrom([]behaviour{neverReady, turnsUnhealthy, exits}).Draw(t, "bad"),
			badEvery: rapid.IntRange(1, 3).Draw(t, "bad every")}
		bound := sc.ticksBound(deadlineTicks)

		d := desire("v1", v1)
		w.run(&d, nil, bound, false, nil)
		w.checkConverged("v1", sc.replicas)

		start := w.now
		d = desire("v2", v2)
		failed := w.run(&d, v1, 2*bound, true, func() { w.disrupt(sc, start) })
		switch {
		case sc.replicas == 0:
			if failed {
				w.fatalf("a rollout of zero instances failed")
			}
			w.checkConverged("v2", 0)
		case !failed:
			w.fatalf("a bad rollout converged without failing")
		default:
			w.checkConverged("v1", sc.replicas)
		}
	})
}

// TestSimChaos kills instances and turns them unhealthy at random during a
// rollout; once the chaos stops, the fleet converges (to v2, or back to v1
// when the chaos failed the rollout), and no plan ever routes a dead or
// unhealthy instance nor exceeds the instance bound.
func TestSimChaos(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		sc.restartAt = -1
		w := newSimWorld(t)
		v1, v2 := sc.spec(0), sc.spec(0)
		w.gens["v1"] = &simGen{spec: v1, readyAfter: sc.readyV1}
		w.gens["v2"] = &simGen{spec: v2, readyAfter: sc.readyV2}
		bound := sc.ticksBound(0)

		d := desire("v1", v1)
		w.run(&d, nil, bound, false, nil)

		chaosUntil := w.now + rapid.IntRange(1, 30).Draw(t, "chaos ticks")
		d = desire("v2", v2)
		chaos := func() {
			if w.now >= chaosUntil || len(w.insts) == 0 || !rapid.Bool().Draw(t, "strike") {
				return
			}
			i := w.insts[rapid.IntRange(0, len(w.insts)-1).Draw(t, "victim")]
			if !w.alive(i) {
				return
			}
			if rapid.Bool().Draw(t, "kill") {
				i.deadAt = w.now
				w.logf("t=%d chaos: %s dies", w.now, i.id)
			} else {
				i.unhealthyAt = w.now
				w.logf("t=%d chaos: %s turns unhealthy", w.now, i.id)
			}
		}
		failed := w.run(&d, v1, 2*bound+30, false, chaos)
		final := "v2"
		if failed {
			final = "v1"
		}
		w.checkConverged(final, sc.replicas)
	})
}
