package reconciler

import (
	"fmt"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
)

// benchInput is a fleet of n instances in services of 10, every service
// in the middle of a rolling rollout from v1 to v2: six old instances in
// traffic, three new ones healthy and routed, one new one starting.
func benchInput(n int) Input {
	in := Input{Fleet: testFleet, Revision: "rev", Now: t0,
		Desired: map[string]Desired{}, Traffic: map[string]Traffic{}}
	spec := rolling(10, "25%", "25%", minHealthy(10*time.Second), keep(time.Hour), deadline(time.Hour))
	for s := 0; s*10 < n; s++ {
		svc := fmt.Sprintf("svc%05d", s)
		in.Desired[svc] = desire("v2", spec)
		tr := Traffic{Active: "v1"}
		for i := range min(10, n-s*10) {
			hash, created := "v1", t0.Add(-24*time.Hour)
			if i >= 6 {
				hash, created = "v2", t0.Add(-5*time.Minute)
			}
			o := Observed{Instance: targets.Instance{
				ID:    fmt.Sprintf("%s-%02d", svc, i),
				State: targets.Running,
				Labels: targets.Labels{Fleet: testFleet, Service: svc, SpecHash: hash,
					Revision: "rev-" + hash, CreatedAt: created.Add(time.Duration(i) * time.Second)},
			}}
			if i < 9 {
				o.Health, o.HealthySince = Healthy, o.Labels.CreatedAt.Add(time.Minute)
				tr.Instances = append(tr.Instances, o.ID)
			}
			in.Instances = append(in.Instances, o)
		}
		in.Traffic[svc] = tr
	}
	return in
}

func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			in := benchInput(n)
			p := PlanFleet(in)
			if len(p.Services) != (n+9)/10 || p.Converged() {
				b.Fatalf("unexpected plan: %d services, converged %v", len(p.Services), p.Converged())
			}
			b.ReportAllocs()
			for b.Loop() {
				PlanFleet(in)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/instance")
		})
	}
}
