package router

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/molt-dev/molt/targets"
)

// compiled is a Table made ready for the data plane. It is immutable once
// published, except for the routes' round-robin positions.
type compiled struct {
	table Table
	// byListen maps each exposed listen address, of any fleet, to its route.
	byListen map[string]*route
	// exposed holds the backend addresses that can receive traffic.
	exposed map[string]bool
}

// route is one exposed service of one fleet.
type route struct {
	fleet, service string
	backends       []*backend
	// order is the smooth weighted round-robin schedule: indexes into
	// backends, each appearing in proportion to its weight, interleaved.
	order []int
	next  atomic.Uint64
	stats *serviceCounters
}

// backend is a Backend with its connection pool and its counters.
type backend struct {
	targets.Backend
	up  *upstream
	gen *counters
	// genHeader is the value of GenerationHeader in its responses, shared
	// by them all (nothing appends to it).
	genHeader []string
}

// compile builds the data-plane form of a validated table, registering
// the upstreams and counters it needs.
func compile(t Table, ups *upstreams, st *statsRegistry) *compiled {
	c := &compiled{table: t, byListen: map[string]*route{}, exposed: map[string]bool{}}
	for fleet, routes := range t.Fleets {
		for _, r := range routes {
			if r.Listen == "" {
				continue
			}
			key := serviceKey{fleet: fleet, service: r.Service}
			rt := &route{fleet: fleet, service: r.Service, stats: st.service(key)}
			weights := make([]int, len(r.Backends))
			for i, b := range r.Backends {
				rt.backends = append(rt.backends, &backend{
					Backend:   b,
					up:        ups.get(b.Addr),
					gen:       st.generation(key, b.Generation),
					genHeader: []string{b.Generation},
				})
				weights[i] = b.Weight
				c.exposed[b.Addr] = true
			}
			rt.order = schedule(weights)
			c.byListen[r.Listen] = rt
		}
	}
	return c
}

// pick returns the next backend in the schedule whose address is not
// exclude, or nil if there is none.
func (r *route) pick(exclude ...string) *backend {
	n := uint64(len(r.order))
	if n == 0 {
		return nil
	}
	start := r.next.Add(1) - 1
	var now time.Time     // read only when a backend has failed: not on every request
	var fallback *backend // an ejected backend, when every other is too
	for i := range n {
		b := r.backends[r.order[(start+i)%n]]
		if slices.Contains(exclude, b.Addr) {
			continue
		}
		if b.up == nil || b.up.failedUntil.Load() == 0 {
			return b
		}
		if now.IsZero() {
			now = time.Now()
		}
		if !b.up.ejected(now) {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}

// maxSchedule bounds the length of a route's schedule; weights whose sum
// exceeds it are scaled down (keeping every backend at least once).
const maxSchedule = 1000

// schedule returns the smooth weighted round-robin order (as nginx does it)
// for the given weights, where 0 means 1: over one cycle each index appears
// in proportion to its weight, spread out rather than in runs.
func schedule(weights []int) []int {
	if len(weights) == 0 {
		return nil
	}
	w := make([]int, len(weights))
	g := 0
	total := 0
	for i, x := range weights {
		w[i] = max(x, 1)
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxSchedule {
		scaled := 0
		for i := range w {
			w[i] = max(1, int(math.Round(float64(w[i])*maxSchedule/float64(total))))
			scaled += w[i]
		}
		total = scaled
	}
	cur := make([]int, len(w))
	order := make([]int, 0, total)
	for range total {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		order = append(order, best)
	}
	return order
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
