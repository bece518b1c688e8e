package router

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the router's counters since it started.
type Stats struct {
	Started  time.Time               `json:"started"`
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

// statsRegistry holds the counters of every service and generation seen
// since start. Compiling a table looks them up; requests only touch the
// atomic counters.
type statsRegistry struct {
	started  time.Time
	mu       sync.Mutex
	services map[string]*serviceCounters
}

func newStatsRegistry(now time.Time) *statsRegistry {
	return &statsRegistry{started: now, services: map[string]*serviceCounters{}}
}

func (r *statsRegistry) service(name string) *serviceCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serviceLocked(name)
}

func (r *statsRegistry) serviceLocked(name string) *serviceCounters {
	sc, ok := r.services[name]
	if !ok {
		sc = &serviceCounters{gens: map[string]*counters{}}
		r.services[name] = sc
	}
	return sc
}

func (r *statsRegistry) generation(service, gen string) *counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.serviceLocked(service)
	c, ok := sc.gens[gen]
	if !ok {
		c = &counters{}
		sc.gens[gen] = c
	}
	return c
}

func (r *statsRegistry) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Started: r.started, Services: make(map[string]ServiceStats, len(r.services))}
	for name, sc := range r.services {
		ss := ServiceStats{Generations: make(map[string]Counts, len(sc.gens)), NoInstance: sc.noInstance.Load()}
		for gen, c := range sc.gens {
			ss.Generations[gen] = c.snapshot()
		}
		s.Services[name] = ss
	}
	return s
}
