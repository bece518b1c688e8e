package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/github"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/router"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sample finds the series of family name whose labels include the given
// pairs and returns its value (a histogram's: its count).
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// series counts the series of a family whose labels include the pairs.
func series(t *testing.T, reg *prometheus.Registry, name string, labels ...string) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				if hasLabels(m, labels) {
					n++
				}
			}
		}
	}
	return n
}

func hasLabels(m *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if have[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}

func instance(id, hash string, h reconciler.Health) reconciler.Observed {
	return reconciler.Observed{Instance: targets.Instance{ID: id, State: targets.Running,
		Labels: targets.Labels{Fleet: "shop", Service: "web", SpecHash: hash}}, Health: h}
}

const (
	hashA = "aaaaaaaa0000000000"
	hashB = "bbbbbbbb0000000000"
	hashC = "cccccccc0000000000"
)

// TestMetricsFromPasses feeds synthetic passes to the metrics and checks
// that the gauges follow each pass, that a generation that goes away
// loses its series, and that rollouts end with the right result.
func TestMetricsFromPasses(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return clock }
	want := func(v float64, name string, labels ...string) {
		t.Helper()
		got, ok := sample(t, reg, name, labels...)
		if !ok {
			t.Errorf("%s%v: no series, want %v", name, labels, v)
		} else if got != v {
			t.Errorf("%s%v = %v, want %v", name, labels, got, v)
		}
	}
	absent := func(name string, labels ...string) {
		t.Helper()
		if n := series(t, reg, name, labels...); n != 0 {
			t.Errorf("%s%v: %d series, want none", name, labels, n)
		}
	}
	web := func(from, to, fromRev, toRev string, edit func(*reconciler.ServicePlan)) reconciler.Plan {
		sp := reconciler.ServicePlan{Service: "web", Strategy: schema.Rolling, From: from, To: to, FromRevision: fromRev, ToRevision: toRev, Replicas: 2}
		if from != to {
			sp.Step.Provision = []reconciler.Provision{{Reason: "rollout"}}
		}
		if edit != nil {
			edit(&sp)
		}
		return reconciler.Plan{Fleet: "shop", Revision: toRev, Services: []reconciler.ServicePlan{sp}}
	}
	pass := func(p reconciler.Plan, obs ...reconciler.Observed) {
		m.onObserve(p.Fleet, obs)
		m.onPass(p)
		clock = clock.Add(10 * time.Second)
	}

	// A rollout from A to B, one instance at a time.
	pass(web(hashA, hashB, "r1", "r2", nil), instance("i1", hashA, reconciler.Healthy), instance("i2", hashA, reconciler.Healthy),
		instance("i3", hashB, reconciler.HealthUnknown))
	want(2, "molt_instances", "service", "web", "generation", "aaaaaaaa", "health", "healthy")
	want(1, "molt_instances", "generation", "bbbbbbbb", "health", "unknown")
	for _, h := range healthValues {
		if n := series(t, reg, "molt_instances", "generation", "bbbbbbbb", "health", h); n != 1 {
			t.Errorf("generation B, health %s: %d series, want 1 (initialised at zero)", h, n)
		}
	}
	for _, r := range rolloutResults {
		want(0, "molt_rollouts_total", "fleet", "shop", "service", "web", "strategy", "rolling", "result", r)
	}
	for _, r := range reconcileResults {
		want(0, "molt_reconciles_total", "fleet", "shop", "result", r)
	}
	want(1, "molt_revision_info", "service", "web", "revision", "r2", "role", "desired")
	want(1, "molt_revision_info", "service", "web", "revision", "r1", "role", "live")
	want(0, "molt_instances_provisioned_total", "service", "web") // the first observation is the baseline

	pass(web(hashA, hashB, "r1", "r2", nil), instance("i2", hashA, reconciler.Healthy),
		instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.HealthUnknown))
	want(1, "molt_instances", "generation", "aaaaaaaa", "health", "healthy")
	want(1, "molt_instances", "generation", "bbbbbbbb", "health", "healthy")
	want(1, "molt_instances_provisioned_total", "service", "web")
	want(1, "molt_instances_retired_total", "service", "web")
	want(0, "molt_rollouts_total", "result", "converged")

	// Converged on B: A's series fall, the live revision is r2 alone.
	pass(web(hashB, hashB, "r2", "r2", nil), instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.Healthy))
	absent("molt_instances", "generation", "aaaaaaaa")
	want(2, "molt_instances", "generation", "bbbbbbbb", "health", "healthy")
	want(1, "molt_rollouts_total", "strategy", "rolling", "result", "converged")
	want(1, "molt_rollout_duration_seconds", "result", "converged")
	absent("molt_revision_info", "revision", "r1")
	want(1, "molt_revision_info", "revision", "r2", "role", "live")
	if n := series(t, reg, "molt_revision_info", "service", "web"); n != 2 {
		t.Errorf("molt_revision_info of web: %d series, want 2 (desired and live)", n)
	}
	// Passes of a converged service do not start a rollout.
	pass(web(hashB, hashB, "r2", "r2", nil), instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.Healthy))

	// A rollout to C that fails, then its rollback: one rolled_back, and
	// the rollback is no rollout of its own.
	pass(web(hashB, hashC, "r2", "r3", nil), instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.Healthy))
	pass(web(hashB, hashC, "r2", "r3", func(sp *reconciler.ServicePlan) { sp.Failed = "health: i5 unhealthy" }),
		instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.Healthy), instance("i5", hashC, reconciler.Unhealthy))
	want(1, "molt_instances", "generation", "cccccccc", "health", "unhealthy")
	pass(web(hashB, hashB, "r2", "r2", func(sp *reconciler.ServicePlan) {
		sp.Rollback = true
		sp.Step.Retire = []reconciler.Retire{{Instance: "i5", SpecHash: hashC}}
	}), instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.Healthy), instance("i5", hashC, reconciler.Unhealthy))
	pass(web(hashB, hashB, "r2", "r2", func(sp *reconciler.ServicePlan) { sp.Rollback = true }),
		instance("i3", hashB, reconciler.Healthy), instance("i4", hashB, reconciler.Healthy))
	want(1, "molt_rollouts_total", "result", "rolled_back")
	want(1, "molt_rollouts_total", "result", "converged")
	absent("molt_instances", "generation", "cccccccc")

	// Aborted, then superseded by a newer generation.
	pass(web(hashB, hashC, "r2", "r4", nil), instance("i3", hashB, reconciler.Healthy))
	pass(web(hashB, hashC, "r2", "r4", func(sp *reconciler.ServicePlan) { sp.Failed = "aborted by ana (molt abort)" }),
		instance("i3", hashB, reconciler.Healthy))
	want(1, "molt_rollouts_total", "result", "aborted")
	pass(web(hashB, hashC, "r2", "r5", nil), instance("i3", hashB, reconciler.Healthy))
	pass(web(hashB, hashA, "r2", "r6", nil), instance("i3", hashB, reconciler.Healthy))
	want(1, "molt_rollouts_total", "result", "superseded")
	pass(web(hashA, hashA, "r6", "r6", nil), instance("i6", hashA, reconciler.Healthy))
	want(2, "molt_rollouts_total", "result", "converged")

	// A dead instance is counted as dead.
	dead := instance("i6", hashA, reconciler.Unhealthy)
	dead.State = targets.Dead
	pass(web(hashA, hashA, "r6", "r6", nil), dead)
	want(1, "molt_instances", "generation", "aaaaaaaa", "health", "dead")
	want(0, "molt_instances", "generation", "aaaaaaaa", "health", "healthy")

	// A service out of the plan and without instances loses its gauges.
	pass(reconciler.Plan{Fleet: "shop", Revision: "r7"})
	absent("molt_instances", "service", "web")
	absent("molt_revision_info", "service", "web")

	// Reconciles: by result, with the last success's time; an outcome
	// that names no fleet (a failed fetch) counts for the last one named.
	start := clock
	m.observe(reconciler.Outcome{Fleet: "shop", Revision: "r7", Started: start, Finished: start.Add(3 * time.Second),
		Result: reconciler.Result{Converged: true}}, slog.New(slog.DiscardHandler))
	m.observe(reconciler.Outcome{Err: errors.New("fetch: refused"), Started: start, Finished: start.Add(time.Second)}, slog.New(slog.DiscardHandler))
	want(1, "molt_reconciles_total", "fleet", "shop", "result", "converged")
	want(1, "molt_reconciles_total", "fleet", "shop", "result", "error")
	want(1, "molt_reconcile_duration_seconds", "fleet", "shop", "result", "converged")
	want(float64(start.Add(3*time.Second).Unix()), "molt_last_successful_reconcile_timestamp_seconds", "fleet", "shop")

	m.fetched(time.Second, nil)
	m.fetched(time.Second, errors.New("refused"))
	want(2, "molt_fetch_duration_seconds")
	want(1, "molt_fetch_errors_total")
	want(1, "molt_build_info", "version", version)
	if _, ok := sample(t, reg, "go_goroutines"); !ok {
		t.Error("no Go collector")
	}
}

type fakeRouterStats struct {
	err   error
	stats router.FleetStats
}

func (f fakeRouterStats) Fleets(context.Context) ([]string, error) { return []string{"shop"}, f.err }
func (f fakeRouterStats) Stats(context.Context, string) (router.FleetStats, error) {
	return f.stats, f.err
}

// TestMetricsOfHooksQueueAndRouter checks the families read when scraped.
func TestMetricsOfHooksQueueAndRouter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	m.webhookCounts("github", func() map[string]github.Counts {
		return map[string]github.Counts{"push": {Accepted: 3}, "other": {BadSignature: 1}}
	})
	q, err := github.NewQueue(github.QueueOptions{Dir: t.TempDir(), Reporter: github.LogReporter{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	m.githubQueue(q)
	lat := make([]int64, len(router.LatencyBounds())+1)
	lat[0], lat[len(lat)-1] = 4, 1
	m.routerCounts(fakeRouterStats{stats: router.FleetStats{Services: map[string]router.ServiceStats{
		"web": {NoInstance: 2, Generations: map[string]router.Counts{
			"0123456789abcdef": {Requests: 5, Status2xx: 4, Status5xx: 1, LatencySum: 12 * time.Second,
				Latency: targets.Histogram{Bounds: router.LatencyBounds(), Counts: lat}},
		}},
	}}})
	want := func(v float64, name string, labels ...string) {
		t.Helper()
		if got, ok := sample(t, reg, name, labels...); !ok || got != v {
			t.Errorf("%s%v = %v (found: %v), want %v", name, labels, got, ok, v)
		}
	}
	want(3, "molt_webhook_deliveries_total", "hook", "github", "event", "push", "outcome", "accepted")
	want(0, "molt_webhook_deliveries_total", "event", "push", "outcome", "duplicate")
	want(1, "molt_webhook_deliveries_total", "event", "other", "outcome", "bad_signature")
	want(0, "molt_github_reports_total", "result", "delivered")
	want(0, "molt_github_reports_dropped_total", "reason", "overflow")
	want(0, "molt_github_reports_pending")
	want(1, "molt_router_up")
	want(4, "molt_router_requests_total", "fleet", "shop", "service", "web", "generation", "01234567", "class", "2xx")
	want(1, "molt_router_requests_total", "generation", "01234567", "class", "5xx")
	want(0, "molt_router_requests_total", "generation", "01234567", "class", "error")
	want(5, "molt_router_request_duration_seconds", "generation", "01234567")
	want(2, "molt_router_no_instance_total", "service", "web")

	down := prometheus.NewRegistry()
	newServeMetrics(down).routerCounts(fakeRouterStats{err: errors.New("no router")})
	if got, ok := sample(t, down, "molt_router_up"); !ok || got != 0 {
		t.Errorf("molt_router_up without a router = %v, %v; want 0", got, ok)
	}
}
