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

// placed is a placement case: instances whose id's first letter names
// their engine ("a1" runs on engine a), and the engines as the target saw
// them: "a b" (both up), "a b:down", "a:max=3 b".
type placedCase struct {
	name    string
	insts   string
	engines string
	traffic Traffic
	desired Desired
	// want: the engines of the step's provisions in order ("a b a"),
	// the retires by engine ("a=1"), what the service waits for.
	provisions string
	retires    string
	wait       Wait
}

func dockerRolling(r int, surge, unavail string, opts ...rolloutOption) *schema.Service {
	s := rolling(r, surge, unavail, opts...)
	s.Docker = &schema.Docker{Image: "web:1"}
	return s
}

func testEngines(tb rapid.TB, desc string, insts []Observed) []targets.Engine {
	var out []targets.Engine
	for _, f := range strings.Fields(desc) {
		name, opts, _ := strings.Cut(f, ":")
		e := targets.Engine{Name: name, Up: true}
		switch {
		case opts == "down":
			e.Up = false
		case strings.HasPrefix(opts, "max="):
			if _, err := fmt.Sscanf(opts, "max=%d", &e.Max); err != nil {
				tb.Fatalf("engine %q: %v", f, err)
			}
		case opts != "":
			tb.Fatalf("engine %q: unknown option", f)
		}
		for _, o := range insts {
			if o.Engine == name && o.State == targets.Running {
				e.Running++
			}
		}
		out = append(out, e)
	}
	return out
}

func onEnginesByID(obs []Observed) []Observed {
	for i := range obs {
		obs[i].Engine = obs[i].ID[:1]
	}
	return obs
}

func (c placedCase) plan(t *testing.T) (Input, ServicePlan) {
	t.Helper()
	insts := onEnginesByID(instances(t, c.insts))
	in := Input{Fleet: testFleet, Revision: "rev", Desired: web(c.desired), Instances: insts,
		Traffic: webTraffic(c.traffic), Engines: testEngines(t, c.engines, insts), Now: t0}
	p := PlanFleet(in)
	checkPlan(t, in, p)
	return in, p.Services[0]
}

func TestPlacement(t *testing.T) {
	v1 := func(r int, opts ...rolloutOption) Desired { return desire("v1", dockerRolling(r, "1", "0", opts...)) }
	v2 := func(r int) Desired { return desire("v2", dockerRolling(r, "1", "0")) }
	for _, c := range []placedCase{
		{name: "first deploy spreads evenly", engines: "a b", traffic: route("", ""), desired: v1(4),
			provisions: "a b a b"},
		{name: "first deploy of an odd count", engines: "a b c", traffic: route("", ""), desired: v1(5),
			provisions: "a b c a b"},
		{name: "scale up fills the emptier engine first", insts: "web v1 a1:h a2:h b1:h", engines: "a b",
			traffic: route("v1", "a1 a2 b1"), desired: v1(6), provisions: "b a b"},
		{name: "rollout spreads the new generation on its own", insts: "web v1 a1:h a2:h b1:h b2:h", engines: "a b",
			traffic: route("v1", "a1 a2 b1 b2"), desired: v2(4), provisions: "a"},
		{name: "a lost engine: replacements go to the other", insts: "web v1 a1:h a2:h", engines: "a b:down",
			traffic: route("v1", "a1 a2 b1 b2"), desired: v1(4), provisions: "a a"},
		{name: "every engine down: waits for room", engines: "a:down b:down", traffic: route("", ""), desired: v1(2),
			wait: WaitCapacity},
		{name: "capacity respected", engines: "a:max=1 b", traffic: route("", ""), desired: v1(4),
			provisions: "a b b b"},
		{name: "no room anywhere: waits with a reason", insts: "web v1 a1:h b1:h", engines: "a:max=1 b:max=1",
			traffic: route("v1", "a1 b1"), desired: v1(3), wait: WaitCapacity},
		{name: "a retire makes room for its replacement", insts: "web v1 a1:d", engines: "a:max=1",
			traffic: route("v1", ""), desired: v1(1), provisions: "a", retires: "a=1"},
		{name: "the engine back: rebalance provisions there first", insts: "web v1 a1:h a2:h a3:h a4:h", engines: "a b",
			traffic: route("v1", "a1 a2 a3 a4"), desired: v1(4), provisions: "b"},
		{name: "rebalance waits for the new instance before retiring", insts: "web v1 a1:h a2:h a3:h a4:h; web v1@1s b1:u",
			engines: "a b", traffic: route("v1", "a1 a2 a3 a4"), desired: v1(4), wait: WaitReplacement},
		{name: "rebalance retires from the fullest once proven, and goes on", insts: "web v1 a1:h a2:h a3:h a4:h; web v1@1h b1:h",
			engines: "a b", traffic: route("v1", "a1 a2 a3 a4 b1"), desired: v1(4), provisions: "b", retires: "a=1"},
		{name: "even enough: no rebalance", insts: "web v1 a1:h a2:h b1:h", engines: "a b",
			traffic: route("v1", "a1 a2 b1"), desired: v1(3)},
		{name: "no rebalance onto a full engine", insts: "web v1 a1:h a2:h a3:h b1:h", engines: "a b:max=1",
			traffic: route("v1", "a1 a2 a3 b1"), desired: v1(4)},
		{name: "leftovers past the surge go at once, the unproven first; then a rebalance", insts: "web v1 a1:h a2:h a3:h a4:h; web v1@1s b1:u b2:u",
			engines: "a b", traffic: route("v1", "a1 a2 a3 a4"), desired: v1(4), provisions: "b", retires: "b=2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, sp := c.plan(t)
			var got []string
			for _, p := range sp.Step.Provision {
				got = append(got, p.Engine)
			}
			if g := strings.Join(got, " "); g != c.provisions {
				t.Errorf("provisions on %q, want %q\n%s", g, c.provisions, planText(Plan{Services: []ServicePlan{sp}}))
			}
			n := map[string]int{}
			for _, r := range sp.Step.Retire {
				n[r.Instance[:1]]++
			}
			var rs []string
			for _, e := range slices.Sorted(mapsKeys(n)) {
				rs = append(rs, fmt.Sprintf("%s=%d", e, n[e]))
			}
			if g := strings.Join(rs, " "); g != c.retires {
				t.Errorf("retires %q, want %q", g, c.retires)
			}
			if sp.WaitReason != c.wait {
				t.Errorf("waits for %q (%s), want %q", sp.WaitReason, sp.Waiting, c.wait)
			}
		})
	}
}

func planText(p Plan) string {
	var b strings.Builder
	p.WriteText(&b)
	return b.String()
}

func mapsKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestPlacementShownInThePlan(t *testing.T) {
	c := placedCase{engines: "a b", traffic: route("", ""), desired: desire("abcdef123456", dockerRolling(2, "1", "0"))}
	_, sp := c.plan(t)
	got := planText(Plan{Fleet: testFleet, Services: []ServicePlan{sp}})
	if want := "+ 2 new instance(s) of abcdef12 on engines a, b ("; !strings.Contains(got, want) {
		t.Errorf("plan text lacks %q:\n%s", want, got)
	}
	c = placedCase{engines: "a:max=1 b:down", insts: "web abcdef123456 a1:h", traffic: route("abcdef123456", "a1"),
		desired: desire("abcdef123456", dockerRolling(2, "1", "0"))}
	_, sp = c.plan(t)
	got = planText(Plan{Fleet: testFleet, Services: []ServicePlan{sp}})
	if want := "waiting: no engine has room for 1 new instance(s) of abcdef12: a is full (1/1), b does not answer"; !strings.Contains(got, want) {
		t.Errorf("plan text lacks %q:\n%s", want, got)
	}
}

// TestPlacementEngineLostAndBack simulates a fleet over two engines
// through a rollout during which one engine is lost, then comes back:
// every step's provisions are placed and become healthy (proven) at the
// next pass, retires happen, the lost engine's instances vanish from the
// observed fleet and come back dead when it returns. It checks the
// strategy's bound on live instances at every pass, that the rollout
// never fails, and that the spread is even at the end.
func TestPlacementEngineLostAndBack(t *testing.T) {
	const r = 4
	spec := dockerRolling(r, "1", "0")
	live := map[string]Observed{} // by id, lost ones included
	lost := map[string]bool{}     // engine → down
	next := 0
	now := t0
	traffic := route("", "")
	desired := desire("v1", spec)
	step := func(pass int) ServicePlan {
		var obs []Observed
		for _, o := range live {
			if !lost[o.Engine] {
				obs = append(obs, o)
			}
		}
		es := []targets.Engine{{Name: "a", Up: !lost["a"]}, {Name: "b", Up: !lost["b"]}}
		in := Input{Fleet: testFleet, Revision: "rev", Desired: web(desired), Instances: obs,
			Traffic: webTraffic(traffic), Engines: es, Now: now}
		p := PlanFleet(in)
		checkPlan(t, in, p)
		sp := p.Services[0]
		if sp.Failed != "" {
			t.Fatalf("pass %d: rollout failed: %s", pass, sp.Failed)
		}
		alive := 0
		for _, o := range obs {
			if o.State == targets.Running {
				alive++
			}
		}
		if alive > r+1 {
			t.Fatalf("pass %d: %d live instances observed, more than replicas+maxSurge", pass, alive)
		}
		for _, rt := range sp.Step.Retire {
			delete(live, rt.Instance)
		}
		for _, pr := range sp.Step.Provision {
			if pr.Engine == "" || lost[pr.Engine] {
				t.Fatalf("pass %d: provision placed on %q (lost: %v)", pass, pr.Engine, lost)
			}
			id := fmt.Sprintf("%s%d", pr.Engine, next)
			next++
			live[id] = Observed{Instance: targets.Instance{ID: id, Engine: pr.Engine, State: targets.Running,
				Labels: targets.Labels{Fleet: testFleet, Service: "web", SpecHash: sp.Step.Generation, Revision: "rev", CreatedAt: now}}}
		}
		if sp.Traffic != nil {
			traffic = *sp.Traffic
		}
		now = now.Add(time.Minute)
		for id, o := range live { // what was made is proven by the next pass
			if o.State == targets.Running && o.Health != Healthy {
				o.Health, o.HealthySince = Healthy, now.Add(-30*time.Second)
				live[id] = o
			}
		}
		return sp
	}
	converge := func(what string) {
		for pass := 0; pass < 40; pass++ {
			if sp := step(pass); sp.Converged() {
				return
			}
		}
		t.Fatalf("%s: no convergence in 40 passes", what)
	}
	spread := func() map[string]int {
		n := map[string]int{}
		for _, o := range live {
			if o.State == targets.Running && o.Labels.SpecHash == desired.Hash {
				n[o.Engine]++
			}
		}
		return n
	}
	converge("v1")
	if n := spread(); n["a"] != 2 || n["b"] != 2 {
		t.Fatalf("v1 spread %v, want 2 and 2", n)
	}
	desired = desire("v2", spec)
	step(0) // the rollout starts
	lost["b"] = true
	converge("v2 with b lost")
	if n := spread(); n["a"] != r || n["b"] != 0 {
		t.Fatalf("v2 with b lost: spread %v, want all on a", n)
	}
	// b comes back: its containers were stopped by its restart.
	lost["b"] = false
	for id, o := range live {
		if o.Engine == "b" {
			o.State, o.Health = targets.Dead, HealthUnknown
			live[id] = o
		}
	}
	converge("b back")
	if n := spread(); n["a"] != 2 || n["b"] != 2 {
		t.Fatalf("after b came back: spread %v, want 2 and 2", n)
	}
	if len(live) != r {
		t.Fatalf("%d instances live at the end, want %d (a leak)", len(live), r)
	}
}
