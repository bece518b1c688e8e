package reconciler

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Prober runs the readiness checks of instances and keeps, per instance,
// the counts that turn results into a verdict (healthyThreshold,
// unhealthyThreshold, start grace). It starts no goroutine of its own
// outside Observe; its zero value is not usable: use NewProber.
type Prober struct {
	// Eager probes every instance on every Observe, whatever its check's
	// interval: a one-off plan uses it to reach verdicts in a few rounds.
	Eager  bool
	client *http.Client
	mu     sync.Mutex
	state  map[string]*probeState
}

type probeState struct {
	last      time.Time
	successes int
	failures  int
	health    Health
	since     time.Time
}

// NewProber returns a prober with its own HTTP client (no keep-alive: a
// probe must see a fresh connection, like a new client would).
func NewProber() *Prober {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	return &Prober{client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, state: map[string]*probeState{}}
}

// Observe probes every running instance whose checks are due (by their
// intervals) and returns all instances with their current verdicts: the
// readiness check (health) and, when the service has one, the liveness
// check. spec gives the service whose checks apply (nil: none). Probes run
// concurrently; Observe returns when they are done or ctx is cancelled.
func (p *Prober) Observe(ctx context.Context, now time.Time, insts []targets.Instance, spec func(service string) *schema.Service) []Observed {
	type job struct {
		i   int
		key string // the instance id; with "#live" for its liveness check
		hc  schema.Health
	}
	out := make([]Observed, len(insts))
	var jobs []job
	p.mu.Lock()
	seen := map[string]bool{}
	due := func(i int, key string, hc schema.Health) {
		seen[key] = true
		st := p.state[key]
		if st == nil {
			st = &probeState{}
			p.state[key] = st
		}
		if hc.HTTP == nil && hc.TCP == nil {
			if st.health != Healthy {
				st.health, st.since = Healthy, now // no check: healthy once running
			}
			return
		}
		interval := hc.Interval
		if interval <= 0 {
			interval = 2 * time.Second
		}
		if st.last.IsZero() || now.Sub(st.last) >= interval || p.Eager {
			st.last = now
			jobs = append(jobs, job{i, key, hc})
		}
	}
	for i, inst := range insts {
		out[i] = Observed{Instance: inst}
		seen[inst.ID] = true
		if inst.State != targets.Running {
			continue
		}
		svc := spec(inst.Labels.Service)
		if svc == nil {
			due(i, inst.ID, schema.Health{})
			continue
		}
		due(i, inst.ID, svc.Health)
		if svc.Liveness != nil {
			due(i, inst.ID+"#live", *svc.Liveness)
		}
	}
	for key := range p.state {
		if !seen[key] {
			delete(p.state, key) // retired: forget it
		}
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	results := make([]error, len(jobs))
	for k, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[k] = p.check(ctx, insts[j.i], j.hc)
		}()
	}
	wg.Wait()

	p.mu.Lock()
	defer p.mu.Unlock()
	for k, j := range jobs {
		inst := insts[j.i]
		st := p.state[j.key]
		if ctx.Err() != nil {
			break // a cancelled probe says nothing about the instance
		}
		if results[k] == nil {
			st.failures = 0
			st.successes++
			if st.successes >= max(1, j.hc.HealthyThreshold) && st.health != Healthy {
				st.health, st.since = Healthy, now
			}
			continue
		}
		st.successes = 0
		if now.Before(inst.Labels.CreatedAt.Add(j.hc.Grace)) {
			continue // inside the start grace: failures do not count
		}
		st.failures++
		if st.failures >= max(1, j.hc.UnhealthyThreshold) {
			st.health, st.since = Unhealthy, time.Time{}
		}
	}
	for i, inst := range insts {
		if inst.State != targets.Running {
			continue
		}
		if st := p.state[inst.ID]; st != nil {
			out[i].Health = st.health
			if st.health == Healthy {
				out[i].HealthySince = st.since
			}
		}
		if st := p.state[inst.ID+"#live"]; st != nil && st.health == Unhealthy {
			out[i].LivenessFailed = true
		}
	}
	return out
}

// check runs one probe.
func (p *Prober) check(ctx context.Context, inst targets.Instance, hc schema.Health) error {
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if hc.TCP != nil {
		addr, ok := inst.Endpoints[hc.TCP.Port]
		if !ok {
			return fmt.Errorf("no endpoint for port %q", hc.TCP.Port)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	addr, ok := inst.Endpoints[hc.HTTP.Port]
	if !ok {
		return fmt.Errorf("no endpoint for port %q", hc.HTTP.Port)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.HTTP.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "molt-health")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	want := hc.HTTP.Status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return nil
}
