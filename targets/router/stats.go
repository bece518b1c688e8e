package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/molt-dev/molt/targets"
)

// Stats are the router's counters since it started, for every fleet (as
// GET /stats answers them).
type Stats struct {
	Started time.Time `json:"started"`
	// Fleets holds the counters by fleet, then by service.
	Fleets map[string]map[string]ServiceStats `json:"fleets"`
}

// FleetStats are the counters of one fleet's services since the router
// started (as Client.Stats returns them).
type FleetStats struct {
	Started time.Time `json:"started"`
	// Services holds the counters by service; a service that had no route
	// exposed since the router started is absent.
	Services map[string]ServiceStats `json:"services"`
}

// ServiceStats are one service's counters.
type ServiceStats struct {
	// Generations holds the counters per generation (spec hash) of the
	// backends that served the service, except those out of the routes
	// and without traffic for over an hour, which the router forgets.
	Generations map[string]Counts `json:"generations"`
	// NoInstance counts requests answered 503 because the route had no
	// backend.
	NoInstance int64 `json:"noInstance,omitempty"`
}

// Counts are one generation's counters. A request retried on another
// backend counts once for each attempt, in the generation of each backend.
type Counts struct {
	// Requests counts the attempts sent to the generation's backends.
	Requests int64 `json:"requests"`
	// Responses by status class.
	Status2xx int64 `json:"2xx"`
	Status3xx int64 `json:"3xx"`
	Status4xx int64 `json:"4xx"`
	Status5xx int64 `json:"5xx"`
	// ProxyErrors counts the attempts that got no response: the backend was
	// unreachable, refused the connection or broke it. Attempts cancelled
	// by the client are not counted here.
	ProxyErrors int64 `json:"proxyErrors"`
	// Latency counts the responses by how long they took to arrive (in
	// the buckets of LatencyBounds), and LatencySum is their total.
	Latency    targets.Histogram `json:"latency"`
	LatencySum time.Duration     `json:"latencySum"`
}

// Failures is the number of attempts that failed on the backend's side:
// 5xx responses plus proxy errors.
func (c Counts) Failures() int64 { return c.Status5xx + c.ProxyErrors }

// counters are the live form of a generation's counts: the totals since
// the router started (Counts) and the windowed counts (targets.Counts).
type counters struct {
	requests, s2xx, s3xx, s4xx, s5xx, proxyErrors atomic.Int64
	latency                                       [latencyBuckets]atomic.Int64
	latencySum                                    atomic.Int64 // nanoseconds
	window                                        window
	// touched is when a compiled table last routed to the generation
	// (Unix seconds); guarded by statsRegistry.mu.
	touched int64
}

// begin counts an attempt that starts at t and returns the slot that
// counts its outcome (nil if t is out of the window).
func (c *counters) begin(t time.Time) *slot {
	c.requests.Add(1)
	s := c.window.at(slotOf(t))
	if s != nil {
		s.requests.Add(1)
	}
	return s
}

// response counts the response to an attempt begun in slot s, which took
// latency to arrive.
func (c *counters) response(s *slot, status int, latency time.Duration) {
	switch status / 100 {
	case 2:
		c.s2xx.Add(1)
	case 3:
		c.s3xx.Add(1)
	case 4:
		c.s4xx.Add(1)
	case 5:
		c.s5xx.Add(1)
		if s != nil {
			s.s5xx.Add(1)
		}
	}
	b := latencyBucket(latency)
	c.latency[b].Add(1)
	c.latencySum.Add(int64(latency))
	if s != nil {
		s.latency[b].Add(1)
	}
}

// proxyError counts an attempt begun in slot s that got no response.
func (c *counters) proxyError(s *slot) {
	c.proxyErrors.Add(1)
	if s != nil {
		s.proxyErrors.Add(1)
	}
}

func (c *counters) snapshot() Counts {
	lat := make([]int64, latencyBuckets)
	for i := range c.latency {
		lat[i] = c.latency[i].Load()
	}
	return Counts{
		Latency:     targets.Histogram{Bounds: LatencyBounds(), Counts: lat},
		LatencySum:  time.Duration(c.latencySum.Load()),
		Requests:    c.requests.Load(),
		Status2xx:   c.s2xx.Load(),
		Status3xx:   c.s3xx.Load(),
		Status4xx:   c.s4xx.Load(),
		Status5xx:   c.s5xx.Load(),
		ProxyErrors: c.proxyErrors.Load(),
	}
}

type serviceCounters struct {
	noInstance atomic.Int64
	gens       map[string]*counters // guarded by statsRegistry.mu
	touched    int64                // as counters.touched
}

// serviceKey names a service across fleets: two fleets' "web" are two
// services.
type serviceKey struct{ fleet, service string }

// forgetAfter is how long a generation out of the routes keeps its
// counters after its last attempt (and a service out of the routes, after
// its last generation is forgotten).
const forgetAfter = time.Hour

// statsRegistry holds the counters of every (fleet, service, generation)
// routed or with traffic in the last hour. Compiling a table looks them up;
// requests only touch the atomic counters.
type statsRegistry struct {
	started time.Time
	clock   func() time.Time // nil means time.Now
	mu      sync.Mutex
	// services is guarded by mu.
	services map[serviceKey]*serviceCounters
}

// newStatsRegistry returns an empty registry that reads the time from
// clock (time.Now if nil).
func newStatsRegistry(clock func() time.Time) *statsRegistry {
	r := &statsRegistry{clock: clock, services: map[serviceKey]*serviceCounters{}}
	r.started = r.now()
	return r
}

func (r *statsRegistry) now() time.Time {
	if r.clock == nil {
		return time.Now()
	}
	return r.clock()
}

// slotTime returns the time that places an attempt started at start (by
// the real clock) in the windowed counts: start itself, unless the
// registry has a clock of its own.
func (r *statsRegistry) slotTime(start time.Time) time.Time {
	if r.clock == nil {
		return start
	}
	return r.clock()
}

func (r *statsRegistry) service(key serviceKey) *serviceCounters {
	now := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serviceLocked(key, now)
}

func (r *statsRegistry) serviceLocked(key serviceKey, now int64) *serviceCounters {
	sc, ok := r.services[key]
	if !ok {
		sc = &serviceCounters{gens: map[string]*counters{}}
		r.services[key] = sc
	}
	sc.touched = now
	return sc
}

// generation returns the counters of a generation that a table being
// compiled routes to, creating them if needed. It marks them as routed
// now, so that a sweep that does not see the table yet keeps them.
func (r *statsRegistry) generation(key serviceKey, gen string) *counters {
	now := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.serviceLocked(key, now)
	c, ok := sc.gens[gen]
	if !ok {
		c = &counters{}
		sc.gens[gen] = c
	}
	c.touched = now
	return c
}

// sweep forgets the generations that routed does not hold, that no table
// routed to in the last hour and that had no attempt in the last hour (and
// then the services left without generations, out of routed and
// untouched for an hour), and frees the windowed counts older than the
// history of the others. It returns how many generations it forgot.
func (r *statsRegistry) sweep(now time.Time, routed map[serviceKey]map[string]bool) int {
	oldest := oldestKept(slotOf(now))
	idle := now.Add(-forgetAfter).Unix()
	forgotten := 0
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, sc := range r.services {
		for gen, c := range sc.gens {
			c.window.release(oldest)
			if routed[key][gen] || c.touched > idle {
				continue
			}
			if cn, ok := c.window.newest(); ok && slotStart((cn+1)*chunkSlots).Unix() > idle {
				continue
			}
			delete(sc.gens, gen)
			forgotten++
		}
		if len(sc.gens) == 0 && routed[key] == nil && sc.touched <= idle {
			delete(r.services, key)
		}
	}
	return forgotten
}

// counts returns the windowed counts of fleet's generations, by service
// and generation, of the attempts started from the slot of since until
// now, and the start of the first slot counted: since rounded down to a
// slot, or later if the router does not reach that far back (it started
// later, or since is older than its history).
func (r *statsRegistry) counts(fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time) {
	cur := slotOf(r.now())
	first := max(slotOf(since), oldestKept(cur), slotOf(r.started))
	type genCounters struct {
		service, gen string
		c            *counters
	}
	var all []genCounters
	out := map[string]map[string]targets.Counts{}
	r.mu.Lock()
	for key, sc := range r.services {
		if key.fleet != fleet {
			continue
		}
		out[key.service] = make(map[string]targets.Counts, len(sc.gens))
		for gen, c := range sc.gens {
			all = append(all, genCounters{key.service, gen, c})
		}
	}
	r.mu.Unlock()
	// Summing reads atomics only: outside the lock, so that a table
	// being compiled does not wait for it.
	for _, g := range all {
		out[g.service][g.gen] = g.c.window.sum(first, cur)
	}
	return out, slotStart(first)
}

// snapshot returns the counters of every fleet.
func (r *statsRegistry) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Started: r.started, Fleets: map[string]map[string]ServiceStats{}}
	for key, sc := range r.services {
		if s.Fleets[key.fleet] == nil {
			s.Fleets[key.fleet] = map[string]ServiceStats{}
		}
		s.Fleets[key.fleet][key.service] = sc.snapshotLocked()
	}
	return s
}

// fleet returns the counters of one fleet's services.
func (r *statsRegistry) fleet(name string) FleetStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := FleetStats{Started: r.started, Services: map[string]ServiceStats{}}
	for key, sc := range r.services {
		if key.fleet == name {
			s.Services[key.service] = sc.snapshotLocked()
		}
	}
	return s
}

// snapshotLocked copies the counters; the caller holds statsRegistry.mu.
func (sc *serviceCounters) snapshotLocked() ServiceStats {
	ss := ServiceStats{Generations: make(map[string]Counts, len(sc.gens)), NoInstance: sc.noInstance.Load()}
	for gen, c := range sc.gens {
		ss.Generations[gen] = c.snapshot()
	}
	return ss
}
