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
//
// A readiness check that has reached no verdict yet (a new instance) is
// probed at the start cadence: StartCadence after the first probe, then
// doubling up to its interval, so that an instance probed before it
// listens turns healthy within a few milliseconds of listening rather than
// a whole interval later. healthyThreshold keeps its meaning (that many
// consecutive successful probes; a span of proven health is what
// minHealthyFor is for), and so does unhealthyThreshold: before the first
// verdict a failure counts only an interval or more after the last one
// that counted, so that the fast probes of a slow starter never fail it
// sooner than the interval-spaced probes did.
type Prober struct {
	// Eager probes every instance on every Observe, whatever its check's
	// interval: a one-off plan uses it to reach verdicts in a few rounds.
	Eager  bool
	client *http.Client
	// probe runs one check (nil: check); tests replace it.
	probe   func(ctx context.Context, inst targets.Instance, hc schema.Health) error
	changed chan struct{}
	mu      sync.Mutex
	state   map[string]*probeState
	next    time.Time // when the earliest check of the last Observe's instances is due
}

// StartCadence is the pause after the first probe of a readiness check
// that has no verdict yet; it doubles after every probe, up to the check's
// interval.
const StartCadence = 2 * time.Millisecond

type probeState struct {
	last      time.Time
	successes int
	failures  int
	health    Health
	since     time.Time
	start     bool          // a readiness check: probed at the start cadence until its first verdict
	verdict   bool          // it reached a verdict once
	pause     time.Duration // the start cadence's next pause
	counted   time.Time     // the last failure that counted before the first verdict
	interval  time.Duration // the check's interval
}

// wait is the pause between two probes of the check.
func (st *probeState) wait(interval time.Duration) time.Duration {
	if st.start && !st.verdict && st.pause < interval {
		return st.pause
	}
	return interval
}

// NewProber returns a prober with its own HTTP client (no keep-alive: a
// probe must see a fresh connection, like a new client would).
func NewProber() *Prober {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	return &Prober{client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, state: map[string]*probeState{}, changed: make(chan struct{}, 1)}
}

// Changed is signalled (without blocking: one signal stands for any number)
// whenever an Observe changes a verdict, so that a waiting pass can plan
// on it at once.
func (p *Prober) Changed() <-chan struct{} { return p.changed }

// Next is when the earliest check of the instances of the last Observe is
// due (zero: none has a check).
func (p *Prober) Next() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

func (p *Prober) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
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
	changed := false
	var checked []*probeState // the running instances' checks
	due := func(i int, key string, hc schema.Health, start bool) {
		seen[key] = true
		st := p.state[key]
		if st == nil {
			st = &probeState{start: start, pause: StartCadence}
			p.state[key] = st
		}
		if hc.HTTP == nil && hc.TCP == nil {
			if st.health != Healthy {
				st.health, st.since = Healthy, now // no check: healthy once running
				changed = true
			}
			return
		}
		st.interval = interval(hc)
		checked = append(checked, st)
		if st.last.IsZero() || now.Sub(st.last) >= st.wait(st.interval) || p.Eager {
			if !st.last.IsZero() && st.start && !st.verdict {
				st.pause *= 2
			}
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
			due(i, inst.ID, schema.Health{}, true)
			continue
		}
		due(i, inst.ID, svc.Health, true)
		if svc.Liveness != nil {
			due(i, inst.ID+"#live", *svc.Liveness, false) // it gates nothing: no start cadence
		}
	}
	for key := range p.state {
		if !seen[key] {
			delete(p.state, key) // retired: forget it
		}
	}
	p.mu.Unlock()
	probe := p.probe
	if probe == nil {
		probe = p.check
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	results := make([]error, len(jobs))
	for k, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[k] = probe(ctx, insts[j.i], j.hc)
		}()
	}
	wg.Wait()

	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		if changed {
			p.signal()
		}
	}()
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
				st.health, st.since, st.verdict, changed = Healthy, now, true, true
			}
			continue
		}
		st.successes = 0
		if now.Before(inst.Labels.CreatedAt.Add(j.hc.Grace)) {
			continue // inside the start grace: failures do not count
		}
		if !st.verdict && !st.counted.IsZero() && now.Sub(st.counted) < st.interval {
			continue // a probe at the start cadence: failures count an interval apart
		}
		st.counted = now
		st.failures++
		if st.failures >= max(1, j.hc.UnhealthyThreshold) {
			if st.health != Unhealthy {
				changed = true
			}
			st.health, st.since, st.verdict = Unhealthy, time.Time{}, true
		}
	}
	p.next = time.Time{}
	for _, st := range checked {
		if at := st.last.Add(st.wait(st.interval)); p.next.IsZero() || at.Before(p.next) {
			p.next = at
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

// interval is the pause between two probes of a check with a verdict.
func interval(hc schema.Health) time.Duration {
	if hc.Interval <= 0 {
		return 2 * time.Second
	}
	return hc.Interval
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
