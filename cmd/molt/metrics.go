package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/github"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// serveMetrics are the Prometheus metrics of molt serve, on their own
// registry. They move as things happen: the gauges and the rollout and
// instance counters on every pass of the executor (one step of a
// rollout), the reconcile metrics when a reconcile ends, and the webhook,
// GitHub queue and router counters whenever they are scraped.
//
// Labels are bounded: fleet, service, strategy, generation (the short
// spec hash: the generations alive, which keepPrevious bounds), health,
// result, outcome. Never an instance id; a revision only in
// molt_revision_info, one per service and role.
type serveMetrics struct {
	reg *prometheus.Registry
	now func() time.Time
	// onFetch, when set, hears of every fetch (serve's /readyz).
	onFetch func(at time.Time, err error)

	reconciles        *prometheus.CounterVec
	reconcileDuration *prometheus.HistogramVec
	lastSuccess       *prometheus.GaugeVec
	rollouts          *prometheus.CounterVec
	rolloutDuration   *prometheus.HistogramVec
	instances         *prometheus.GaugeVec
	revisionInfo      *prometheus.GaugeVec
	provisioned       *prometheus.CounterVec
	retired           *prometheus.CounterVec
	fetchDuration     prometheus.Histogram
	fetchErrors       prometheus.Counter

	mu       sync.Mutex
	fleets   map[string]*fleetMetrics
	observed map[string][]reconciler.Observed // by fleet: the pass's instances, until its plan comes
	lastName string                           // the fleet of the last outcome that named one
}

// The label values that can appear, each initialised at zero.
var (
	reconcileResults = []string{"converged", "degraded", "held", "paused", "deferred", "idle", "preempted", "failed", "error"}
	rolloutResults   = []string{"converged", "rolled_back", "aborted", "superseded"}
	healthValues     = []string{"healthy", "unhealthy", "unknown", "dead"}
	revisionRoles    = []string{"desired", "live"}
)

// fleetMetrics is what the metrics remember of one fleet between passes.
type fleetMetrics struct {
	services map[string]*serviceMetrics
	// seen maps the ids of the instances of the last observation to
	// their service (nil before the first): the next one's difference
	// is what was provisioned and retired.
	seen map[string]string
}

type serviceMetrics struct {
	strategy    string
	generations map[string]bool   // short hashes with molt_instances series
	revisions   map[string]string // by role: the revision with a molt_revision_info series
	rollout     *rolloutRun       // in progress, or nil
}

// rolloutRun is a rollout from its first pass to its end.
type rolloutRun struct {
	to       string // the desired spec hash
	strategy string
	started  time.Time
}

// newServeMetrics builds the metrics and registers them on reg, with the
// Go and process collectors and molt_build_info.
func newServeMetrics(reg *prometheus.Registry) *serveMetrics {
	fleet := []string{"fleet"}
	m := &serveMetrics{
		reg: reg,
		now: time.Now,
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molt_reconciles_total",
			Help: "Reconciles by fleet and result (converged, degraded, held, paused, deferred, idle, preempted, failed, error)."},
			[]string{"fleet", "result"}),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "molt_reconcile_duration_seconds",
			Help:    "How long reconciles took, by fleet and result.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900}},
			[]string{"fleet", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "molt_last_successful_reconcile_timestamp_seconds",
			Help: "When the fleet's last reconcile without error or failed rollout ended (Unix seconds; 0: none yet)."}, fleet),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molt_rollouts_total",
			Help: "Rollouts ended, by fleet, service, strategy and result (converged, rolled_back, aborted, superseded)."},
			[]string{"fleet", "service", "strategy", "result"}),
		rolloutDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "molt_rollout_duration_seconds",
			Help:    "How long rollouts took, from the first pass towards a new generation to their end, by fleet, service, strategy and result.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600}},
			[]string{"fleet", "service", "strategy", "result"}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "molt_instances",
			Help: "Instances as the last pass observed them, by fleet, service, generation (short spec hash) and health (healthy, unhealthy, unknown, dead)."},
			[]string{"fleet", "service", "generation", "health"}),
		revisionInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "molt_revision_info",
			Help: "The revision of each service, by role: desired (the one being rolled out or kept) and live (the one in traffic). Always 1."},
			[]string{"fleet", "service", "revision", "role"}),
		provisioned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molt_instances_provisioned_total",
			Help: "Instances provisioned, by fleet and service (counted when a pass observes them)."}, []string{"fleet", "service"}),
		retired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "molt_instances_retired_total",
			Help: "Instances retired, by fleet and service (counted when a pass no longer observes them)."}, []string{"fleet", "service"}),
		fetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "molt_fetch_duration_seconds",
			Help: "How long fetches of the repository took (failed ones included).", Buckets: prometheus.DefBuckets}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "molt_fetch_errors_total",
			Help: "Fetches of the repository that failed."}),
		fleets:   map[string]*fleetMetrics{},
		observed: map[string][]reconciler.Observed{},
	}
	v := buildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "molt_build_info",
		Help:        "molt's version, the Go release it was built with and the CUE version it evaluates with. Always 1.",
		ConstLabels: prometheus.Labels{"version": v.Version, "goversion": v.Go, "cue": v.CUE}})
	build.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build,
		m.reconciles, m.reconcileDuration, m.lastSuccess, m.rollouts, m.rolloutDuration, m.instances, m.revisionInfo,
		m.provisioned, m.retired, m.fetchDuration, m.fetchErrors)
	return m
}

// fetched records one fetch of the repository.
func (m *serveMetrics) fetched(took time.Duration, err error) {
	m.fetchDuration.Observe(took.Seconds())
	if err != nil {
		m.fetchErrors.Inc()
	}
	if m.onFetch != nil {
		m.onFetch(time.Now(), err)
	}
}

// fleetLocked returns the fleet's record, initialising its reconcile
// series at zero the first time.
func (m *serveMetrics) fleetLocked(name string) *fleetMetrics {
	fm, ok := m.fleets[name]
	if !ok {
		fm = &fleetMetrics{services: map[string]*serviceMetrics{}}
		m.fleets[name] = fm
		for _, r := range reconcileResults {
			m.reconciles.WithLabelValues(name, r)
			m.reconcileDuration.WithLabelValues(name, r)
		}
		m.lastSuccess.WithLabelValues(name)
	}
	return fm
}

// onObserve keeps the instances a pass observed for its plan (see
// onPass), and counts the instances provisioned and retired since the
// last observation.
func (m *serveMetrics) onObserve(fleet string, instances []reconciler.Observed) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fm := m.fleetLocked(fleet)
	now := make(map[string]string, len(instances))
	for _, o := range instances {
		now[o.ID] = o.Labels.Service
	}
	if fm.seen != nil {
		for id, svc := range now {
			if _, ok := fm.seen[id]; !ok {
				m.provisioned.WithLabelValues(fleet, svc).Inc()
			}
		}
		for id, svc := range fm.seen {
			if _, ok := now[id]; !ok {
				m.retired.WithLabelValues(fleet, svc).Inc()
			}
		}
	}
	fm.seen = now
	m.observed[fleet] = slices.Clone(instances)
}

// onPass sets the gauges from a pass's plan and the instances it
// observed, and starts and ends rollouts.
func (m *serveMetrics) onPass(p reconciler.Plan) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fm := m.fleetLocked(p.Fleet)
	obs := m.observed[p.Fleet]
	delete(m.observed, p.Fleet)

	// count[service][generation][health]
	count := map[string]map[string]map[string]int{}
	add := func(svc, gen, health string, n int) {
		if gen == "" {
			return
		}
		if count[svc] == nil {
			count[svc] = map[string]map[string]int{}
		}
		if count[svc][gen] == nil {
			count[svc][gen] = map[string]int{}
		}
		count[svc][gen][health] += n
	}
	for _, o := range obs {
		add(o.Labels.Service, shortHash(o.Labels.SpecHash), healthOf(o), 1)
	}
	planned := map[string]bool{}
	for i := range p.Services {
		sp := &p.Services[i]
		planned[sp.Service] = true
		// The generations of the plan are listed even without instances.
		add(sp.Service, shortHash(sp.From), "healthy", 0)
		add(sp.Service, shortHash(sp.To), "healthy", 0)
		sm := m.serviceLocked(p.Fleet, fm, sp.Service)
		if s := string(sp.Strategy); s != "" && s != sm.strategy {
			sm.strategy = s
			for _, r := range rolloutResults {
				m.rollouts.WithLabelValues(p.Fleet, sp.Service, s, r)
				m.rolloutDuration.WithLabelValues(p.Fleet, sp.Service, s, r)
			}
		}
		m.setRevisionLocked(p.Fleet, sp.Service, sm, "desired", sp.ToRevision)
		m.setRevisionLocked(p.Fleet, sp.Service, sm, "live", sp.FromRevision)
		m.rolloutLocked(p.Fleet, sp, sm)
	}
	// Services with instances but out of the plan (being pruned) are
	// counted too; those with neither lose their series.
	for svc := range count {
		m.serviceLocked(p.Fleet, fm, svc)
	}
	for svc, sm := range fm.services {
		gens := count[svc]
		for gen := range sm.generations {
			if _, ok := gens[gen]; !ok {
				for _, h := range healthValues {
					m.instances.DeleteLabelValues(p.Fleet, svc, gen, h)
				}
				delete(sm.generations, gen)
			}
		}
		for gen, byHealth := range gens {
			sm.generations[gen] = true
			for _, h := range healthValues {
				m.instances.WithLabelValues(p.Fleet, svc, gen, h).Set(float64(byHealth[h]))
			}
		}
		if !planned[svc] {
			for _, role := range revisionRoles {
				m.setRevisionLocked(p.Fleet, svc, sm, role, "")
			}
			if len(gens) == 0 {
				delete(fm.services, svc)
			}
		}
	}
}

// serviceLocked returns the service's record, initialising its
// instance counters at zero the first time.
func (m *serveMetrics) serviceLocked(fleet string, fm *fleetMetrics, name string) *serviceMetrics {
	sm := fm.services[name]
	if sm == nil {
		sm = &serviceMetrics{generations: map[string]bool{}, revisions: map[string]string{}}
		fm.services[name] = sm
		m.provisioned.WithLabelValues(fleet, name)
		m.retired.WithLabelValues(fleet, name)
	}
	return sm
}

// setRevisionLocked makes rev the service's one revision of role ("":
// none), removing the series of the one before.
func (m *serveMetrics) setRevisionLocked(fleet, service string, sm *serviceMetrics, role, rev string) {
	old, had := sm.revisions[role]
	if had && old == rev {
		return
	}
	if had {
		m.revisionInfo.DeleteLabelValues(fleet, service, old, role)
		delete(sm.revisions, role)
	}
	if rev != "" {
		m.revisionInfo.WithLabelValues(fleet, service, rev, role).Set(1)
		sm.revisions[role] = rev
	}
}

// rolloutLocked follows a service's rollout: it starts at the first pass
// that moves the service towards a new generation, and ends when the
// service converges on it, its rollout fails (rolled back or aborted), or
// a newer generation supersedes it. A rollback is not a rollout.
func (m *serveMetrics) rolloutLocked(fleet string, sp *reconciler.ServicePlan, sm *serviceMetrics) {
	if r := sm.rollout; r != nil {
		result := ""
		switch {
		case sp.Failed != "" && strings.HasPrefix(sp.Failed, "aborted"):
			result = "aborted"
		case sp.Failed != "":
			result = "rolled_back"
		case sp.Rollback:
			result = "rolled_back" // failed in an Apply that this process did not see
		case sp.To != r.to:
			result = "superseded"
		case sp.Converged():
			result = "converged"
		}
		if result == "" {
			return
		}
		m.rollouts.WithLabelValues(fleet, sp.Service, r.strategy, result).Inc()
		m.rolloutDuration.WithLabelValues(fleet, sp.Service, r.strategy, result).Observe(m.now().Sub(r.started).Seconds())
		sm.rollout = nil
		if result != "superseded" {
			return
		}
	}
	if sp.To == "" || sp.To == sp.From || sp.Rollback || sp.Failed != "" || sp.Converged() || !sp.Deferred.IsZero() {
		return
	}
	sm.rollout = &rolloutRun{to: sp.To, strategy: string(sp.Strategy), started: m.now()}
}

// healthOf is an instance's health label.
func healthOf(o reconciler.Observed) string {
	if o.State == targets.Dead {
		return "dead"
	}
	return o.Health.String()
}

// shortHash is a spec hash as a generation label (and as the logs print
// it).
func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// reconcileResult names how a reconcile ended, for molt_reconciles_total
// and the status (one of reconcileResults).
func reconcileResult(o reconciler.Outcome) string {
	switch {
	case o.Err != nil:
		return "error"
	case len(o.Result.Failures) > 0:
		return "failed"
	case o.Result.Preempted:
		return "preempted"
	case len(o.Result.Degraded) > 0:
		return "degraded"
	case len(o.Result.Held) > 0:
		// The desired revision failed before (maybe before a restart of
		// molt): its services serve their rollback. Not "converged".
		return "held"
	case len(o.Result.Paused) > 0:
		return "paused"
	case !o.Result.Deferred.IsZero():
		return "deferred"
	case !o.Result.Converged:
		return "idle"
	}
	return "converged"
}

// observe records the end of a reconcile, and logs what it did.
func (m *serveMetrics) observe(o reconciler.Outcome, log *slog.Logger) {
	result := reconcileResult(o)
	m.mu.Lock()
	fleet := o.Fleet
	if fleet == "" {
		fleet = m.lastName // a fetch that failed names no fleet
	} else {
		m.lastName = fleet
	}
	m.fleetLocked(fleet)
	m.mu.Unlock()
	m.reconciles.WithLabelValues(fleet, result).Inc()
	m.reconcileDuration.WithLabelValues(fleet, result).Observe(o.Finished.Sub(o.Started).Seconds())
	if o.Err == nil && len(o.Result.Failures) == 0 {
		m.lastSuccess.WithLabelValues(fleet).Set(float64(o.Finished.UnixNano()) / 1e9)
	}
	for _, sp := range o.Result.Degraded {
		log.Warn("service degraded", "fleet", o.Fleet, "service", sp.Service, "revision", o.Revision, "reason", sp.DegradedReason,
			"healthy", sp.Healthy, "replicas", sp.Replicas, "detail", sp.Degraded)
	}
	// A reconcile that changed nothing is logged at debug level only.
	level := slog.LevelDebug
	if o.Result.Provisioned+o.Result.Retired > 0 || len(o.Result.Failures) > 0 {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, "reconciled", "reason", o.Reason, "revision", o.Revision, "result", result,
		"provisioned", o.Result.Provisioned, "retired", o.Result.Retired, "took", o.Finished.Sub(o.Started).Round(time.Millisecond), "fleet", o.Fleet)
}

// webhookCounts exports a receiver's delivery counts by event and
// outcome: molt_webhook_deliveries_total{hook,event,outcome}.
func (m *serveMetrics) webhookCounts(hook string, counts func() map[string]github.Counts) {
	m.reg.MustRegister(&webhookCollector{hook: hook, counts: counts, desc: prometheus.NewDesc("molt_webhook_deliveries_total",
		"Webhook deliveries by hook, event (ping, push, pull_request, issue_comment, other: any other, or refused before its signature was verified) and outcome.",
		[]string{"hook", "event", "outcome"}, nil)})
}

type webhookCollector struct {
	hook   string
	counts func() map[string]github.Counts
	desc   *prometheus.Desc
}

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	for event, n := range c.counts() {
		for outcome, v := range map[string]int64{"accepted": n.Accepted, "ignored": n.Ignored, "bad_signature": n.BadSignature,
			"too_large": n.TooLarge, "malformed": n.Malformed, "duplicate": n.Duplicate} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), c.hook, event, outcome)
		}
	}
}

// githubQueue exports what the queue of GitHub reports did.
func (m *serveMetrics) githubQueue(q *github.Queue) {
	m.reg.MustRegister(&queueCollector{q: q,
		reports: prometheus.NewDesc("molt_github_reports_total",
			"GitHub reports (statuses, comments) by result: enqueued, delivered, superseded (by a newer one of the same slot), duplicate, retried (a failed attempt), rate_limited (an attempt held back), dropped.",
			[]string{"result"}, nil),
		dropped: prometheus.NewDesc("molt_github_reports_dropped_total",
			"GitHub reports given up, by reason: attempts, age, rejected (4xx or invalid), overflow (past the queue's bound).",
			[]string{"reason"}, nil),
		pending: prometheus.NewDesc("molt_github_reports_pending", "GitHub reports waiting in the queue.", nil, nil),
		saveErr: prometheus.NewDesc("molt_github_queue_save_errors_total", "Failed writes of the queue's file.", nil, nil),
	})
}

type queueCollector struct {
	q                                  *github.Queue
	reports, dropped, pending, saveErr *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reports
	ch <- c.dropped
	ch <- c.pending
	ch <- c.saveErr
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.q.Counts()
	for result, v := range map[string]int64{"enqueued": n.Enqueued, "delivered": n.Delivered, "superseded": n.Superseded,
		"duplicate": n.Duplicate, "retried": n.Retried, "rate_limited": n.Limited, "dropped": n.Dropped} {
		ch <- prometheus.MustNewConstMetric(c.reports, prometheus.CounterValue, float64(v), result)
	}
	for reason, v := range map[string]int64{"attempts": n.DroppedAttempts, "age": n.DroppedAge,
		"rejected": n.DroppedRejected, "overflow": n.DroppedOverflow} {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n.Pending))
	ch <- prometheus.MustNewConstMetric(c.saveErr, prometheus.CounterValue, float64(n.SaveErrors))
}

// routerStats is what the router metrics read: the router's counters
// since it started, of every fleet it serves.
type routerStats interface {
	Fleets(ctx context.Context) ([]string, error)
	Stats(ctx context.Context, fleet string) (router.FleetStats, error)
}

var _ routerStats = (*router.Client)(nil)

// routerCounts exports the router's counters, read from it on every
// scrape: the router process serves no metrics itself, so there is one
// address to scrape. They count from the router's start (a restarted
// router starts again from zero, which Prometheus takes as a reset).
func (m *serveMetrics) routerCounts(r routerStats) {
	m.reg.MustRegister(&routerCollector{r: r,
		up: prometheus.NewDesc("molt_router_up", "Whether the router answered the last scrape (1) or not (0).", nil, nil),
		requests: prometheus.NewDesc("molt_router_requests_total",
			"Requests the router sent to instances, by fleet, service, generation (short spec hash) and status class (2xx, 3xx, 4xx, 5xx, error: no response). A retried request counts once per attempt.",
			[]string{"fleet", "service", "generation", "class"}, nil),
		latency: prometheus.NewDesc("molt_router_request_duration_seconds",
			"How long instances took to answer the router's requests, by fleet, service and generation.",
			[]string{"fleet", "service", "generation"}, nil),
		noInstance: prometheus.NewDesc("molt_router_no_instance_total",
			"Requests answered 503 because the service had no instance in its route, by fleet and service.",
			[]string{"fleet", "service"}, nil),
	})
}

type routerCollector struct {
	r                                 routerStats
	up, requests, latency, noInstance *prometheus.Desc
}

func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.requests
	ch <- c.latency
	ch <- c.noInstance
}

func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, fleet := range slices.Sorted(maps.Keys(stats)) {
		for service, ss := range stats[fleet].Services {
			ch <- prometheus.MustNewConstMetric(c.noInstance, prometheus.CounterValue, float64(ss.NoInstance), fleet, service)
			for gen, n := range byShortHash(ss.Generations) {
				for class, v := range map[string]int64{"2xx": n.Status2xx, "3xx": n.Status3xx, "4xx": n.Status4xx,
					"5xx": n.Status5xx, "error": n.ProxyErrors} {
					ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(v), fleet, service, gen, class)
				}
				buckets, total := cumulative(n.Latency)
				ch <- prometheus.MustNewConstHistogram(c.latency, total, n.LatencySum.Seconds(), buckets, fleet, service, gen)
			}
		}
	}
}

func (c *routerCollector) read(ctx context.Context) (map[string]router.FleetStats, error) {
	fleets, err := c.r.Fleets(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]router.FleetStats{}
	for _, f := range fleets {
		s, err := c.r.Stats(ctx, f)
		if err != nil {
			return nil, err
		}
		out[f] = s
	}
	return out, nil
}

// byShortHash sums the counters of the generations by short spec hash
// (two hashes that share one would otherwise make two equal series).
func byShortHash(gens map[string]router.Counts) map[string]router.Counts {
	out := make(map[string]router.Counts, len(gens))
	for gen, n := range gens {
		s := shortHash(gen)
		t, ok := out[s]
		if !ok {
			out[s] = n
			continue
		}
		t.Requests += n.Requests
		t.Status2xx += n.Status2xx
		t.Status3xx += n.Status3xx
		t.Status4xx += n.Status4xx
		t.Status5xx += n.Status5xx
		t.ProxyErrors += n.ProxyErrors
		t.LatencySum += n.LatencySum
		if len(t.Latency.Counts) == len(n.Latency.Counts) {
			sum := slices.Clone(t.Latency.Counts)
			for i, v := range n.Latency.Counts {
				sum[i] += v
			}
			t.Latency.Counts = sum
		}
		out[s] = t
	}
	return out
}

// cumulative turns a histogram's bucket counts into Prometheus's
// cumulative buckets (upper bound in seconds: count at or below it) and
// the total count.
func cumulative(h targets.Histogram) (map[float64]uint64, uint64) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var total uint64
	for i, n := range h.Counts {
		total += uint64(n)
		if i < len(h.Bounds) {
			buckets[h.Bounds[i].Seconds()] = total
		}
	}
	if len(h.Bounds) == 0 {
		for _, b := range router.LatencyBounds() {
			buckets[b.Seconds()] = 0
		}
	}
	return buckets, total
}
