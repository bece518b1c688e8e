package reconciler

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"pgregory.net/rapid"
)

// steadyFleet draws a fleet whose services start converged and then
// suffer a few of the changes that the shortcut must leave to the stages
// (or, for some, that it must see are harmless).
func steadyFleet(t *rapid.T) Input {
	in := Input{Fleet: testFleet, Revision: "rev", Now: t0,
		Desired: map[string]Desired{}, Traffic: map[string]Traffic{}, Routes: map[string]targets.Route{}}
	strategies := []schema.Strategy{schema.Rolling, schema.BlueGreen, schema.CanaryRun}
	for s := range rapid.IntRange(1, 3).Draw(t, "services") {
		svc := fmt.Sprintf("svc%d", s)
		r := rapid.IntRange(0, 4).Draw(t, "replicas")
		spec := rolling(r, "25%", "25%", keep(time.Hour), deadline(time.Hour))
		spec.Name = svc
		spec.Rollout.Strategy = rapid.SampledFrom(strategies).Draw(t, "strategy")
		if spec.Rollout.Strategy == schema.CanaryRun {
			spec.Rollout.Canary = &schema.Canary{Count: 1, Weight: 10, Duration: time.Minute, Then: schema.Rolling}
		}
		switch rapid.IntRange(0, 2).Draw(t, "expose") {
		case 1:
			spec.Expose = &schema.Expose{Listen: "127.0.0.1:8080", Port: "http"}
		case 2:
			spec.Expose = &schema.Expose{HAProxy: "be_" + svc, Port: "http"}
		}
		d := desire("v1", spec)
		tr := Traffic{Active: "v1", Instances: []string{}}
		var insts []Observed
		for i := range r {
			created := t0.Add(-time.Duration(24+i) * time.Hour)
			o := Observed{Instance: targets.Instance{ID: fmt.Sprintf("%s-%d", svc, i), State: targets.Running,
				Endpoints: map[string]string{"http": fmt.Sprintf("127.0.0.1:%d", 9000+i)},
				Labels:    targets.Labels{Fleet: testFleet, Service: svc, SpecHash: "v1", Revision: "rev-v1", CreatedAt: created}},
				Health: Healthy, HealthySince: created.Add(time.Minute)}
			insts = append(insts, o)
			tr.Instances = append(tr.Instances, o.ID)
		}
		slices.Sort(tr.Instances)
		perturb := rapid.IntRange(0, 3).Draw(t, "perturbations")
		routeOK := true
		for range perturb {
			i := -1
			if len(insts) > 0 {
				i = rapid.IntRange(0, len(insts)-1).Draw(t, "instance")
			}
			o := func() *Observed {
				if i < 0 {
					return &Observed{}
				}
				return &insts[i]
			}
			switch k := rapid.IntRange(0, 27).Draw(t, "change"); k {
			case 0:
				o().Health = Unhealthy
			case 1:
				o().Health, o().HealthySince = HealthUnknown, time.Time{}
			case 2:
				o().State = targets.Dead
			case 3:
				o().Drift = "env changed"
			case 4:
				o().LivenessFailed = true
			case 5:
				o().HealthySince = t0 // minHealthyFor below: not stable yet
				spec.Rollout.MinHealthyFor = time.Minute
			case 6: // an old instance, routed or not
				old := Observed{Instance: targets.Instance{ID: svc + "-old", State: targets.Running,
					Labels: targets.Labels{Fleet: testFleet, Service: svc, SpecHash: "v0", CreatedAt: t0.Add(-48 * time.Hour)}}, Health: Healthy}
				insts = append(insts, old)
				if rapid.Bool().Draw(t, "routed") {
					tr.Instances = append(tr.Instances, old.ID)
					slices.Sort(tr.Instances)
				}
			case 7: // one more of the desired generation
				extra := Observed{Instance: targets.Instance{ID: svc + "-extra", State: targets.Running,
					Labels: targets.Labels{Fleet: testFleet, Service: svc, SpecHash: "v1", CreatedAt: t0.Add(-time.Hour)}}, Health: Healthy}
				insts = append(insts, extra)
			case 8:
				if i >= 0 {
					insts = slices.Delete(insts, i, i+1)
				}
			case 9:
				slices.Reverse(tr.Instances)
			case 10:
				tr.Instances = append(tr.Instances, svc+"-gone")
				slices.Sort(tr.Instances)
			case 11:
				if len(tr.Instances) > 0 {
					tr.Instances = tr.Instances[1:]
				}
			case 12:
				tr.Previous, tr.PreviousSince = "v0", t0.Add(-rapid.SampledFrom([]time.Duration{time.Minute, 2 * time.Hour}).Draw(t, "ago"))
			case 13:
				tr.Canary = &CanaryState{Hash: "v1", Weight: 10, Since: t0.Add(-time.Hour), Verdict: Promote}
			case 14:
				tr.Verify = &VerifyState{Hash: "v1", Since: t0.Add(-time.Minute)}
				spec.Rollout.VerifyFor = time.Hour
			case 15:
				d = rollbackTo("v1", spec)
			case 16:
				d.Stalled = "cannot resolve"
			case 17:
				d = Desired{Hash: "", Expose: spec.Expose, Declared: spec} // hold
			case 18:
				d = desire("v2", spec)
			case 19:
				spec.Recycle = &schema.Recycle{MaxAge: rapid.SampledFrom([]time.Duration{time.Hour, 1000 * time.Hour}).Draw(t, "maxAge"),
					Window: rapid.SampledFrom([]string{"", "* 2-4 * * *"}).Draw(t, "window")}
			case 20:
				in.Decisions = map[string]Decision{svc: {Fleet: testFleet, Service: svc,
					Action: rapid.SampledFrom([]Action{ActionPromote, ActionAbort}).Draw(t, "action")}}
			case 21:
				in.Stalled = map[string]string{svc: "invalid spec"}
			case 22:
				in.Backoff = map[string]Backoff{svc: {Until: t0.Add(time.Minute), Err: "busy"}}
			case 23:
				spec.Docker = &schema.Docker{Image: "web"}
				in.Engines = []targets.Engine{{Name: "a", Up: true}, {Name: "b", Up: true}}[:rapid.IntRange(1, 2).Draw(t, "engines")]
				for j := range insts {
					insts[j].Engine = "a"
				}
			case 24:
				routeOK = false
			case 25:
				delete(o().Endpoints, "http")
			case 26: // an id JSON escapes
				if i >= 0 {
					j := slices.Index(tr.Instances, insts[i].ID)
					insts[i].ID = svc + "-<&>"
					if j >= 0 {
						tr.Instances[j] = insts[i].ID
						slices.Sort(tr.Instances)
					}
				}
			case 27: // the same id twice
				if i >= 0 {
					insts = append(insts, insts[i])
				}
			}
		}
		in.Desired[svc] = d
		in.Traffic[svc] = tr
		rt := buildRoute(svc, spec.Expose, tr, insts)
		if !routeOK {
			switch rapid.IntRange(0, 4).Draw(t, "route") {
			case 0:
				rt.Listen = "127.0.0.1:1"
			case 1:
				rt.Meta["other"] = "x"
			case 2:
				rt.Meta[MetaTraffic] = encodeTraffic(Traffic{Active: "v0"})
			case 3:
				if len(rt.Backends) > 0 {
					rt.Backends[0].Addr = "127.0.0.1:1"
				}
			case 4:
				rt = targets.Route{}
			}
		}
		if rapid.IntRange(0, 9).Draw(t, "no route") > 0 {
			in.Routes[svc] = rt
		}
		in.Instances = append(in.Instances, insts...)
	}
	if rapid.IntRange(0, 4).Draw(t, "routes given") == 0 {
		in.Routes = nil
	}
	in.Instances = append(in.Instances, Observed{Instance: targets.Instance{ID: "foreign", State: targets.Running,
		Labels: targets.Labels{Fleet: "other", Service: "svc0", SpecHash: "v1", CreatedAt: t0}}, Health: Unhealthy})
	order := rapid.Permutation(in.Instances).Draw(t, "order")
	in.Instances = order
	return in
}

// TestPlanSteadyShortcut: on converged and nearly converged fleets, the
// plan with the shortcut for converged services is exactly the plan of
// the stages, and neither changes the input.
func TestPlanSteadyShortcut(t *testing.T) {
	taken, total := 0, 0
	rapid.Check(t, func(t *rapid.T) {
		in := steadyFleet(t)
		before := slices.Clone(in.Instances)
		fast := planFleet(in, true)
		if !slices.EqualFunc(before, in.Instances, func(a, b Observed) bool { return cmp.Equal(a, b) }) {
			t.Fatalf("the plan changed its input")
		}
		slow := planFleet(in, false)
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("shortcut plan differs from the stages' (-stages +shortcut):\n%s", diff)
		}
		if ids := ids(ptrs(in.Instances)); len(slices.Compact(slices.Sorted(slices.Values(ids)))) == len(ids) {
			checkPlan(t, in, fast) // (a repeated id, which no target lists, breaks its invariants)
		}
		for i := range fast.Services {
			total++
			if fast.Services[i].Converged() {
				taken++
			}
		}
	})
	t.Logf("%d of %d services converged", taken, total)
	if taken == 0 || taken == total {
		t.Fatalf("%d of %d services converged: the draw covers one side only", taken, total)
	}
}

// TestPlanSteadyTaken: a converged service is planned by the shortcut
// (the benchmark's fleet, both shapes), so its speed is the shortcut's.
func TestPlanSteadyTaken(t *testing.T) {
	for _, tc := range []struct{ n, per int }{{100, 10}, {100, 0}, {512, 0}} {
		in, per := noopInput(tc.n, tc.per), tc.per
		groups := groupByService(in, true)
		for _, g := range groups.all {
			if !g.steady.done(&g.tally) {
				t.Fatalf("per %d: %s is converged and not taken by the shortcut", per, g.name)
			}
		}
	}
}

// TestTrafficEncodes: comparing a record as it is read gives what
// comparing its encoding gives.
func TestTrafficEncodes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		str := rapid.OneOf(rapid.StringMatching(`[a-z0-9-]{0,6}`), rapid.String())
		tr := Traffic{Active: str.Draw(t, "active"), Instances: rapid.SliceOfN(str, 0, 4).Draw(t, "instances")}
		if rapid.IntRange(0, 5).Draw(t, "previous") == 0 {
			tr.Previous, tr.PreviousSince = "v0", t0
		}
		raw := encodeTraffic(tr)
		switch rapid.IntRange(0, 3).Draw(t, "raw") {
		case 1:
			raw = raw[:rapid.IntRange(0, len(raw)).Draw(t, "cut")]
		case 2:
			other := Traffic{Active: str.Draw(t, "other active"), Instances: rapid.SliceOfN(str, 0, 4).Draw(t, "other instances")}
			raw = encodeTraffic(other)
		case 3:
			b, _ := json.Marshal(map[string]any{"active": tr.Active, "instances": tr.Instances, "x": 1})
			raw = string(b)
		}
		if got, want := trafficEncodes(raw, tr), raw == encodeTraffic(tr); got != want {
			t.Fatalf("trafficEncodes(%q, %+v) = %v, want %v", raw, tr, got, want)
		}
	})
}

func ptrs(os []Observed) []*Observed {
	out := make([]*Observed, len(os))
	for i := range os {
		out[i] = &os[i]
	}
	return out
}

// TestPlanSteadyLarge: in a service larger than the draws above, an
// instance out of the record, a repeated one, an unhealthy one or a wrong
// backend leave the shortcut, and the plan is the stages'.
func TestPlanSteadyLarge(t *testing.T) {
	for name, change := range map[string]func(in *Input){
		"converged":  func(in *Input) {},
		"not routed": func(in *Input) { in.Instances[7].ID = "svc00000-stray" },
		"repeated":   func(in *Input) { in.Instances[7] = in.Instances[8] },
		"unhealthy":  func(in *Input) { in.Instances[7].Health = Unhealthy },
		"backend": func(in *Input) {
			rt := in.Routes["svc00000"]
			rt.Backends = slices.Clone(rt.Backends)
			rt.Backends[3].Addr = "127.0.0.1:1"
			in.Routes["svc00000"] = rt
		},
		// (The sums of these hold the same terms as the converged one's,
		// or terms of the same instances: each must still leave.)
		"addresses swapped": func(in *Input) {
			a, b := in.Instances[3].Endpoints, in.Instances[9].Endpoints
			in.Instances[3].Endpoints, in.Instances[9].Endpoints = b, a
		},
		"backends out of order": func(in *Input) {
			rt := in.Routes["svc00000"]
			rt.Backends = slices.Clone(rt.Backends)
			rt.Backends[3], rt.Backends[4] = rt.Backends[4], rt.Backends[3]
			in.Routes["svc00000"] = rt
		},
		"backend repeated": func(in *Input) {
			rt := in.Routes["svc00000"]
			rt.Backends = slices.Clone(rt.Backends)
			rt.Backends[4] = rt.Backends[3]
			in.Routes["svc00000"] = rt
		},
		"backend missing": func(in *Input) {
			rt := in.Routes["svc00000"]
			rt.Backends = slices.Delete(slices.Clone(rt.Backends), 3, 4)
			in.Routes["svc00000"] = rt
		},
		"backend of another generation": func(in *Input) {
			rt := in.Routes["svc00000"]
			rt.Backends = slices.Clone(rt.Backends)
			rt.Backends[3].Generation = "v0"
			in.Routes["svc00000"] = rt
		},
		"instance without an address": func(in *Input) { in.Instances[7].Endpoints = nil },
		"one repeated, one missing, ids summing alike": func(in *Input) {
			// (Two instances trade ids: the multiset is the same, each
			// instance's address is now another id's.)
			in.Instances[3].ID, in.Instances[9].ID = in.Instances[9].ID, in.Instances[3].ID
		},
	} {
		in := noopInput(512+1, 0)
		change(&in)
		checkSteadyChange(t, name, in)
	}
}

// checkSteadyChange checks that the shortcut plans a changed converged
// input as the stages do, and that the plan is converged only when the
// change is "converged".
func checkSteadyChange(t *testing.T, name string, in Input) {
	t.Helper()
	fast, slow := planFleet(in, true), planFleet(in, false)
	if diff := cmp.Diff(slow, fast); diff != "" {
		t.Errorf("%s: shortcut plan differs from the stages' (-stages +shortcut):\n%s", name, diff)
	}
	if got := fast.Converged(); got != (name == "converged") {
		t.Errorf("%s: converged %v", name, got)
	}
}

// TestPlanSteadyParallel: a fleet large enough to be grouped in parts
// side by side gets the plan the stages give, converged or not, with an
// instance of a service no map names.
func TestPlanSteadyParallel(t *testing.T) {
	for name, change := range map[string]func(in *Input){
		"converged": func(in *Input) {},
		"unhealthy": func(in *Input) { in.Instances[len(in.Instances)-1].Health = Unhealthy },
		"unnamed service": func(in *Input) {
			o := in.Instances[0]
			o.ID, o.Labels.Service = "stray-1", "stray"
			in.Instances = append(in.Instances, o)
		},
	} {
		in := noopInput(2*parallelFrom, 10)
		change(&in)
		checkSteadyChange(t, name, in)
	}
}
