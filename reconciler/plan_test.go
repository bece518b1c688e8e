package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"pgregory.net/rapid"
)

const testFleet = "prod"

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// expect is what a table case checks of one service's plan.
type expect struct {
	provision int    // provisions in the step
	retire    string // retires in the step by reason: "replaced=1 superseded=2"
	drain     int    // retires that drain first
	route     string // the route once the step is done (ids, any order)
	active    string // the active hash once the step is done; "" = not checked
	warm      int
	totals    string // projected "provision/retire" of the whole change; "" = not checked
	failed    bool
	waiting   bool
	converged bool
	unchanged bool // the whole plan changes nothing (Plan.Changes() == false)
}

type planCase struct {
	name    string
	insts   string // see instances
	traffic map[string]Traffic
	desired map[string]Desired
	service string // the service checked; "" = "web"
	want    expect
}

func web(d Desired) map[string]Desired        { return map[string]Desired{"web": d} }
func webTraffic(t Traffic) map[string]Traffic { return map[string]Traffic{"web": t} }

func TestPlanSteady(t *testing.T) {
	runPlanCases(t, []planCase{
		{name: "rolling 3 unchanged", insts: "web v1 a:h b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: "a b c", active: "v1", converged: true, unchanged: true}},
		{name: "rolling 0 unchanged", traffic: webTraffic(route("v1", "")), desired: web(desire("v1", rolling(0, "1", "0"))),
			want: expect{route: "", active: "v1", converged: true, unchanged: true}},
		{name: "rolling 10 unchanged", insts: "web v1 " + gen("a", 10, "h"),
			traffic: webTraffic(route("v1", idRange("a", 0, 10))), desired: web(desire("v1", rolling(10, "25%", "25%"))),
			want: expect{route: idRange("a", 0, 10), converged: true, unchanged: true}},
		{name: "blue-green 1 unchanged", insts: "web v1 a:h",
			traffic: webTraffic(route("v1", "a")), desired: web(desire("v1", blueGreen(1))),
			want: expect{route: "a", converged: true, unchanged: true}},
		{name: "blue-green 0 unchanged", traffic: webTraffic(route("v1", "")), desired: web(desire("v1", blueGreen(0))),
			want: expect{route: "", converged: true, unchanged: true}},
		{name: "blue-green 10 unchanged", insts: "web v1 " + gen("a", 10, "h"),
			traffic: webTraffic(route("v1", idRange("a", 0, 10))), desired: web(desire("v1", blueGreen(10))),
			want: expect{route: idRange("a", 0, 10), converged: true, unchanged: true}},
		{name: "unchanged with an unproven instance still converged", insts: "web v1 a:h b:h c:n",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "1", "0", minHealthy(time.Minute)))),
			want: expect{route: "a b c", converged: true, unchanged: true}},

		{name: "scale up 3 to 5 provisions, replaces nothing", insts: "web v1 a:h b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(5, "1", "0"))),
			want: expect{provision: 2, route: "a b c", active: "v1"}},
		{name: "scale up blue-green 3 to 10", insts: "web v1 a:h b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", blueGreen(10))),
			want: expect{provision: 7, route: "a b c", active: "v1"}},
		{name: "scaled-up instances join the route when healthy", insts: "web v1 a:h b:h c:h; web v1@1m d:n e:u",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(5, "1", "0"))),
			want: expect{route: "a b c d", waiting: true}},
		{name: "scale down 5 to 3 retires the newest", insts: "web v1 a:h b:h c:h d:h e:h",
			traffic: webTraffic(route("v1", "a b c d e")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "ScaleDown=2", drain: 2, route: "a b c"}},
		{name: "scale down prefers instances out of traffic", insts: "web v1 a:h b:h c:h d:h e:u",
			traffic: webTraffic(route("v1", "a b c d")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "ScaleDown=2", drain: 1, route: "a b c"}},
		{name: "scale to 0", insts: "web v1 a:h b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", blueGreen(0))),
			want: expect{retire: "ScaleDown=3", drain: 3, route: "", active: "v1"}},

		{name: "first deploy provisions everything", desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{provision: 3, route: ""}},
		{name: "first deploy of blue-green provisions everything", desired: web(desire("v1", blueGreen(10))),
			want: expect{provision: 10, route: ""}},
		{name: "first deploy of zero replicas records the traffic", desired: web(desire("v1", rolling(0, "1", "0"))),
			want: expect{route: "", active: "v1"}},
		{name: "first deploy routes instances as they turn healthy", insts: "web v1@10s a:h b:u c:n",
			traffic: webTraffic(route("", "")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: "a c", active: "", waiting: true}},
		{name: "first deploy done", insts: "web v1@10s a:h b:h c:n",
			traffic: webTraffic(route("", "a c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: "a b c", active: "v1"}},

		{name: "dead instance retired and replaced", insts: "web v1 a:d b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{provision: 1, retire: "Exited=1", route: "b c", active: "v1"}},
		{name: "dead instance of blue-green replaced", insts: "web v1 a:d b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", blueGreen(3))),
			want: expect{provision: 1, retire: "Exited=1", route: "b c"}},
		{name: "unhealthy routed instance drained, retired and replaced", insts: "web v1 a:x b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "0", "1"))),
			want: expect{provision: 1, retire: "Unhealthy=1", drain: 1, route: "b c"}},
		{name: "unhealthy instance replaced before it is retired", insts: "web v1 b:h c:h; web v1@1m d:x",
			traffic: webTraffic(route("v1", "b c d")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{provision: 1, route: "b c"}},
		{name: "unhealthy instance retired once its replacement is healthy", insts: "web v1 b:h c:h; web v1@1m d:x; web v1@2m e:h",
			traffic: webTraffic(route("v1", "b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "Unhealthy=1", route: "b c e"}},
		{name: "unhealthy instance waits out of traffic for its replacement", insts: "web v1 b:h c:h; web v1@1m d:x; web v1@2m e:u",
			traffic: webTraffic(route("v1", "b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: "b c", waiting: true}},
		{name: "hung single instance: replacement first", insts: "web v1 a:x",
			traffic: webTraffic(route("v1", "a")), desired: web(desire("v1", rolling(1, "1", "0"))),
			want: expect{provision: 1, route: ""}},
		{name: "instances of an unknown spec retired", insts: "web v1 a:h b:h c:h; web v0 z:h y:u",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "Superseded=2", route: "a b c"}},
		{name: "routed instance of an unknown spec replaced under the floor", insts: "web v1 a:h b:h c:h; web v0 z:h",
			traffic: webTraffic(route("v1", "a b c z")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "Replaced=1", drain: 1, route: "a b c"}},
		{name: "hold takes an unhealthy instance out of traffic", insts: "web v1 a:x b:h c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(Desired{Rollback: true}),
			want: expect{route: "b c", active: "v1", totals: "0/0"}},
		{name: "hold keeps only the active generation", insts: "web v1 a:h b:h c:h; web v2@1m d:h e:u",
			traffic: webTraffic(route("v1", "a b c d")), desired: web(Desired{Rollback: true}),
			want: expect{retire: "NotServing=2", drain: 1, route: "a b c", active: "v1", totals: "0/2"}},
	})
}

func TestPlanRolling(t *testing.T) {
	from3 := "web v1 a:h b:h c:h"
	tr3 := webTraffic(route("v1", "a b c"))
	from10 := "web v1 " + gen("a", 10, "h")
	tr10 := webTraffic(route("v1", idRange("a", 0, 10)))
	runPlanCases(t, []planCase{
		{name: "r3 surge 1 starts with one surge instance", insts: from3, traffic: tr3,
			desired: web(desire("v2", rolling(3, "1", "0"))),
			want:    expect{provision: 1, route: "a b c", active: "v1", totals: "3/3"}},
		{name: "r3 unavailable 1 replaces one in place", insts: from3, traffic: tr3,
			desired: web(desire("v2", rolling(3, "0", "1"))),
			want:    expect{provision: 1, retire: "Replaced=1", drain: 1, route: "b c"}},
		{name: "r3 surge 2 unavailable 1", insts: from3, traffic: tr3,
			desired: web(desire("v2", rolling(3, "2", "1"))),
			want:    expect{provision: 3, retire: "Replaced=1", drain: 1, route: "b c"}},
		{name: "r3 unavailable 100% replaces everything at once", insts: from3, traffic: tr3,
			desired: web(desire("v2", rolling(3, "0", "100%"))),
			want:    expect{provision: 3, retire: "Replaced=3", drain: 3, route: ""}},
		{name: "r10 25% rounds surge up and unavailable down", insts: from10, traffic: tr10,
			desired: web(desire("v2", rolling(10, "25%", "25%"))),
			want:    expect{provision: 5, retire: "Replaced=2", drain: 2, route: idRange("a", 2, 10)}},
		{name: "r10 50% each", insts: from10, traffic: tr10,
			desired: web(desire("v2", rolling(10, "50%", "50%"))),
			want:    expect{provision: 10, retire: "Replaced=5", drain: 5, route: idRange("a", 5, 10)}},
		{name: "r10 surge 100%", insts: from10, traffic: tr10,
			desired: web(desire("v2", rolling(10, "100%", "0"))),
			want:    expect{provision: 10, route: idRange("a", 0, 10)}},
		{name: "r1 25% resolves to surge 1", insts: "web v1 a:h", traffic: webTraffic(route("v1", "a")),
			desired: web(desire("v2", rolling(1, "25%", "25%"))),
			want:    expect{provision: 1, route: "a"}},
		{name: "r1 both resolving to zero surges one", insts: "web v1 a:h", traffic: webTraffic(route("v1", "a")),
			desired: web(desire("v2", rolling(1, "0", "25%"))),
			want:    expect{provision: 1, route: "a"}},
		{name: "r0 switches at once", traffic: webTraffic(route("v1", "")),
			desired: web(desire("v2", rolling(0, "1", "0"))),
			want:    expect{route: "", active: "v2"}},
		{name: "r3 to r5 rollout", insts: from3, traffic: tr3,
			desired: web(desire("v2", rolling(5, "1", "0"))),
			want:    expect{provision: 3, route: "a b c"}},

		{name: "crash halfway: waits for the unknown new instance",
			insts:   "web v1 b:h c:h; web v2@5m d:h e:u",
			traffic: webTraffic(route("v1", "b c d")), desired: web(desire("v2", rolling(3, "1", "0"))),
			want: expect{route: "b c d", active: "v1", waiting: true, totals: "1/2"}},
		{name: "crash halfway: goes on once it is healthy",
			insts:   "web v1 b:h c:h; web v2@5m d:h e:h",
			traffic: webTraffic(route("v1", "b c d")), desired: web(desire("v2", rolling(3, "1", "0"))),
			want: expect{provision: 1, retire: "Replaced=1", drain: 1, route: "c d e", active: "v1"}},
		{name: "last old instance leaves and the new generation becomes active",
			insts:   "web v1 c:h; web v2@5m d:h e:h f:h",
			traffic: webTraffic(route("v1", "c d e")), desired: web(desire("v2", rolling(3, "1", "0"))),
			want: expect{retire: "Replaced=1", drain: 1, route: "d e f", active: "v2"}},
		{name: "minHealthyFor holds the old instances",
			insts:   "web v1 a:h b:h c:h; web v2@1m d:n",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v2", rolling(3, "1", "0", minHealthy(30*time.Second)))),
			want: expect{route: "a b c d", waiting: true}},
		{name: "rolling keeps nothing warm, whatever keepPrevious says",
			insts:   "web v1 a:h b:h c:h; web v2@5m d:h",
			traffic: webTraffic(route("v1", "a b c d")), desired: web(desire("v2", rolling(3, "1", "0", keep(time.Hour)))),
			want: expect{provision: 1, retire: "Replaced=1", drain: 1, route: "b c d", warm: 0, totals: "2/3"}},
		{name: "rolling: the switch records no previous generation",
			insts:   "web v1 a:h b:h c:h; web v2@5m d:h e:h f:h",
			traffic: webTraffic(route("v1", "c d e")), desired: web(desire("v2", rolling(3, "1", "0", keep(time.Hour)))),
			want: expect{retire: "Replaced=1 Superseded=2", drain: 1, route: "d e f", active: "v2", warm: 0}},
		{name: "an interrupted rollout's instances leave traffic first",
			insts:   "web v1 a:h b:h; web v2@5m c:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v3", rolling(3, "0", "1"))),
			want: expect{provision: 1, retire: "Replaced=1", drain: 1, route: "a b", active: "v1"}},
		{name: "old dead instance during a rollout is no failure",
			insts:   "web v1 a:d b:h c:h; web v2@5m d:h",
			traffic: webTraffic(route("v1", "a b c d")), desired: web(desire("v2", rolling(3, "1", "0"))),
			want: expect{provision: 1, retire: "Exited=1", route: "b c d"}},
		{name: "old unhealthy instance during a rollout leaves",
			insts:   "web v1 a:x b:h c:h; web v2@5m d:h",
			traffic: webTraffic(route("v1", "a b c d")), desired: web(desire("v2", rolling(3, "1", "0"))),
			want: expect{provision: 1, retire: "Unhealthy=1", drain: 1, route: "b c d"}},
	})
}

func TestPlanBlueGreen(t *testing.T) {
	from3 := "web v1 a:h b:h c:h"
	tr3 := webTraffic(route("v1", "a b c"))
	runPlanCases(t, []planCase{
		{name: "provisions the whole new generation", insts: from3, traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{provision: 3, route: "a b c", active: "v1", waiting: true, totals: "3/3"}},
		{name: "r10 provisions ten", insts: "web v1 " + gen("a", 10, "h"), traffic: webTraffic(route("v1", idRange("a", 0, 10))),
			desired: web(desire("v2", blueGreen(10))),
			want:    expect{provision: 10, route: idRange("a", 0, 10), waiting: true}},
		{name: "completes a half-provisioned generation", insts: from3 + "; web v2@1m d:h", traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{provision: 2, route: "a b c", waiting: true}},
		{name: "waits for every new instance", insts: from3 + "; web v2@1m d:h e:h f:u", traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{route: "a b c", active: "v1", waiting: true}},
		{name: "waits for minHealthyFor", insts: from3 + "; web v2@1m d:h e:h f:n", traffic: tr3,
			desired: web(desire("v2", blueGreen(3, minHealthy(10*time.Second)))),
			want:    expect{route: "a b c", waiting: true}},
		{name: "switches in one step", insts: from3 + "; web v2@1m d:h e:h f:h", traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{retire: "Replaced=3", drain: 3, route: "d e f", active: "v2"}},
		{name: "switches and keeps the previous generation warm", insts: from3 + "; web v2@1m d:h e:h f:h", traffic: tr3,
			desired: web(desire("v2", blueGreen(3, keep(time.Hour)))),
			want:    expect{route: "d e f", active: "v2", warm: 3}},
		{name: "r0 switches at once", traffic: webTraffic(route("v1", "")),
			desired: web(desire("v2", blueGreen(0))),
			want:    expect{route: "", active: "v2"}},
		{name: "retires surplus new instances", insts: from3 + "; web v2@1m d:h e:h f:h g:u", traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{retire: "Replaced=3 ScaleDown=1", drain: 3, route: "d e f", active: "v2"}},
		{name: "old unhealthy instance leaves the route during the rollout",
			insts: "web v1 a:x b:h c:h; web v2@1m d:u e:u f:u", traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{route: "b c", waiting: true}},
		{name: "canary provisions its canaries first", insts: from3, traffic: tr3,
			desired: web(desire("v2", func() *schema.Service {
				s := rolling(3, "1", "0")
				s.Rollout.Strategy = schema.CanaryRun
				s.Rollout.Canary = &schema.Canary{Count: 1, Then: schema.BlueGreen}
				return s
			}())),
			want: expect{provision: 1, route: "a b c", waiting: true}},
	})
}

func TestPlanKeepPrevious(t *testing.T) {
	v1v2 := "web v1 a:h b:h c:h; web v2@1h d:h e:h f:h"
	runPlanCases(t, []planCase{
		{name: "revert to the warm previous generation switches back at once", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v1", blueGreen(3, keep(time.Hour)))),
			want:    expect{route: "a b c", active: "v1", warm: 3}},
		{name: "revert of blue-green switches back at once", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v1", blueGreen(3, keep(time.Hour)))),
			want:    expect{route: "a b c", active: "v1", warm: 3}},
		{name: "revert without keepPrevious retires the generation it leaves", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v1", rolling(3, "1", "0"))),
			want:    expect{retire: "Superseded=3", drain: 3, route: "a b c", active: "v1"}},
		{name: "revert to a smaller warm generation than replicas rolls out",
			insts:   "web v1 a:d b:h c:h; web v2@1h d:h e:h f:h",
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v1", blueGreen(3, keep(time.Hour), deadline(10*time.Minute)))),
			want:    expect{provision: 1, retire: "Exited=1", route: "d e f", active: "v2", warm: 3, waiting: true}},
		{name: "revert scaling up: the age of the warm instances is no deadline",
			insts:   v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v1", blueGreen(5, keep(time.Hour), deadline(10*time.Minute)))),
			want:    expect{provision: 2, route: "d e f", active: "v2", warm: 3, waiting: true}},
		{name: "revert does not switch to a new instance of the previous generation before its soak",
			insts:   "web v1 b:h c:h; web v1@5s g:n; web v2@1h d:h e:h f:h",
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v1", blueGreen(3, keep(time.Hour), minHealthy(30*time.Second)))),
			want:    expect{route: "d e f", active: "v2", warm: 3, waiting: true}},
		{name: "revert with more warm instances than replicas", insts: "web v1 a:h b:h c:h g:u; web v2@1h d:h e:h",
			traffic: webTraffic(withPrevious(route("v2", "d e"), "v1", 10*time.Minute)),
			desired: web(desire("v1", blueGreen(2, keep(time.Hour)))),
			want:    expect{retire: "ScaleDown=2", route: "a b", active: "v1", warm: 2}},
		{name: "warm previous kept within keepPrevious", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v2", blueGreen(3, keep(time.Hour)))),
			want:    expect{route: "d e f", warm: 3, converged: true, unchanged: true}},
		{name: "warm previous retired once keepPrevious expires", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 2*time.Hour)),
			desired: web(desire("v2", blueGreen(3, keep(time.Hour)))),
			want:    expect{retire: "Expired=3", route: "d e f", active: "v2"}},
		{name: "warm previous retired when keepPrevious is turned off", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{retire: "Expired=3", route: "d e f"}},
		{name: "a new rollout retires the generation before the previous", insts: v1v2,
			traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 10*time.Minute)),
			desired: web(desire("v3", blueGreen(3, keep(time.Hour)))),
			want:    expect{provision: 3, retire: "Superseded=3", route: "d e f", active: "v2", warm: 3, waiting: true}},
	})
}

func TestPlanFailure(t *testing.T) {
	from3 := "web v1 a:h b:h c:h"
	tr3 := webTraffic(route("v1", "a b c"))
	runPlanCases(t, []planCase{
		{name: "new instance unhealthy", insts: from3 + "; web v2@1m d:x", traffic: tr3,
			desired: web(desire("v2", rolling(3, "1", "0"))),
			want:    expect{failed: true, route: "a b c", active: "v1"}},
		{name: "new instance exited", insts: from3 + "; web v2@1m d:d", traffic: tr3,
			desired: web(desire("v2", rolling(3, "1", "0"))),
			want:    expect{failed: true, route: "a b c"}},
		{name: "new blue-green instance unhealthy", insts: from3 + "; web v2@1m d:h e:x f:u", traffic: tr3,
			desired: web(desire("v2", blueGreen(3))),
			want:    expect{failed: true, route: "a b c"}},
		{name: "progress deadline exceeded", insts: from3 + "; web v2@11m d:u", traffic: tr3,
			desired: web(desire("v2", rolling(3, "1", "0", deadline(10*time.Minute)))),
			want:    expect{failed: true, route: "a b c"}},
		{name: "progress deadline not yet exceeded", insts: from3 + "; web v2@9m d:u", traffic: tr3,
			desired: web(desire("v2", rolling(3, "1", "0", deadline(10*time.Minute)))),
			want:    expect{route: "a b c", waiting: true}},
		{name: "a rollout that keeps progressing does not fail for its length", insts: "web v1 b:h c:h; web v2@11m d:h; web v2@1m e:u",
			traffic: webTraffic(route("v1", "b c d")), desired: web(desire("v2", rolling(3, "1", "0", deadline(10*time.Minute)))),
			want: expect{route: "b c d", waiting: true}},
		{name: "no progress for longer than the deadline fails", insts: "web v1 b:h c:h; web v2@21m d:h; web v2@11m e:u",
			traffic: webTraffic(route("v1", "b c d")), desired: web(desire("v2", rolling(3, "1", "0", deadline(10*time.Minute)))),
			want: expect{failed: true, route: "b c d"}},
		{name: "an instance turning healthy is progress", insts: "web v1 b:h c:h; web v2@11m d:n",
			traffic: webTraffic(route("v1", "b c")), desired: web(desire("v2", rolling(3, "1", "0", deadline(10*time.Minute), minHealthy(time.Minute)))),
			want: expect{provision: 1, route: "b c d"}},
		{name: "no deadline after the switch", insts: "web v2@11m d:h e:h f:h",
			traffic: webTraffic(route("v2", "d e f")), desired: web(desire("v2", rolling(3, "1", "0", deadline(10*time.Minute)))),
			want: expect{route: "d e f", converged: true, unchanged: true}},

		{name: "rollback of a half-done rolling rollout provisions the missing old",
			insts:   "web v1 b:h c:h; web v2@5m d:h e:u",
			traffic: webTraffic(route("v1", "b c d")), desired: web(rollbackTo("v1", rolling(3, "1", "0", minHealthy(time.Minute)))),
			want: expect{provision: 1, retire: "Superseded=1", route: "b c d", active: "v1"}},
		{name: "rollback keeps the healthy new instance until the old is healthy",
			insts:   "web v1 b:h c:h; web v1@10s f:u; web v2@5m d:h",
			traffic: webTraffic(route("v1", "b c d")), desired: web(rollbackTo("v1", rolling(3, "1", "0", minHealthy(time.Minute)))),
			want: expect{route: "b c d", waiting: true}},
		{name: "rollback retires the new instance once the old is healthy, without minHealthyFor",
			insts:   "web v1 b:h c:h; web v1@10s f:n; web v2@5m d:h",
			traffic: webTraffic(route("v1", "b c d")), desired: web(rollbackTo("v1", rolling(3, "1", "0", minHealthy(time.Minute)))),
			want: expect{retire: "Replaced=1", drain: 1, route: "b c f", active: "v1"}},
		{name: "rollback does not fail on an unhealthy new instance",
			insts:   "web v1 b:h c:h; web v2@5m d:x",
			traffic: webTraffic(route("v1", "b c d")), desired: web(rollbackTo("v1", rolling(3, "1", "0", deadline(time.Minute)))),
			want: expect{provision: 1, route: "b c"}},
		{name: "rollback of blue-green is rolling and immediate",
			insts:   "web v1 a:h b:h c:h; web v2@5m d:h e:h f:u",
			traffic: tr3, desired: web(rollbackTo("v1", blueGreen(3, keep(time.Hour)))),
			want: expect{retire: "Superseded=3", route: "a b c", active: "v1"}},
		{name: "rollback brings warm old instances back into traffic",
			insts:   "web v1 a:h b:h c:h; web v2@5m d:h",
			traffic: webTraffic(route("v1", "b c d")), desired: web(rollbackTo("v1", rolling(3, "1", "0", keep(time.Hour)))),
			want: expect{retire: "Replaced=1", drain: 1, route: "a b c", active: "v1"}},
	})
}

func TestPlanPruneAndForeign(t *testing.T) {
	base := "web v1 a:h b:h c:h"
	withAPI := map[string]Traffic{"web": route("v1", "a b c"), "api": route("v9", "x y")}
	runPlanCases(t, []planCase{
		{name: "removed service drained and pruned", service: "api", insts: base + "; api v9 x:h y:h z:u",
			traffic: withAPI, desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "Removed=3", drain: 2, route: "", totals: "0/3"}},
		{name: "removed service without a traffic record", service: "api", insts: base + "; api v9 x:h y:d",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{retire: "Exited=1 Removed=1", drain: 1, route: ""}},
		{name: "removed service with only a traffic record left", service: "api", insts: base,
			traffic: withAPI, desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: ""}},
		{name: "the other services are untouched by a prune", insts: base + "; api v9 x:h y:h",
			traffic: withAPI, desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: "a b c", converged: true}},
		{name: "instances of another fleet and without labels are never touched",
			insts:   base + "; other:web v0 p:h q:d; other:api v9 r:h; - s:h t:d",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v1", rolling(3, "1", "0"))),
			want: expect{route: "a b c", converged: true, unchanged: true}},
		{name: "nor during a rollout", insts: base + "; other:web v2 p:h q:x; - s:h",
			traffic: webTraffic(route("v1", "a b c")), desired: web(desire("v2", blueGreen(3))),
			want: expect{provision: 3, route: "a b c", waiting: true}},
		{name: "lost traffic record rebuilt from the live instances", insts: base + "; web v1@10s d:x",
			desired: web(desire("v1", rolling(3, "1", "0"))),
			want:    expect{retire: "Unhealthy=1", route: "a b c", active: "v1"}},
		{name: "lost traffic record mid-rollout", insts: "web v1 b:h c:h; web v2@5m d:h e:u",
			desired: web(desire("v2", rolling(3, "1", "0"))),
			want:    expect{route: "b c d e", active: "v1", waiting: true}},
		{name: "lost traffic record: the least proven old instance leaves first",
			insts:   "web v1 a:h; web v2@1m b:u",
			desired: web(desire("v3", rolling(1, "1", "0"))),
			want:    expect{provision: 1, retire: "Replaced=1", drain: 1, route: "a", active: "v1"}},
		{name: "lost traffic record with warm instances", insts: "web v1 a:h b:h c:h; web v2@5m d:h e:h f:h",
			desired: web(desire("v2", blueGreen(3, keep(time.Hour)))),
			want:    expect{route: "d e f", active: "v2", warm: 3}},
	})
}

// TestPlanForeignOnly checks that a fleet's plan has no entry for services
// seen only in another fleet or on unlabelled instances.
func TestPlanForeignOnly(t *testing.T) {
	in := Input{Fleet: testFleet, Now: t0, Instances: instances(t, "other:api v1 a:h; - b:h; prod:web v1 c:h")}
	in.Instances = append(in.Instances, Observed{Instance: targets.Instance{ID: "e", State: targets.Running,
		Labels: targets.Labels{Fleet: testFleet, Service: "web"}}}) // no spec hash: not molt's
	p := PlanFleet(in)
	checkPlan(t, in, p)
	var names []string
	for _, sp := range p.Services {
		names = append(names, sp.Service)
		if slices.ContainsFunc(sp.Step.Retire, func(r Retire) bool { return r.Instance != "c" }) {
			t.Errorf("%s retires a foreign instance: %+v", sp.Service, sp.Step.Retire)
		}
	}
	if !slices.Equal(names, []string{"web"}) {
		t.Errorf("services = %v, want [web]", names)
	}
}

func runPlanCases(t *testing.T, cases []planCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := Input{Fleet: testFleet, Revision: "rev", Desired: c.desired, Instances: instances(t, c.insts),
				Traffic: c.traffic, Now: t0}
			p := PlanFleet(in)
			checkPlan(t, in, p)
			// The same input, listed in another order, gives the same plan.
			rev := in
			rev.Instances = slices.Clone(in.Instances)
			slices.Reverse(rev.Instances)
			if diff := cmp.Diff(p, PlanFleet(rev)); diff != "" {
				t.Errorf("plan depends on the order of the instances (-first +reversed):\n%s", diff)
			}
			svc := c.service
			if svc == "" {
				svc = "web"
			}
			checkService(t, in, p, svc, c.want)
		})
	}
}

// checkService compares the counts of one service's plan with want.
func checkService(t *testing.T, in Input, p Plan, svc string, want expect) {
	t.Helper()
	i := slices.IndexFunc(p.Services, func(sp ServicePlan) bool { return sp.Service == svc })
	if i < 0 {
		t.Fatalf("no plan for service %s in %+v", svc, p)
	}
	sp := &p.Services[i]
	next := effectiveRoute(in, sp)
	drains := 0
	for _, r := range sp.Step.Retire {
		if r.Drain {
			drains++
		}
	}
	got := expect{
		provision: len(sp.Step.Provision), retire: retireSummary(sp.Step.Retire), drain: drains,
		route: strings.Join(next.Instances, " "), active: want.active, warm: sp.Warm,
		failed: sp.Failed != "", waiting: sp.Waiting != "", converged: sp.Converged(), unchanged: !p.Changes(),
	}
	if want.active != "" {
		got.active = next.Active
	}
	if want.totals != "" {
		got.totals = fmt.Sprintf("%d/%d", sp.Provision, sp.Retire)
	}
	want.route = strings.Join(sortedIDs(strings.Fields(want.route)), " ")
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(expect{})); diff != "" {
		t.Errorf("plan of %s (-want +got):\n%s\nplan: %s", svc, diff, describePlan(sp))
	}
}

func sortedIDs(s []string) []string { sort.Strings(s); return s }

func describePlan(sp *ServicePlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s->%s provision=%d retire=%d warm=%d", sp.Service, sp.From, sp.To, sp.Provision, sp.Retire, sp.Warm)
	for _, r := range sp.Step.Retire {
		fmt.Fprintf(&b, "\n  retire %s (%s, %s, drain=%v)", r.Instance, r.SpecHash, r.Reason, r.Drain)
	}
	for _, pr := range sp.Step.Provision {
		fmt.Fprintf(&b, "\n  provision (%s)", pr.Reason)
	}
	if sp.Traffic != nil {
		fmt.Fprintf(&b, "\n  traffic %+v", *sp.Traffic)
	}
	for _, s := range []string{sp.Waiting, sp.Failed} {
		if s != "" {
			fmt.Fprintf(&b, "\n  %s", s)
		}
	}
	for _, n := range sp.Notes {
		fmt.Fprintf(&b, "\n  note: %s", n)
	}
	return b.String()
}

// gen lists n instance ids prefix0..prefix(n-1) with one state: "a0:h a1:h".
func gen(prefix string, n int, state string) string {
	parts := make([]string, n)
	for i := range n {
		parts[i] = fmt.Sprintf("%s%d:%s", prefix, i, state)
	}
	return strings.Join(parts, " ")
}

// idRange lists ids prefix<from>..prefix<to-1>.
func idRange(prefix string, from, to int) string {
	var parts []string
	for i := from; i < to; i++ {
		parts = append(parts, fmt.Sprintf("%s%d", prefix, i))
	}
	return strings.Join(parts, " ")
}

// instances builds observed instances from a terse description: segments
// separated by ";", each "[fleet:]service hash[@age] id:state ..." or
// "- id:state ..." for instances without labels. The age (default 24h) is
// how long before t0 the generation was created, its instances a second
// apart. States: h healthy for long, n healthy since t0 (not yet proven), u
// unknown, x unhealthy, d dead.
func instances(tb rapid.TB, desc string) []Observed {
	tb.Helper()
	var out []Observed
	for seg := range strings.SplitSeq(desc, ";") {
		f := strings.Fields(seg)
		if len(f) == 0 {
			continue
		}
		var labels targets.Labels
		rest := f[1:]
		if f[0] != "-" {
			if len(f) < 2 {
				tb.Fatalf("segment %q: want service and hash", seg)
			}
			fleet, svc, ok := strings.Cut(f[0], ":")
			if !ok {
				fleet, svc = testFleet, f[0]
			}
			hash, age, ok := strings.Cut(f[1], "@")
			created := t0.Add(-24 * time.Hour)
			if ok {
				d, err := time.ParseDuration(age)
				if err != nil {
					tb.Fatalf("segment %q: %v", seg, err)
				}
				created = t0.Add(-d)
			}
			labels = targets.Labels{Fleet: fleet, Service: svc, SpecHash: hash, Revision: "rev-" + hash, CreatedAt: created}
			rest = f[2:]
		}
		for i, is := range rest {
			id, st, ok := strings.Cut(is, ":")
			if !ok {
				tb.Fatalf("instance %q: want id:state", is)
			}
			o := Observed{Instance: targets.Instance{ID: id, Labels: labels, State: targets.Running}}
			if !labels.CreatedAt.IsZero() {
				o.Labels.CreatedAt = labels.CreatedAt.Add(time.Duration(i) * time.Second)
			}
			switch st {
			case "h":
				o.Health, o.HealthySince = Healthy, o.Labels.CreatedAt.Add(5*time.Second)
			case "n":
				o.Health, o.HealthySince = Healthy, t0
			case "l": // ready, but its liveness check fails
				o.Health, o.HealthySince = Healthy, o.Labels.CreatedAt.Add(5*time.Second)
				o.LivenessFailed = true
			case "f": // healthy, but drifted since it was made
				o.Health, o.HealthySince = Healthy, o.Labels.CreatedAt.Add(5*time.Second)
				o.Drift = "file system changed: /x added"
			case "u":
			case "x":
				o.Health = Unhealthy
			case "d":
				o.State = targets.Dead
			default:
				tb.Fatalf("instance %q: unknown state %q", is, st)
			}
			out = append(out, o)
		}
	}
	return out
}

type rolloutOption func(*schema.Rollout)

func keep(d time.Duration) rolloutOption { return func(r *schema.Rollout) { r.KeepPrevious = d } }
func minHealthy(d time.Duration) rolloutOption {
	return func(r *schema.Rollout) { r.MinHealthyFor = d }
}
func deadline(d time.Duration) rolloutOption {
	return func(r *schema.Rollout) { r.ProgressDeadline = d }
}

func mustIntOrPercent(s string) schema.IntOrPercent {
	v, err := schema.ParseIntOrPercent(s)
	if err != nil {
		panic(err)
	}
	return v
}

// rolling is a rolling service of r replicas with the given maxSurge and
// maxUnavailable ("1", "25%").
func rolling(r int, surge, unavail string, opts ...rolloutOption) *schema.Service {
	s := &schema.Service{Name: "web", Replicas: r, Rollout: schema.Rollout{
		Strategy: schema.Rolling, MaxSurge: mustIntOrPercent(surge), MaxUnavailable: mustIntOrPercent(unavail)}}
	for _, o := range opts {
		o(&s.Rollout)
	}
	return s
}

func blueGreen(r int, opts ...rolloutOption) *schema.Service {
	s := rolling(r, "25%", "0", opts...)
	s.Rollout.Strategy = schema.BlueGreen
	return s
}

func desire(hash string, s *schema.Service) Desired {
	return Desired{Spec: s, Hash: hash, Revision: "rev-" + hash}
}

func rollbackTo(hash string, s *schema.Service) Desired {
	d := desire(hash, s)
	d.Rollback, d.FailedRevision = true, "rev-bad"
	return d
}

// route is the traffic of a service: the active hash and the routed ids.
func route(active, ids string) Traffic {
	in := sortedIDs(strings.Fields(ids))
	if in == nil {
		in = []string{}
	}
	return Traffic{Active: active, Instances: in}
}

// withPrevious adds a warm previous generation that left traffic ago.
func withPrevious(t Traffic, hash string, ago time.Duration) Traffic {
	t.Previous, t.PreviousSince = hash, t0.Add(-ago)
	return t
}

// effectiveRoute is the traffic of a service once the plan's step is done.
func effectiveRoute(in Input, sp *ServicePlan) Traffic {
	if sp.Traffic != nil {
		return *sp.Traffic
	}
	return in.Traffic[sp.Service]
}

// retireSummary renders retires as "reason=n ..." sorted by reason.
func retireSummary(rs []Retire) string {
	n := map[string]int{}
	for _, r := range rs {
		n[string(r.Reason)]++
	}
	var parts []string
	for reason, c := range n {
		parts = append(parts, fmt.Sprintf("%s=%d", reason, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// checkPlan checks what every plan must satisfy whatever its input: only
// this fleet's labelled instances are touched, a retire is listed once and
// never stays in the route, drains are exactly the routed live instances,
// the route holds only live instances not known to be unhealthy, and a
// failed plan carries out nothing.
func checkPlan(tb rapid.TB, in Input, p Plan) {
	tb.Helper()
	byID := map[string]Observed{}
	for _, o := range in.Instances {
		byID[o.ID] = o
	}
	if p.Fleet != in.Fleet {
		tb.Fatalf("plan fleet %q, want %q", p.Fleet, in.Fleet)
	}
	for i := range p.Services {
		sp := &p.Services[i]
		if i > 0 && p.Services[i-1].Service >= sp.Service {
			tb.Fatalf("services not sorted and unique: %q after %q", sp.Service, p.Services[i-1].Service)
		}
		if sp.Failed != "" && (!sp.Step.Empty() || sp.Traffic != nil) {
			tb.Fatalf("%s: failed plan acts: %s", sp.Service, describePlan(sp))
		}
		d, wanted := in.Desired[sp.Service]
		if len(sp.Step.Provision) > 0 && (!wanted || d.Spec == nil) {
			tb.Fatalf("%s: provisions without a desired spec", sp.Service)
		}
		if len(sp.Step.Provision) > sp.Provision || len(sp.Step.Retire) > sp.Retire {
			tb.Fatalf("%s: projected totals below the step: %s", sp.Service, describePlan(sp))
		}
		cur, known := in.Traffic[sp.Service]
		retired := map[string]bool{}
		for _, r := range sp.Step.Retire {
			o, ok := byID[r.Instance]
			switch {
			case !ok:
				tb.Fatalf("%s: retires unknown instance %s", sp.Service, r.Instance)
			case o.Labels.Fleet != in.Fleet || o.Labels.Service != sp.Service || o.Labels.SpecHash == "":
				tb.Fatalf("%s: retires %s, not its own (%+v)", sp.Service, r.Instance, o.Labels)
			case r.SpecHash != o.Labels.SpecHash:
				tb.Fatalf("%s: retire of %s says hash %s, the instance has %s", sp.Service, r.Instance, r.SpecHash, o.Labels.SpecHash)
			case retired[r.Instance]:
				tb.Fatalf("%s: retires %s twice", sp.Service, r.Instance)
			case r.Drain && o.State == targets.Dead:
				tb.Fatalf("%s: drains dead instance %s", sp.Service, r.Instance)
			case known && r.Drain != (slices.Contains(cur.Instances, r.Instance) && o.State != targets.Dead):
				tb.Fatalf("%s: retire of %s has drain=%v, routed=%v", sp.Service, r.Instance, r.Drain, slices.Contains(cur.Instances, r.Instance))
			}
			retired[r.Instance] = true
		}
		if sp.Failed != "" {
			continue
		}
		next := effectiveRoute(in, sp)
		if !slices.IsSorted(next.Instances) || len(slices.Compact(slices.Clone(next.Instances))) != len(next.Instances) {
			tb.Fatalf("%s: route not sorted and unique: %v", sp.Service, next.Instances)
		}
		for _, id := range next.Instances {
			o, ok := byID[id]
			switch {
			case retired[id]:
				tb.Fatalf("%s: retires %s and keeps it in the route", sp.Service, id)
			case !ok:
				tb.Fatalf("%s: routes unknown instance %s", sp.Service, id)
			case o.Labels.Fleet != in.Fleet || o.Labels.Service != sp.Service:
				tb.Fatalf("%s: routes %s, not its own (%+v)", sp.Service, id, o.Labels)
			case o.State == targets.Dead:
				tb.Fatalf("%s: routes dead instance %s", sp.Service, id)
			case o.Health == Unhealthy:
				tb.Fatalf("%s: routes unhealthy instance %s", sp.Service, id)
			}
		}
		// Never "converged" with fewer healthy instances in traffic than
		// the service wants.
		healthy := 0
		for _, id := range next.Instances {
			if byID[id].Health == Healthy {
				healthy++
			}
		}
		if sp.Converged() && wanted && d.Spec != nil && healthy < d.Spec.Replicas {
			tb.Fatalf("%s: converged with %d healthy instances in traffic, wants %d: %s", sp.Service, healthy, d.Spec.Replicas, describePlan(sp))
		}
		if sp.Healthy != healthy {
			tb.Fatalf("%s: plan says %d healthy in traffic, the route has %d", sp.Service, sp.Healthy, healthy)
		}
		// The route the plan sets is the record it keeps.
		if sp.Route != nil && !emptyRoute(*sp.Route) {
			if got := TrafficOf([]targets.Route{*sp.Route})[sp.Service]; !sameTraffic(got, next) {
				tb.Fatalf("%s: route record %+v, plan traffic %+v", sp.Service, got, next)
			}
		}
	}
}
