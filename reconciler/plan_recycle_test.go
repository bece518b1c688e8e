package reconciler

import (
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
)

func recycled(s *schema.Service, maxAge time.Duration, window string) *schema.Service {
	s.Recycle = &schema.Recycle{MaxAge: maxAge, Window: window}
	return s
}

// Drifted and over-age instances are replaced one at a time, a new one
// first (or, without surge, under maxUnavailable), never during a rollout.
func TestPlanRecycleAndDrift(t *testing.T) {
	tr3 := webTraffic(route("v1", "a b c"))
	runPlanCases(t, []planCase{
		{name: "over-age instances get a replacement first", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "1", "0"), time.Hour, ""))),
			want:    expect{provision: 1, route: "a b c", active: "v1"}},
		{name: "a proven replacement lets the oldest go, and the next replacement starts", insts: "web v1 a:h b:h c:h; web v1@10m d:h", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "1", "0"), time.Hour, ""))),
			want:    expect{provision: 1, retire: "Recycle=1", drain: 1, route: "b c d"}},
		{name: "an unproven replacement is waited for", insts: "web v1 a:h b:h c:h; web v1@10m d:u", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "1", "0"), time.Hour, ""))),
			want:    expect{route: "a b c", waiting: true}},
		{name: "without surge the floor allows one out first", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "0", "1"), time.Hour, ""))),
			want:    expect{retire: "Recycle=1", drain: 1, route: "b c"}},
		{name: "young instances are left alone", insts: "web v1@10m a:h b:h c:h", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "1", "0"), time.Hour, ""))),
			want:    expect{route: "a b c", converged: true, unchanged: true}},
		{name: "outside the window nothing is recycled", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "1", "0"), time.Hour, "* 2-4 * * *"))),
			want:    expect{route: "a b c", converged: true, unchanged: true}},
		{name: "inside the window it is", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v1", recycled(rolling(3, "1", "0"), time.Hour, "* 11-13 * * *"))),
			want:    expect{provision: 1, route: "a b c"}},
		{name: "not during a rollout", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v2", recycled(rolling(3, "1", "0"), time.Hour, ""))),
			want:    expect{provision: 1, route: "a b c", active: "v1"}},
		{name: "a drifted instance gets a replacement first", insts: "web v1@10m a:h b:f c:h", traffic: tr3,
			desired: web(desire("v1", rolling(3, "1", "0"))),
			want:    expect{provision: 1, route: "a b c"}},
		{name: "then the drifted one goes", insts: "web v1@10m a:h b:f c:h; web v1@5m d:h", traffic: tr3,
			desired: web(desire("v1", rolling(3, "1", "0"))),
			want:    expect{retire: "Drift=1", drain: 1, route: "a c d"}},
		{name: "a failing liveness check gets a replacement first", insts: "web v1@10m a:h b:l c:h", traffic: tr3,
			desired: web(desire("v1", rolling(3, "1", "0"))),
			want:    expect{provision: 1, route: "a b c"}},
		{name: "then the instance that failed it goes", insts: "web v1@10m a:h b:l c:h; web v1@5m d:h", traffic: tr3,
			desired: web(desire("v1", rolling(3, "1", "0"))),
			want:    expect{retire: "LivenessFailed=1", drain: 1, route: "a c d"}},
		{name: "blue-green replaces drift too", insts: "web v1@10m a:h b:f c:h", traffic: tr3,
			desired: web(desire("v1", blueGreen(3))),
			want:    expect{provision: 1, route: "a b c"}},
	})
}
