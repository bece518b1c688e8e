package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/crash"
)

// Front is what the reconciler needs of whatever carries traffic to a
// service's instances (the built-in router, HAProxy). Every call is scoped
// to one fleet: a fleet never reads or changes another's routes.
type Front interface {
	// Routes returns the fleet's routes (none for an unknown fleet).
	Routes(ctx context.Context, fleet string) ([]targets.Route, error)
	// SetRoutes replaces every route of the fleet with routes, atomically;
	// it returns once they are in effect.
	SetRoutes(ctx context.Context, fleet string, routes []targets.Route) error
	// Drain waits until no request is in flight to the addresses, which are
	// out of every route already.
	Drain(ctx context.Context, addrs []string) error
}

// countSlot is the longest slot a front counts in (the built-in router's
// is 5 s): counts asked from a time may begin up to that much earlier.
const countSlot = 5 * time.Second

// Counter is implemented by fronts that count each generation's traffic
// (the built-in router does): the counts of a fleet's requests from since
// until now, by service then generation, and the start of the window they
// actually cover (later than since when the front kept less history, after
// its own restart for instance). Canary and verification decisions read
// them.
type Counter interface {
	Counts(ctx context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error)
}

// SpecSource returns the fleet as it was at a revision, so that a rollback
// can provision more instances of the last good generation.
type SpecSource func(ctx context.Context, revision string) (*schema.Fleet, error)

// Executor carries plans out against a target and a front, one step at a
// time, planning again after every step. It keeps no state between calls
// that it cannot rebuild from the live fleet, the front's routes and the
// revision record.
type Executor struct {
	Target    targets.Target
	Front     Front
	Prober    *Prober
	Revisions *Revisions
	// Decisions are operators' decisions on paused rollouts (nil: none).
	Decisions *Decisions
	// Secrets reads services' secretEnv on molt's host; nil means one
	// whose key is kept beside the revision record (NewSecrets over the
	// directory of Revisions).
	Secrets *Secrets
	// Specs reads older revisions for rollbacks; nil means a rollback can
	// only retire (it holds the last good generation as it is).
	Specs  SpecSource
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tick is the longest pause between passes while waiting (default
	// 200ms): a pass comes sooner at the plan's wake, or when a probe
	// (a new instance's start cadence included) changes a verdict.
	Tick time.Duration
	// OnPass, when set, is called with every plan before it is carried out.
	OnPass func(Plan)
	// OnObserve, when set, is called with the fleet's instances as each
	// pass of Apply observed them, just before OnPass with that pass's
	// plan. It must not keep or change the slice.
	OnObserve func(fleet string, instances []Observed)
	// Preempt, when set, is asked after every step; true makes Apply
	// return (Result.Preempted) so that a newer revision can be taken up.
	// The step in progress is always finished first.
	Preempt func() bool
	// ProvisionTimeout bounds each Provision call (default
	// DefaultProvisionTimeout): one that has not returned by then is
	// abandoned as a transient error and retried with backoff, so that a
	// target stuck in one call does not hold up the whole reconcile.
	ProvisionTimeout time.Duration
}

// DefaultProvisionTimeout is the Executor's ProvisionTimeout when unset:
// longer than any target's own bound on a create (the docker target's is
// 60s by default), shorter than a reconcile's.
const DefaultProvisionTimeout = 5 * time.Minute

// Result is the outcome of Apply.
type Result struct {
	Plan      Plan // the last plan
	Converged bool
	Preempted bool      // stopped between steps for a newer trigger
	Deferred  time.Time // a rollout waits for a deploy window until then
	Failures  []Failure // rollouts that failed (and were rolled back) in this Apply
	// Held are the recorded failures that hold services on their rollback
	// when Apply returns, of this Apply or an earlier one, by service.
	Held []Failure
	// Judgements are the canary and verification decisions made, by
	// service, with their figures.
	Judgements map[string]Judgement
	// Degraded are the services left with fewer healthy instances than
	// they want, or kept on their last good generation because the
	// revision cannot be rolled out, each with why.
	Degraded []ServicePlan
	// Paused are the services whose rollout waits for `molt promote`.
	Paused      []ServicePlan
	Provisioned int
	Retired     int
	// PerService counts what happened to each service.
	PerService map[string]Counts
	Duration   time.Duration
}

// Counts are the instances provisioned and retired for one service.
type Counts struct {
	Provisioned int
	Retired     int
}

func (r *Result) count(service string, provisioned, retired int) {
	if r.PerService == nil {
		r.PerService = map[string]Counts{}
	}
	c := r.PerService[service]
	c.Provisioned += provisioned
	c.Retired += retired
	r.PerService[service] = c
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) secrets() *Secrets {
	if e.Secrets != nil {
		return e.Secrets
	}
	return NewSecrets(e.Revisions.dir(), e.logger())
}

func (e *Executor) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// fleetInstances lists the instances of fleet on the target.
func (e *Executor) fleetInstances(ctx context.Context, fleet string) ([]targets.Instance, error) {
	all, err := e.Target.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var mine []targets.Instance
	for _, in := range all {
		if in.Labels.Fleet == fleet {
			mine = append(mine, in)
		}
	}
	return mine, nil
}

// probe runs the checks of fleet's services that are due on insts and
// returns every instance with its verdicts.
func (e *Executor) probe(ctx context.Context, fleet *schema.Fleet, insts []targets.Instance) []Observed {
	return e.Prober.Observe(ctx, e.now(), insts, func(name string) *schema.Service { return fleet.Services[name] })
}

// Observe reads the live state of the fleet: its instances with their
// health, and its routes at the front.
// With a drift map, it also asks the target (when it can tell) whether each
// running instance still is as it was made, once per instance: the verdicts
// are kept in the map (an instance never drifts back), since asking costs
// more than listing.
func (e *Executor) Observe(ctx context.Context, fleet *schema.Fleet, drift map[string]string) ([]Observed, []targets.Route, error) {
	mine, err := e.fleetInstances(ctx, fleet.Name)
	if err != nil {
		return nil, nil, err
	}
	routes, err := e.Front.Routes(ctx, fleet.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("read routes: %w", err)
	}
	obs := e.probe(ctx, fleet, mine)
	if d, ok := e.Target.(targets.DriftInspector); ok && drift != nil {
		for i := range obs {
			what, seen := drift[obs[i].ID]
			if !seen && obs[i].State == targets.Running {
				var err error
				if what, err = d.Drift(ctx, obs[i].Instance); err != nil {
					e.logger().Warn("drift inspection failed", "fleet", fleet.Name, "service", obs[i].Labels.Service,
						"revision", obs[i].Labels.Revision, "instance", obs[i].ID, "error", err)
					continue
				}
				drift[obs[i].ID] = what
			}
			obs[i].Drift = what
		}
	}
	return obs, routes, nil
}

// Plan observes the live fleet and plans the fleet at revision against it,
// changing nothing. It is the first pass of Apply, so what it returns is
// what Apply would do first.
//
// A one-off plan sees each instance's health only once, where apply sees
// it pass after pass. With an Eager prober, Plan probes again (a few
// rounds, 50ms apart) while some running instance past its start grace
// has no verdict yet, so that its plan has the verdicts apply would act
// on: an instance apply would find unhealthy is unhealthy in the plan too.
func (e *Executor) Plan(ctx context.Context, fleet *schema.Fleet, revision string) (Plan, error) {
	st := newApplyState()
	if e.Prober.Eager {
		for round := 0; round < settleRounds(fleet); round++ {
			obs, _, err := e.Observe(ctx, fleet, st.drift)
			if err != nil {
				return Plan{}, err
			}
			if settled(obs, fleet, e.now()) {
				break
			}
			select {
			case <-ctx.Done():
				return Plan{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	p, _, err := e.pass(ctx, fleet, revision, st)
	return p, err
}

// settleRounds is how many probe rounds can take an instance from no
// verdict to one: the largest threshold of the fleet's checks.
func settleRounds(fleet *schema.Fleet) int {
	n := 1
	for _, svc := range fleet.Services {
		n = max(n, svc.Health.HealthyThreshold, svc.Health.UnhealthyThreshold)
	}
	return min(n, 10)
}

// settled reports whether every running instance past its start grace has
// a verdict.
func settled(obs []Observed, fleet *schema.Fleet, now time.Time) bool {
	for _, o := range obs {
		svc := fleet.Services[o.Labels.Service]
		if o.State != targets.Running || o.Health != HealthUnknown || svc == nil {
			continue
		}
		if now.After(o.Labels.CreatedAt.Add(svc.Health.Grace)) {
			return false
		}
	}
	return true
}

// pass observes and plans once.
func (e *Executor) pass(ctx context.Context, fleet *schema.Fleet, revision string, st *applyState) (Plan, Input, error) {
	obs, routes, err := e.Observe(ctx, fleet, st.drift)
	if err != nil {
		return Plan{}, Input{}, err
	}
	traffic := TrafficOf(routes)
	desired, err := e.desired(ctx, fleet, revision, traffic, obs, st)
	if err != nil {
		return Plan{}, Input{}, err
	}
	var decisions map[string]Decision
	if e.Decisions != nil {
		if decisions, err = e.Decisions.For(fleet.Name); err != nil {
			return Plan{}, Input{}, err
		}
	}
	in := Input{Fleet: fleet.Name, Revision: revision, Desired: desired, Instances: obs, Traffic: traffic, Decisions: decisions,
		Routes: routesByService(routes), DeployWindows: fleet.DeployWindows,
		Stalled: maps.Clone(st.stalled), Backoff: st.backoffs(), Counts: e.counts(ctx, fleet.Name, traffic), Now: e.now()}
	if r, ok := e.Target.(EngineReporter); ok {
		in.Engines = r.Engines() // as the List of Observe saw them
	}
	return PlanFleet(in), in, nil
}

// counts reads, from the front when it counts, the traffic of each service
// whose canary or verification window is open, over that window.
func (e *Executor) counts(ctx context.Context, fleet string, traffic map[string]Traffic) map[string]map[string]targets.Counts {
	c, ok := e.Front.(Counter)
	if !ok {
		return nil
	}
	out := map[string]map[string]targets.Counts{}
	bySince := map[time.Time]map[string]map[string]targets.Counts{}
	for name, tr := range traffic {
		var since time.Time
		switch {
		case tr.Canary != nil && tr.Canary.Verdict == "":
			since = tr.Canary.Since
		case tr.Verify != nil:
			// Counted from the first slot wholly inside the window, so
			// that traffic the generation had before (a rolling rollout
			// routes it early) does not dilute the window's error rate.
			since = tr.Verify.Since.Add(countSlot)
			if e.now().Before(since) {
				continue
			}
		default:
			continue
		}
		m, ok := bySince[since]
		if !ok {
			var from time.Time
			var err error
			m, from, err = c.Counts(ctx, fleet, since)
			if err != nil {
				e.logger().Warn("cannot read traffic counts; judging without them", "fleet", fleet, "error", err)
				continue
			}
			if from.After(since.Add(10 * time.Second)) {
				e.logger().Warn("the front kept less history than the window", "fleet", fleet, "service", name, "since", since, "from", from)
			}
			bySince[since] = m
		}
		out[name] = m[name]
	}
	return out
}

// Apply converges the fleet to the desired state of revision: it plans,
// carries out one step, observes again and repeats until every service is
// settled (converged, degraded, or waiting for a deploy window), ctx is
// done, or an error that a retry cannot fix occurs. A rollout that fails
// is recorded and rolled back; Apply then still returns a nil error, with
// the failure in Result.Failures. Provision errors are handled by class:
// an invalid spec fails a rollout of a new generation and stalls a
// self-heal (the service is reported degraded); any other error is retried
// with jittered backoff and never fails the revision.
//
// Cancelling ctx stops between steps; instances already provisioned are
// left running (the next Apply picks them up).
func (e *Executor) Apply(ctx context.Context, fleet *schema.Fleet, revision string) (Result, error) {
	start := e.now()
	var res Result
	log := e.logger().With("fleet", fleet.Name, "revision", revision)
	tick := e.Tick
	if tick <= 0 {
		tick = 200 * time.Millisecond
	}
	st := newApplyState()
	for pass := 0; ; pass++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("apply: %w", err)
		}
		if pass > 0 && e.Preempt != nil && e.Preempt() {
			res.Preempted = true
			res.Duration = e.now().Sub(start)
			return res, nil
		}
		plan, in, err := e.pass(ctx, fleet, revision, st)
		if err != nil {
			return res, err
		}
		select {
		case <-e.Prober.Changed(): // this pass's own verdicts: planned on already
		default:
		}
		if why := st.own.stale(in.Instances); why != "" {
			// The list is behind this Apply's own steps (a cache that has
			// not caught up): a step planned on it could provision twice
			// or route to a retired instance. Observe again.
			log.Warn("the target lists instances as they were before the last step; observing again", "detail", why)
			select {
			case <-ctx.Done():
				return res, fmt.Errorf("waiting for the target's list to catch up: %w", ctx.Err())
			case <-time.After(tick):
			}
			continue
		}
		res.Plan = plan
		if e.OnObserve != nil {
			e.OnObserve(fleet.Name, in.Instances)
		}
		if e.OnPass != nil {
			e.OnPass(plan)
		}
		for _, sp := range plan.Services {
			if sp.Judgement != nil {
				if res.Judgements == nil {
					res.Judgements = map[string]Judgement{}
				}
				res.Judgements[sp.Service] = *sp.Judgement
				log.Info("judged", "service", sp.Service, "verdict", sp.Judgement.Verdict, "finding", sp.Judgement.Finding,
					"requests", sp.Judgement.Requests, "errorRate", sp.Judgement.ErrorRate, "p99", sp.Judgement.P99, "message", sp.Judgement.Message)
			}
		}
		if err := e.recordGood(fleet.Name, revision, plan, in.Desired, st); err != nil {
			return res, err
		}
		if err := e.dropDecisions(fleet.Name, plan, in); err != nil {
			return res, err
		}
		if plan.Settled() {
			res.Held = held(plan, in, st)
			res.Converged = plan.Converged()
			res.Degraded = plan.Degraded()
			res.Paused = plan.Paused()
			res.Deferred, _ = plan.Deferred()
			res.Duration = e.now().Sub(start)
			return res, nil
		}
		failed := false
		for _, sp := range plan.Services {
			if sp.Failed == "" {
				continue
			}
			fl := Failure{Fleet: fleet.Name, Service: sp.Service, Revision: revision, Hash: sp.To, Reason: sp.Failed, At: e.now()}
			log.Error("rollout failed; rolling back", "service", sp.Service, "reason", sp.Failed)
			crash.At("failure.before-record")
			if err := e.Revisions.RecordFailure(fl); err != nil {
				return res, err
			}
			crash.At("failure.after-record")
			res.Failures = append(res.Failures, fl)
			failed = true
		}
		if failed {
			st.failures = nil
			continue // plan again: the failed services now roll back
		}
		acted, err := e.step(ctx, fleet, plan, in, st, &res)
		if err != nil {
			return res, err
		}
		if !acted {
			if err := e.wait(ctx, fleet, plan, in, tick); err != nil {
				return res, err
			}
		}
	}
}

// wait pauses after a pass that changed nothing: until the plan's wake, the
// tick at most, or sooner when a probe changes a verdict (Prober.Changed).
// Checks that fall due meanwhile (a new instance's start cadence) are
// probed here, on the instances as the pass saw them, so that a verdict
// starts a pass within a probe of it rather than a tick later.
func (e *Executor) wait(ctx context.Context, fleet *schema.Fleet, plan Plan, in Input, tick time.Duration) error {
	budget := tick
	if w := plan.Wake(); !w.IsZero() && w.Sub(e.now()) < budget {
		budget = max(w.Sub(e.now()), time.Millisecond)
	}
	var insts []targets.Instance
	spec := func(name string) *schema.Service { return fleet.Services[name] }
	for budget > 0 { // bounded by the budget, whatever the clock says
		d, probe := budget, false
		if n := e.Prober.Next(); !n.IsZero() && n.Sub(e.now()) < d {
			d, probe = max(n.Sub(e.now()), time.Millisecond), true
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for %s: %w", waitingFor(plan), ctx.Err())
		case <-e.Prober.Changed():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		budget -= d
		if !probe {
			return nil
		}
		if insts == nil {
			insts = make([]targets.Instance, len(in.Instances))
			for i, o := range in.Instances {
				insts[i] = o.Instance
			}
		}
		e.Prober.Observe(ctx, e.now(), insts, spec)
		select {
		case <-e.Prober.Changed():
			return nil
		default:
		}
	}
	return nil
}

// held lists the recorded failures of the services the plan rolls back.
func held(plan Plan, in Input, st *applyState) []Failure {
	var out []Failure
	for _, sp := range plan.Services {
		if f, ok := st.failures[sp.Service]; ok && in.Desired[sp.Service].Rollback {
			out = append(out, f)
		}
	}
	return out
}

// dropDecisions forgets the decisions about rollouts that have ended: the
// service converged, or its rollout failed (an abort included).
func (e *Executor) dropDecisions(fleet string, plan Plan, in Input) error {
	if e.Decisions == nil {
		return nil
	}
	for _, sp := range plan.Services {
		if _, ok := in.Decisions[sp.Service]; ok && (sp.Converged() || sp.Failed != "") {
			if err := e.Decisions.Drop(fleet, sp.Service); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordGood records, for every service that converged at revision, that
// revision with its generation and replica count: what a later rollback
// returns to.
func (e *Executor) recordGood(fleet, revision string, plan Plan, desired map[string]Desired, st *applyState) error {
	for _, sp := range plan.Services {
		d, ok := desired[sp.Service]
		if !ok || !sp.Converged() || d.Spec == nil || d.Rollback || d.Revision != revision || d.Stalled != "" {
			continue
		}
		g := Good{Revision: revision, Hash: d.Hash, Replicas: d.Spec.Replicas, Resolved: d.Resolved, At: e.now().UTC()}
		if old, ok := st.good[sp.Service]; ok && old.Revision == g.Revision && old.Hash == g.Hash && old.Replicas == g.Replicas {
			continue
		}
		if err := e.Revisions.RecordGood(fleet, sp.Service, g); err != nil {
			return err
		}
		if st.good == nil {
			st.good = map[string]Good{}
		}
		st.good[sp.Service] = g
	}
	return nil
}

func waitingFor(p Plan) string {
	var parts []string
	for _, sp := range p.Services {
		if sp.Waiting != "" {
			parts = append(parts, sp.Service+": "+sp.Waiting)
		}
	}
	if len(parts) == 0 {
		return "convergence"
	}
	return strings.Join(parts, "; ")
}

// step carries out the first step of every service: routes, drains,
// retires, provisions. It reports whether it changed anything.
func (e *Executor) step(ctx context.Context, fleet *schema.Fleet, plan Plan, in Input, st *applyState, res *Result) (bool, error) {
	log := e.logger().With("fleet", fleet.Name)
	byID := map[string]Observed{}
	for _, o := range in.Instances {
		byID[o.ID] = o
	}
	acted := false

	// 1. Traffic: one atomic change of the fleet's routes.
	routes := maps.Clone(in.Routes)
	if routes == nil {
		routes = map[string]targets.Route{}
	}
	changed := false
	for _, sp := range plan.Services {
		if sp.Route == nil {
			continue
		}
		changed = true
		if emptyRoute(*sp.Route) {
			delete(routes, sp.Service)
		} else {
			routes[sp.Service] = *sp.Route
		}
	}
	if changed {
		list := make([]targets.Route, 0, len(routes))
		for _, name := range slices.Sorted(maps.Keys(routes)) {
			list = append(list, routes[name])
		}
		crash.At("route.before-switch")
		if err := e.Front.SetRoutes(ctx, fleet.Name, list); err != nil {
			return false, fmt.Errorf("set routes: %w", err)
		}
		crash.At("route.after-switch")
		acted = true
	}

	// 2. Drain what left traffic, then retire.
	var drain []string
	var retire []Retire
	for _, sp := range plan.Services {
		for _, r := range sp.Step.Retire {
			retire = append(retire, r)
			if !r.Drain {
				continue
			}
			for _, addr := range byID[r.Instance].Endpoints {
				drain = append(drain, addr)
			}
		}
	}
	if len(drain) > 0 {
		crash.At("drain.before")
		if err := e.Front.Drain(ctx, drain); err != nil {
			log.Warn("drain incomplete; retiring anyway", "revision", plan.Revision, "error", err)
		}
	}
	errs := parallel(ctx, len(retire), func(ctx context.Context, i int) error {
		r := retire[i]
		o := byID[r.Instance]
		log.Info("retire", "service", o.Labels.Service, "revision", o.Labels.Revision, "instance", r.Instance, "generation", short(r.SpecHash),
			"reason", r.Reason, "detail", r.Detail)
		if err := e.Target.Retire(ctx, r.Instance); err != nil {
			return fmt.Errorf("retire %s: %w", r.Instance, err)
		}
		return nil
	})
	var failed map[string]bool
	for i, err := range errs {
		if err == nil {
			continue
		}
		if ctx.Err() != nil || Classify(err) != Transient {
			return acted, err
		}
		// An engine that stopped answering since the List: the instance
		// is lost, not retired; the next pass no longer lists it (or
		// retires it again once its engine answers).
		log.Warn("retire failed; trying again on a later pass", "instance", retire[i].Instance, "error", err)
		if failed == nil {
			failed = map[string]bool{}
		}
		failed[retire[i].Instance] = true
	}
	// A provision planned beside a retire that failed would go past the
	// strategy's bound of live instances: the next pass plans it again.
	blocked := map[string]bool{}
	for id := range failed {
		if o := byID[id]; o.State == targets.Running {
			blocked[o.Labels.Service] = true
		}
	}
	retire = slices.DeleteFunc(retire, func(r Retire) bool { return failed[r.Instance] })
	for _, r := range retire {
		st.own.retired(r.Instance)
	}
	res.Retired += len(retire)
	for _, r := range retire {
		svc := byID[r.Instance].Labels.Service
		res.count(svc, 0, 1)
		if r.Reason == ReasonExited && r.SpecHash == in.Desired[svc].Hash {
			// Instances of the generation being kept that keep exiting are
			// a crash loop: their replacements back off.
			if st.exits[svc]++; st.exits[svc] >= 2 {
				until := st.fail(svc, fmt.Errorf("%d instances exited (%s): crash loop", st.exits[svc], byID[r.Instance].Detail), e.now())
				log.Warn("instances keep exiting; replacements back off", "service", svc, "instance", r.Instance, "retry-at", until)
			}
		}
	}
	acted = acted || len(retire) > 0

	// 3. Provision.
	type job struct {
		service string
		d       Desired
		p       Provision
	}
	var jobs []job
	for _, sp := range plan.Services {
		if blocked[sp.Service] {
			continue
		}
		for _, p := range sp.Step.Provision {
			jobs = append(jobs, job{sp.Service, sp.Step.Of(in.Desired[sp.Service]), p})
		}
	}
	var mu sync.Mutex
	provErrs := parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		labels := targets.Labels{Fleet: fleet.Name, Service: j.service, SpecHash: j.d.Hash, Revision: j.d.Revision, CreatedAt: e.now().UTC().Truncate(time.Millisecond)}
		// The secrets are read now, and must be what the plan hashed.
		secrets, err := e.secrets().Values(j.d.Spec, j.d.Resolved)
		if err != nil {
			return fmt.Errorf("provision %s: %w", j.service, err)
		}
		pctx, cancel := context.WithTimeout(ctx, e.provisionTimeout())
		defer cancel()
		inst, err := e.Target.Provision(pctx, targets.Spec{Labels: labels, Service: j.d.Spec,
			Resolved: targetResolved(j.d.Resolved), SecretEnv: secrets, Engine: j.p.Engine})
		if err != nil {
			if ctx.Err() == nil && pctx.Err() != nil {
				return fmt.Errorf("provision %s: no answer within %s: %w", j.service, e.provisionTimeout(), err)
			}
			return err // the targets name the service
		}
		log.Info("provision", "service", j.service, "revision", j.d.Revision, "instance", inst.ID, "generation", short(j.d.Hash), "reason", j.p.Reason)
		mu.Lock()
		st.own.provisioned(inst.ID)
		res.Provisioned++
		res.count(j.service, 1, 0)
		mu.Unlock()
		return nil
	})
	handled := map[string]bool{} // one failure of a service per step: the others are the same outcome
	for i, err := range provErrs {
		j := jobs[i]
		if err == nil {
			st.succeeded(j.service)
			continue
		}
		acted = true
		if ctx.Err() != nil {
			return acted, ctx.Err()
		}
		if handled[j.service] {
			log.Warn("provision failed", "service", j.service, "revision", j.d.Revision, "error", err)
			continue
		}
		handled[j.service] = true
		if errors.Is(err, errSecretsChanged) {
			delete(st.resolved, j.service) // the next pass plans with the secrets as they are now
		}
		switch Classify(err) {
		case Stalling:
			if j.p.Rollout && !j.d.Rollback {
				fl := Failure{Fleet: fleet.Name, Service: j.service, Revision: j.d.Revision, Hash: j.d.Hash, Reason: err.Error(), At: e.now()}
				log.Error("rollout failed; rolling back", "service", j.service, "revision", j.d.Revision, "reason", fl.Reason)
				crash.At("failure.before-record")
				if rerr := e.Revisions.RecordFailure(fl); rerr != nil {
					return acted, rerr
				}
				crash.At("failure.after-record")
				res.Failures = append(res.Failures, fl)
				st.failures = nil
				continue
			}
			if st.stalled[j.service] == "" {
				log.Error("provision stalled: the service stays degraded until a new commit", "service", j.service, "revision", j.d.Revision, "error", err)
			}
			st.stalled[j.service] = err.Error()
		default:
			if r := st.retry[j.service]; r != nil && r.attempts >= maxAttempts-1 {
				// Transient errors that never pass are reported, not
				// retried without end: the next reconcile tries again.
				msg := fmt.Sprintf("provisioning failed %d times in a row: %v", maxAttempts, err)
				log.Error("provision keeps failing; giving up for this reconcile", "service", j.service, "revision", j.d.Revision, "error", err)
				st.stalled[j.service] = msg
				continue
			}
			until := st.fail(j.service, err, e.now())
			log.Warn("provision failed; retrying", "service", j.service, "revision", j.d.Revision, "class", Classify(err), "retry-at", until, "error", err)
		}
	}
	return acted || len(jobs) > 0, nil
}

func (e *Executor) provisionTimeout() time.Duration {
	if e.ProvisionTimeout > 0 {
		return e.ProvisionTimeout
	}
	return DefaultProvisionTimeout
}

// ownSteps are the instances one Apply provisioned and retired, to tell a
// list that is behind its own steps.
type ownSteps struct {
	made, gone map[string]bool
	behind     int // passes in a row whose list was behind
}

// maxBehind bounds the passes in a row that wait for a list to catch up:
// past it, the list is taken as it is (the target lost an instance, or
// still lists one it removed), and what it disagrees on is forgotten.
const maxBehind = 10

func (o *ownSteps) provisioned(id string) {
	if o.made == nil {
		o.made = map[string]bool{}
	}
	o.made[id] = true
}

func (o *ownSteps) retired(id string) {
	if o.gone == nil {
		o.gone = map[string]bool{}
	}
	delete(o.made, id)
	o.gone[id] = true
}

// stale says how the fleet's instances, as a List saw them, disagree with
// this Apply's own steps ("" when they do not): an instance it provisioned
// is missing, or one it retired is still there. Targets list every
// instance until it is retired, dead ones included, and Retire removes
// every trace, so only a view from before those steps disagrees.
func (o *ownSteps) stale(obs []Observed) string {
	seen := map[string]bool{}
	var why []string
	for _, in := range obs {
		seen[in.ID] = true
		if o.gone[in.ID] {
			why = append(why, "retired "+in.ID+" still listed")
		}
	}
	for id := range o.made {
		if !seen[id] {
			why = append(why, "provisioned "+id+" not listed")
		}
	}
	if len(why) == 0 {
		o.behind = 0
		return ""
	}
	if o.behind++; o.behind > maxBehind {
		for id := range o.made {
			if !seen[id] {
				delete(o.made, id)
			}
		}
		for id := range seen {
			delete(o.gone, id)
		}
		o.behind = 0
		return ""
	}
	slices.Sort(why)
	return strings.Join(why, "; ")
}

// parallel runs fn for 0..n-1 concurrently (at most 8 at once) and returns
// each call's error.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, i)
		}()
	}
	wg.Wait()
	return errs
}

// maxAttempts bounds the transient provision errors of one service in a
// row within one Apply.
const maxAttempts = 6

// ErrFailed is returned by callers that turn a rolled-back rollout into an
// error (the CLI's exit status 1).
var ErrFailed = errors.New("rollout failed and was rolled back")

// ErrDegraded is returned by callers that turn a degraded service into an
// error (the CLI's exit status 1).
var ErrDegraded = errors.New("degraded")
