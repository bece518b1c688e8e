package router

import (
	"sync"
	"sync/atomic"
	"time"
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
	// backends that served the service.
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
}

// Failures is the number of attempts that failed on the backend's side:
// 5xx responses plus proxy errors.
func (c Counts) Failures() int64 { return c.Status5xx + c.ProxyErrors }

// counters are the live form of Counts.
type counters struct {
	requests, s2xx, s3xx, s4xx, s5xx, proxyErrors atomic.Int64
}

func (c *counters) response(status int) {
	switch status / 100 {
	case 2:
		c.s2xx.Add(1)
	case 3:
		c.s3xx.Add(1)
	case 4:
		c.s4xx.Add(1)
	case 5:
		c.s5xx.Add(1)
	}
}

func (c *counters) snapshot() Counts {
	return Counts{
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
}

// serviceKey names a service across fleets: two fleets' "web" are two
// services.
type serviceKey struct{ fleet, service string }

// statsRegistry holds the counters of every (fleet, service, generation)
// seen since start. Compiling a table looks them up; requests only touch
// the atomic counters.
type statsRegistry struct {
	started  time.Time
	mu       sync.Mutex
	services map[serviceKey]*serviceCounters
}

func newStatsRegistry(now time.Time) *statsRegistry {
	return &statsRegistry{started: now, services: map[serviceKey]*serviceCounters{}}
}

func (r *statsRegistry) service(key serviceKey) *serviceCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serviceLocked(key)
}

func (r *statsRegistry) serviceLocked(key serviceKey) *serviceCounters {
	sc, ok := r.services[key]
	if !ok {
		sc = &serviceCounters{gens: map[string]*counters{}}
		r.services[key] = sc
	}
	return sc
}

func (r *statsRegistry) generation(key serviceKey, gen string) *counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.serviceLocked(key)
	c, ok := sc.gens[gen]
	if !ok {
		c = &counters{}
		sc.gens[gen] = c
	}
	return c
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
