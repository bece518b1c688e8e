package reconciler

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestPlanReplacesBeforeRetiring: a steady rolling service whose instances
// are in any state (healthy, starting, unhealthy, dead). Whatever the
// plan does:
//   - at most replicas + maxSurge instances live once the step is done;
//   - an unhealthy instance is out of traffic at once;
//   - an unhealthy instance is retired before its replacement is healthy
//     only when no replacement fits beside it;
//   - no healthy instance in traffic is retired while the healthy ones
//     in traffic would drop below the floor;
//   - the service is never converged with fewer healthy instances than it
//     wants.
func TestPlanReplacesBeforeRetiring(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		r := rapid.IntRange(1, 6).Draw(rt, "replicas")
		surge := rapid.IntRange(0, 2).Draw(rt, "maxSurge")
		unavail := rapid.IntRange(0, 2).Draw(rt, "maxUnavailable")
		if surge == 0 && unavail == 0 {
			surge = 1
		}
		n := rapid.IntRange(0, r+surge).Draw(rt, "instances")
		var desc []string
		for i := range n {
			desc = append(desc, fmt.Sprintf("i%d:%s", i, rapid.SampledFrom([]string{"h", "h", "u", "x", "d"}).Draw(rt, "state")))
		}
		insts := instances(rt, "web v1 "+strings.Join(desc, " "))
		var routed []string
		for _, o := range insts {
			if rapid.Bool().Draw(rt, "routed "+o.ID) {
				routed = append(routed, o.ID)
			}
		}
		in := Input{Fleet: testFleet, Revision: "rev", Instances: insts, Now: t0,
			Desired: web(desire("v1", rolling(r, fmt.Sprint(surge), fmt.Sprint(unavail)))),
			Traffic: webTraffic(route("v1", strings.Join(routed, " ")))}
		p := PlanFleet(in)
		checkPlan(rt, in, p)
		sp := p.Services[0]
		retired := map[string]Retire{}
		for _, rr := range sp.Step.Retire {
			retired[rr.Instance] = rr
		}
		alive, healthyRouted, sickAlive := 0, 0, 0
		for _, o := range insts {
			if o.State == "dead" {
				continue
			}
			if _, gone := retired[o.ID]; !gone {
				alive++
				if o.Health == Unhealthy {
					sickAlive++
				}
			}
		}
		next := effectiveRoute(in, &sp)
		for _, id := range next.Instances {
			for _, o := range insts {
				if o.ID == id && o.Health == Healthy {
					healthyRouted++
				}
			}
		}
		if after := alive + len(sp.Step.Provision); after > r+surge {
			rt.Fatalf("%d instances live after the step, replicas %d + maxSurge %d: %s", after, r, surge, describePlan(&sp))
		}
		healthyBefore := 0
		for _, o := range insts {
			if o.Health == Healthy && o.State != "dead" {
				healthyBefore++
			}
		}
		before := 0
		for _, o := range insts {
			if o.State != "dead" {
				before++
			}
		}
		for _, rr := range sp.Step.Retire {
			if rr.Reason == ReasonUnhealthy && healthyBefore < r && before < r+surge {
				rt.Fatalf("unhealthy %s retired before its replacement while one fits (%d live, limit %d): %s",
					rr.Instance, before, r+surge, describePlan(&sp))
			}
		}
		healthyRoutedBefore := 0
		for _, id := range routed {
			for _, o := range insts {
				if o.ID == id && o.Health == Healthy && o.State != "dead" {
					healthyRoutedBefore++
				}
			}
		}
		if healthyRouted < min(healthyRoutedBefore, r-unavail) {
			rt.Fatalf("healthy instances in traffic drop from %d to %d, floor %d: %s", healthyRoutedBefore, healthyRouted, r-unavail, describePlan(&sp))
		}
	})
}
