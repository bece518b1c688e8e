package reconciler

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// startToHealthy is the fake time from an instance's start to its listening.
const startToHealthy = 12 * time.Millisecond

var errNotListening = errors.New("connection refused")

// listensAfter is a probe for the in-memory target: an instance listens
// startToHealthy after its CreatedAt, by the clock (the synctest clock in a
// bubble). It records every probe's time in probes, when set.
func listensAfter(probes *[]time.Time) func(context.Context, targets.Instance, schema.Health) error {
	return func(_ context.Context, inst targets.Instance, _ schema.Health) error {
		now := time.Now()
		if probes != nil {
			*probes = append(*probes, now)
		}
		if now.Before(inst.Labels.CreatedAt.Add(startToHealthy)) {
			return errNotListening
		}
		return nil
	}
}

// startCheck is a readiness check with a long interval, so that a probe
// spaced by it would show.
func startCheck(interval time.Duration, healthy, unhealthy int, grace time.Duration) schema.Health {
	return schema.Health{TCP: &schema.TCPCheck{Port: "http"}, Interval: interval, Timeout: time.Second,
		HealthyThreshold: healthy, UnhealthyThreshold: unhealthy, Grace: grace}
}

// probeUntil drives a prober as a waiting executor does: Observe at every
// time it says a check is due, up to limit, with clock set to that time; it
// returns the verdict and when it came.
func probeUntil(t *testing.T, p *Prober, clock *time.Time, inst targets.Instance, svc *schema.Service, limit time.Time) (Health, time.Time) {
	t.Helper()
	now := inst.Labels.CreatedAt
	for range 100 {
		*clock = now
		o := p.Observe(context.Background(), now, []targets.Instance{inst}, func(string) *schema.Service { return svc })[0]
		if o.Health != HealthUnknown {
			return o.Health, now
		}
		if now = p.Next(); now.After(limit) {
			break
		}
	}
	return HealthUnknown, time.Time{}
}

// A probe before the instance listens does not cost a whole interval: the
// check is probed again at the start cadence (2 ms, doubling), and turns
// healthy on the first probe after the instance listens.
func TestProbeBeforeListeningDoesNotDelayVerdict(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := &schema.Service{Name: "web", Health: startCheck(2*time.Second, 1, 3, 0)}
	inst := targets.Instance{ID: "a", State: targets.Running, Endpoints: map[string]string{"http": "127.0.0.1:1"},
		Labels: targets.Labels{Fleet: "f", Service: "web", SpecHash: "h", CreatedAt: t0}}
	p := NewProber()
	var probes []time.Time
	var clock time.Time
	p.probe = func(_ context.Context, inst targets.Instance, _ schema.Health) error {
		now := clock
		probes = append(probes, now)
		if now.Before(inst.Labels.CreatedAt.Add(startToHealthy)) {
			return errNotListening
		}
		return nil
	}
	health, at := probeUntil(t, p, &clock, inst, svc, t0.Add(time.Minute))
	if health != Healthy {
		t.Fatalf("verdict %v, want healthy", health)
	}
	want := []time.Duration{0, 2 * time.Millisecond, 6 * time.Millisecond, 14 * time.Millisecond}
	if len(probes) != len(want) {
		t.Fatalf("probes at %v, want at %v", offsets(t0, probes), want)
	}
	for i, d := range want {
		if !probes[i].Equal(t0.Add(d)) {
			t.Fatalf("probes at %v, want at %v", offsets(t0, probes), want)
		}
	}
	if !at.Equal(t0.Add(14 * time.Millisecond)) {
		t.Errorf("healthy at %v, want on the first probe after listening (14ms), not an interval later", at.Sub(t0))
	}
	if next := p.Next(); !next.Equal(at.Add(2 * time.Second)) {
		t.Errorf("after the verdict the next probe is due at %v, want an interval later", next.Sub(t0))
	}
}

// healthyThreshold still needs that many consecutive successes (at the
// start cadence), and before the first verdict a failure counts only an
// interval after the last one that counted: an instance that never listens
// is not failed sooner than the interval-spaced probes failed it.
func TestStartCadenceKeepsThresholds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := targets.Instance{ID: "a", State: targets.Running, Endpoints: map[string]string{"http": "127.0.0.1:1"},
		Labels: targets.Labels{Fleet: "f", Service: "web", SpecHash: "h", CreatedAt: t0}}

	var clock time.Time
	p := NewProber()
	p.probe = func(_ context.Context, inst targets.Instance, _ schema.Health) error {
		if clock.Before(inst.Labels.CreatedAt.Add(startToHealthy)) {
			return errNotListening
		}
		return nil
	}
	svc := &schema.Service{Name: "web", Health: startCheck(time.Second, 3, 3, 0)}
	if health, at := probeUntil(t, p, &clock, inst, svc, t0.Add(time.Minute)); health != Healthy || !at.Equal(t0.Add(62*time.Millisecond)) {
		t.Fatalf("threshold 3: %v at %v, want healthy on the third success (14, 30, 62ms)", health, at.Sub(t0))
	}

	never := NewProber()
	never.probe = func(context.Context, targets.Instance, schema.Health) error { return errNotListening }
	svc = &schema.Service{Name: "web", Health: startCheck(time.Second, 1, 2, 0)}
	if health, at := probeUntil(t, never, &clock, inst, svc, t0.Add(time.Minute)); health != Unhealthy || at.Before(t0.Add(time.Second)) {
		t.Fatalf("never listening, unhealthyThreshold 2, no grace: %v at %v, want unhealthy no sooner than an interval", health, at.Sub(t0))
	}
}

// The same with a real listener that starts after the first probe: the
// real TCP check fails, then passes on the next probe at the start cadence.
func TestProbeBeforeRealListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := &schema.Service{Name: "web", Health: startCheck(2*time.Second, 1, 3, 10*time.Second)}
	inst := targets.Instance{ID: "a", State: targets.Running, Endpoints: map[string]string{"http": addr},
		Labels: targets.Labels{Fleet: "f", Service: "web", SpecHash: "h", CreatedAt: t0}}
	p := NewProber()
	spec := func(string) *schema.Service { return svc }
	if o := p.Observe(context.Background(), t0, []targets.Instance{inst}, spec)[0]; o.Health != HealthUnknown {
		t.Fatalf("before listening: %v", o.Health)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	next := p.Next()
	if next.Sub(t0) != StartCadence {
		t.Fatalf("next probe %v after the failed one, want %v", next.Sub(t0), StartCadence)
	}
	if o := p.Observe(context.Background(), next, []targets.Instance{inst}, spec)[0]; o.Health != Healthy {
		t.Fatalf("listening, probed at the start cadence: %v, want healthy", o.Health)
	}
	select {
	case <-p.Changed():
	default:
		t.Error("the verdict changed and Changed was not signalled")
	}
}

func offsets(t0 time.Time, ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Sub(t0)
	}
	return out
}

// rolloutFigure is one rollout of 20 instances with maxSurge 5 over the
// in-memory target, its instances listening 12 ms after they start.
type rolloutFigure struct {
	passes    int
	provision []int // the instances provisioned, per pass that provisioned
	retire    []int // the instances retired, per pass that retired
	took      time.Duration
	res       Result
}

func rollout20(t testing.TB, tick time.Duration) rolloutFigure {
	return rolloutOf(t, schema.Rolling, tick, time.Second, 0)
}

// rolloutOf is the rollout of 20 instances from v1 to v2 under strategy
// (rolling: maxSurge 5), health checked every interval, minHealthyFor
// minHealthy.
func rolloutOf(t testing.TB, strategy schema.Strategy, tick, interval, minHealthy time.Duration) rolloutFigure {
	w := newMemWorld(t)
	w.exec.Tick = tick
	w.exec.Prober.probe = listensAfter(nil)
	f1 := w.fleet("shop", "main@sha1:1", "v1", 20, strategy)
	f2 := w.fleet("shop", "main@sha1:2", "v2", 20, strategy)
	for _, f := range []*schema.Fleet{f1, f2} {
		svc := f.Services["web"]
		svc.Rollout.MaxSurge = mustIntOrPercent("5")
		svc.Rollout.MinHealthyFor = minHealthy
		svc.Health = startCheck(interval, 1, 3, 10*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, err := w.exec.Apply(ctx, f1, "main@sha1:1"); err != nil {
		t.Fatal(err)
	}
	var fig rolloutFigure
	w.exec.OnPass = func(p Plan) {
		fig.passes++
		prov, ret := 0, 0
		for _, sp := range p.Services {
			prov += len(sp.Step.Provision)
			ret += len(sp.Step.Retire)
		}
		if prov > 0 {
			fig.provision = append(fig.provision, prov)
		}
		if ret > 0 {
			fig.retire = append(fig.retire, ret)
		}
	}
	start := time.Now()
	res, err := w.exec.Apply(ctx, f2, "main@sha1:2")
	if err != nil {
		t.Fatal(err)
	}
	fig.took, fig.res = time.Since(start), res
	return fig
}

// A pass moves every instance that is ready: in a rolling rollout of 20
// with maxSurge 5, each batch is one step (5 provisioned, then 5 old
// retired with the next 5 provisioned as the batch turns healthy), and no
// batch waits a probe interval or a tick: passes follow the verdicts.
func TestApplyMovesEveryReadyInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fig := rollout20(t, time.Hour) // a tick that would show
		if !fig.res.Converged || fig.res.Provisioned != 20 || fig.res.Retired != 20 {
			t.Fatalf("converged %v, provisioned %d, retired %d", fig.res.Converged, fig.res.Provisioned, fig.res.Retired)
		}
		if want := []int{5, 5, 5, 5}; !slices.Equal(fig.provision, want) || !slices.Equal(fig.retire, want) {
			t.Fatalf("provisioned %v and retired %v per pass, want %v: one step per batch", fig.provision, fig.retire, want)
		}
		// Each batch: probed at 0, 2, 6 and 14 ms after it starts
		// (listening at 12 ms), so four batches within 4 × 14 ms of
		// virtual time.
		if fig.took > 4*14*time.Millisecond {
			t.Errorf("the rollout took %v of virtual time, want at most 4 batches × 14ms", fig.took)
		}
		t.Logf("rolling 20, maxSurge 5, start-to-healthy %v: %d passes, %v virtual", startToHealthy, fig.passes, fig.took)
	})
}

// A pass that waits for new instances to have been healthy for
// minHealthyFor wakes when they have, not on the next probe or tick: with
// both an hour or a minute away, rolling moves four batches in 4 ×
// (start-to-healthy + minHealthyFor) and blue-green switches after one.
func TestApplyWakesAtMinHealthyFor(t *testing.T) {
	for _, c := range []struct {
		strategy schema.Strategy
		batches  time.Duration
	}{{schema.Rolling, 4}, {schema.BlueGreen, 1}} {
		t.Run(string(c.strategy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fig := rolloutOf(t, c.strategy, time.Hour, time.Minute, time.Second)
				if !fig.res.Converged || fig.res.Provisioned != 20 {
					t.Fatalf("converged %v, provisioned %d", fig.res.Converged, fig.res.Provisioned)
				}
				if limit := c.batches * (14*time.Millisecond + time.Second); fig.took > limit {
					t.Errorf("the rollout took %v of virtual time, want at most %v", fig.took, limit)
				}
			})
		})
	}
}

// The wait between passes ends on a verdict: a rollout whose tick is an
// hour converges in milliseconds of virtual time, woken by the probes of
// its new instances.
func TestApplyWakesOnVerdictChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newMemWorld(t)
		w.exec.Tick = time.Hour
		w.exec.Prober.probe = listensAfter(nil)
		f := w.fleet("shop", "main@sha1:1", "v1", 2, schema.BlueGreen)
		f.Services["web"].Health = startCheck(time.Minute, 1, 3, 10*time.Second)
		start := time.Now()
		res, err := w.exec.Apply(context.Background(), f, "main@sha1:1")
		if err != nil || !res.Converged {
			t.Fatalf("converged %v, err %v", res.Converged, err)
		}
		if took := time.Since(start); took >= time.Minute {
			t.Fatalf("took %v: the wait did not end on the verdict", took)
		}

		// A verdict reached by another Observe of the same prober (a
		// health watch between passes) ends the wait as well.
		p := NewProber()
		e := &Executor{Prober: p}
		done := make(chan error, 1)
		go func() { done <- e.wait(context.Background(), f, Plan{}, Input{}, time.Hour) }()
		synctest.Wait()
		p.signal()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took >= time.Minute {
			t.Fatalf("took %v: the wait did not end on Changed", took)
		}
	})
}

// BenchmarkRollingRollout20 is the rollout of TestApplyMovesEveryReadyInstance
// on the real clock with the default tick: the wall time of the rollout
// from v1 to v2 (ms/rollout; ns/op includes setting up v1), and its passes.
func BenchmarkRollingRollout20(b *testing.B) {
	benchRollout(b, func() rolloutFigure { return rollout20(b, 0) })
}

func benchRollout(b *testing.B, rollout func() rolloutFigure) {
	passes := 0
	var took time.Duration
	for b.Loop() {
		fig := rollout()
		passes += fig.passes
		took += fig.took
	}
	b.ReportMetric(float64(passes)/float64(b.N), "passes/op")
	b.ReportMetric(took.Seconds()*1e3/float64(b.N), "ms/rollout")
}

// BenchmarkBlueGreenRollout20 is the blue-green rollout of 20 instances
// over the in-memory target on the real clock (one batch: the whole new
// generation, then the switch).
func BenchmarkBlueGreenRollout20(b *testing.B) {
	benchRollout(b, func() rolloutFigure { return rolloutOf(b, schema.BlueGreen, 0, time.Second, 0) })
}
