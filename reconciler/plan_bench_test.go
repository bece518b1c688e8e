package reconciler

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
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

// noopInput is a converged fleet of n instances as the executor passes it
// (routes at the front included): per services of `per` instances (one
// service of n when per is 0), each serving v1 with every instance
// healthy for a day, in traffic and exposed. The target lists the
// instances in no particular order (and each is made as it is listed);
// the records and routes are read per service, as TrafficOf reads them.
func noopInput(n, per int) Input {
	if per <= 0 {
		per = n
	}
	in := Input{Fleet: testFleet, Revision: "rev", Now: t0,
		Desired: map[string]Desired{}, Traffic: map[string]Traffic{}, Routes: map[string]targets.Route{}}
	id := func(s, i int) string { return fmt.Sprintf("svc%05d-%06d", s, i) }
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", 20000+i%40000) }
	created := func(i int) time.Time { return t0.Add(-24*time.Hour + time.Duration(i)*time.Millisecond) }
	for s := 0; s*per < n; s++ {
		svc := fmt.Sprintf("svc%05d", s)
		k := min(per, n-s*per)
		spec := rolling(k, "25%", "25%", minHealthy(10*time.Second), keep(time.Hour), deadline(time.Hour))
		spec.Name = svc
		spec.Expose = &schema.Expose{Listen: fmt.Sprintf("127.0.0.1:%d", 10000+s%50000), Port: "http"}
		in.Desired[svc] = desire("v1", spec)
		tr := Traffic{Active: "v1", Instances: make([]string, 0, k)}
		for i := range k {
			tr.Instances = append(tr.Instances, id(s, i)) // (sorted: ids are zero-padded)
		}
		in.Traffic[svc] = tr
		rt := buildRoute(svc, spec.Expose, tr, nil)
		for i := range k { // as buildRoute makes it
			rt.Backends = append(rt.Backends, targets.Backend{Instance: id(s, i), Addr: addr(i), Generation: "v1"})
		}
		in.Routes[svc] = rt
	}
	listed := make([]int, n)
	for i := range listed {
		listed[i] = i
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
	in.Instances = make([]Observed, 0, n)
	for _, x := range listed {
		s, i := x/per, x%per
		in.Instances = append(in.Instances, Observed{Instance: targets.Instance{
			ID:        id(s, i),
			State:     targets.Running,
			Endpoints: map[string]string{"http": addr(i)},
			Labels: targets.Labels{Fleet: testFleet, Service: fmt.Sprintf("svc%05d", s), SpecHash: "v1",
				Revision: "rev-v1", CreatedAt: created(i)},
		}, Health: Healthy, HealthySince: created(i).Add(time.Minute)})
	}
	return in
}

// BenchmarkPlanNoop plans a converged fleet (nothing to do): many
// services of 10 instances, and one big service.
func BenchmarkPlanNoop(b *testing.B) {
	for _, shape := range []struct {
		name string
		per  int
	}{{"services", 10}, {"one", 0}} {
		for _, n := range []int{10, 1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/%d", shape.name, n), func(b *testing.B) {
				in := noopInput(n, shape.per)
				if p := PlanFleet(in); !p.Converged() || p.Changes() {
					b.Fatalf("not a no-op plan: %+v", p.Services[0])
				}
				b.ReportAllocs()
				for b.Loop() {
					PlanFleet(in)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/instance")
			})
		}
	}
}
