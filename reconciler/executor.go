package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/router"
)

// Router is what the executor needs of the traffic front.
type Router interface {
	Table(ctx context.Context) (router.Table, error)
	Apply(ctx context.Context, t router.Table) (router.Table, error)
	Drain(ctx context.Context, addrs []string) error
}

// SpecSource returns the fleet as it was at a revision, so that a rollback
// can provision more instances of the last good generation.
type SpecSource func(ctx context.Context, revision string) (*schema.Fleet, error)

// Executor carries plans out against a target and the router, one step at a
// time, planning again after every step. It keeps no state between calls
// that it cannot rebuild from the live fleet, the router's table and the
// failure record.
type Executor struct {
	Target   targets.Target
	Router   Router
	Prober   *Prober
	Failures *Failures
	// Specs reads older revisions for rollbacks; nil means a rollback can
	// only retire (it holds the last good generation as it is).
	Specs  SpecSource
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tick is the pause between passes while waiting (default 200ms).
	Tick time.Duration
	// OnPass, when set, is called with every plan before it is carried out.
	OnPass func(Plan)
	// Preempt, when set, is asked after every step; true makes Apply
	// return (Result.Preempted) so that a newer revision can be taken up.
	// The step in progress is always finished first.
	Preempt func() bool
}

// Result is the outcome of Apply.
type Result struct {
	Plan        Plan // the last plan
	Converged   bool
	Preempted   bool      // stopped between steps for a newer trigger
	Deferred    time.Time // a rollout waits for a deploy window until then
	Failures    []Failure // rollouts that failed and were rolled back
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

// metaInstances is the router-table metadata key holding the ids of the
// instances in traffic (for services that are not exposed too).
const metaInstances = "molt.instances"

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Observe reads the live state of the fleet: its instances with their
// health, and the traffic table.
// With a drift map, it also asks the target (when it can tell) whether each
// running instance still is as it was made, once per instance: the verdicts
// are kept in the map (an instance never drifts back), since asking costs
// more than listing.
func (e *Executor) Observe(ctx context.Context, fleet *schema.Fleet, drift map[string]string) ([]Observed, router.Table, error) {
	all, err := e.Target.List(ctx)
	if err != nil {
		return nil, router.Table{}, fmt.Errorf("list instances: %w", err)
	}
	var mine []targets.Instance
	for _, in := range all {
		if in.Labels.Fleet == fleet.Name {
			mine = append(mine, in)
		}
	}
	table, err := e.Router.Table(ctx)
	if err != nil {
		return nil, router.Table{}, fmt.Errorf("read route table: %w", err)
	}
	obs := e.Prober.Observe(ctx, e.now(), mine, func(name string) *schema.Service { return fleet.Services[name] })
	if d, ok := e.Target.(targets.DriftInspector); ok && drift != nil {
		for i := range obs {
			what, seen := drift[obs[i].ID]
			if !seen && obs[i].State == targets.Running {
				var err error
				if what, err = d.Drift(ctx, obs[i].Instance); err != nil {
					e.logger().Warn("drift inspection failed", "instance", obs[i].ID, "error", err)
					continue
				}
				drift[obs[i].ID] = what
			}
			obs[i].Drift = what
		}
	}
	return obs, table, nil
}

// Desired computes what each service should become at revision, taking
// the failure record into account: a service whose rollout of this
// revision failed goes back to its last good generation.
func (e *Executor) Desired(ctx context.Context, fleet *schema.Fleet, revision string, traffic map[string]Traffic, obs []Observed) (map[string]Desired, error) {
	return e.desired(ctx, fleet, revision, traffic, obs, &desiredCache{})
}

// desiredCache keeps, for one Apply (one fleet at one revision), what does
// not change from pass to pass: what the target resolved for each spec
// (resolved once, when the plan is first made), the failure record (read
// again only after the executor records a failure), and the specs of the
// generations being rolled back to (read from Git once).
type desiredCache struct {
	extra    map[string]map[string]string
	failures map[string]Failure // nil: read the record again
	rollback map[string]Desired
}

func (e *Executor) desired(ctx context.Context, fleet *schema.Fleet, revision string, traffic map[string]Traffic, obs []Observed, c *desiredCache) (map[string]Desired, error) {
	if c.extra == nil {
		c.extra, c.rollback = map[string]map[string]string{}, map[string]Desired{}
	}
	if c.failures == nil {
		f, err := e.Failures.ForRevision(revision)
		if err != nil {
			return nil, err
		}
		c.failures = f
	}
	resolver, _ := e.Target.(targets.Resolver)
	out := map[string]Desired{}
	for name, svc := range fleet.Services {
		extra, done := c.extra[name]
		if !done && resolver != nil {
			var err error
			if extra, err = resolver.Resolve(ctx, svc); err != nil {
				return nil, fmt.Errorf("service %s: %w", name, err)
			}
			c.extra[name] = extra
		}
		d := Desired{Spec: svc, Hash: svc.SpecHash(extra), Revision: revision, Resolved: extra}
		fl, failed := c.failures[name]
		if !failed {
			out[name] = d
			continue
		}
		if rb, ok := c.rollback[name]; ok {
			out[name] = rb
			continue
		}
		tr, known := traffic[name]
		if !known {
			// A lost traffic record: the generation to go back to is the
			// one the live fleet says is serving.
			var alive []Observed
			for _, o := range obs {
				if o.Labels.Service == name && o.State != targets.Dead {
					alive = append(alive, o)
				}
			}
			tr = rebuildTraffic(alive)
		}
		rb := e.rollbackTo(ctx, name, d, tr, obs)
		rb.FailedRevision = fl.Revision
		if rb.Spec != nil {
			c.rollback[name] = rb // a hold is decided again on the next pass
		}
		out[name] = rb
	}
	return out, nil
}

// rollbackTo builds the desired state of a rollback from the failed desired
// state d: the active generation, with the spec read from the revision its
// instances carry.
func (e *Executor) rollbackTo(ctx context.Context, name string, d Desired, tr Traffic, obs []Observed) Desired {
	if tr.Active == d.Hash {
		return Desired{Rollback: true} // it is serving already: hold it
	}
	if tr.Active == "" {
		// The first rollout failed: nothing to go back to but zero instances.
		none := *d.Spec
		none.Replicas = 0
		return Desired{Spec: &none, Hash: d.Hash, Resolved: d.Resolved, Rollback: true}
	}
	rev := ""
	for _, o := range obs {
		if o.Labels.Service == name && o.Labels.SpecHash == tr.Active {
			rev = o.Labels.Revision
			break
		}
	}
	if rev != "" && e.Specs != nil {
		f, err := e.Specs(ctx, rev)
		if err == nil && f.Services[name] != nil {
			old := f.Services[name]
			if old.SpecHash(nil) == tr.Active {
				return Desired{Spec: old, Hash: tr.Active, Revision: rev, Rollback: true}
			}
			if ext := e.rollbackResolved(ctx, old, tr.Active); ext != nil {
				return Desired{Spec: old, Hash: tr.Active, Revision: rev, Rollback: true, Resolved: ext}
			}
		}
		e.logger().Warn("cannot read the spec of the last good generation; holding it", "service", name, "revision", rev, "error", err)
	}
	return Desired{Hash: "", Rollback: true}
}

// rollbackResolved resolves the spec of the last good generation again and
// returns what it resolved when that gives back the generation's hash (an
// image tag may have moved since: then it cannot be provisioned as it was).
func (e *Executor) rollbackResolved(ctx context.Context, svc *schema.Service, hash string) map[string]string {
	r, ok := e.Target.(targets.Resolver)
	if !ok {
		return nil
	}
	extra, err := r.Resolve(ctx, svc)
	if err != nil || svc.SpecHash(extra) != hash {
		return nil
	}
	return extra
}

// TrafficOf turns the router's table into the planner's view.
func TrafficOf(t router.Table) map[string]Traffic {
	out := map[string]Traffic{}
	for name, r := range t.Services {
		tr := Traffic{Active: r.Active, Previous: r.Previous, PreviousSince: r.PreviousSince}
		if ids := r.Meta[metaInstances]; ids != "" {
			tr.Instances = strings.Split(ids, ",")
		}
		sort.Strings(tr.Instances)
		out[name] = tr
	}
	return out
}

// Apply converges the fleet to the desired state of revision: it plans,
// carries out one step, observes again and repeats until every service is
// converged, ctx is done, or an error that a retry cannot fix occurs. A
// rollout that fails is recorded and rolled back; Apply then still returns
// a nil error, with the failure in Result.Failures.
//
// Cancelling ctx stops between steps; instances already provisioned are
// left running (the next Apply picks them up).
func (e *Executor) Apply(ctx context.Context, fleet *schema.Fleet, revision string) (Result, error) {
	start := e.now()
	var res Result
	log := e.logger()
	tick := e.Tick
	if tick <= 0 {
		tick = 200 * time.Millisecond
	}
	drift := map[string]string{}
	cache := &desiredCache{}
	for pass := 0; ; pass++ {
		if pass > 0 && e.Preempt != nil && e.Preempt() {
			res.Preempted = true
			res.Duration = e.now().Sub(start)
			return res, nil
		}
		obs, table, err := e.Observe(ctx, fleet, drift)
		if err != nil {
			return res, err
		}
		traffic := TrafficOf(table)
		desired, err := e.desired(ctx, fleet, revision, traffic, obs, cache)
		if err != nil {
			return res, err
		}
		plan := PlanFleet(Input{Fleet: fleet.Name, Revision: revision, Desired: desired, Instances: obs, Traffic: traffic,
			DeployWindows: fleet.DeployWindows, Now: e.now()})
		res.Plan = plan
		if e.OnPass != nil {
			e.OnPass(plan)
		}
		if plan.Converged() {
			res.Converged = true
			res.Duration = e.now().Sub(start)
			return res, nil
		}
		if until, ok := plan.Deferred(); ok {
			res.Deferred = until
			res.Duration = e.now().Sub(start)
			return res, nil
		}
		failed := false
		for _, sp := range plan.Services {
			if sp.Failed == "" {
				continue
			}
			fl := Failure{Service: sp.Service, Revision: revision, Reason: sp.Failed, At: e.now()}
			log.Error("rollout failed; rolling back", "service", sp.Service, "revision", revision, "reason", sp.Failed)
			if err := e.Failures.Record(fl); err != nil {
				return res, err
			}
			res.Failures = append(res.Failures, fl)
			failed = true
		}
		if failed {
			cache.failures = nil
			continue // plan again: the failed services now roll back
		}
		recorded := len(res.Failures)
		acted, err := e.step(ctx, fleet, plan, desired, obs, table, &res)
		if err != nil {
			return res, err
		}
		if len(res.Failures) > recorded {
			cache.failures = nil // a provision failed: read the record again
		}
		if !acted {
			select {
			case <-ctx.Done():
				return res, fmt.Errorf("waiting for %s: %w", waitingFor(plan), ctx.Err())
			case <-time.After(tick):
			}
		}
	}
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

// step carries out the first step of every service: traffic, drains,
// retires, provisions. It reports whether it changed anything.
func (e *Executor) step(ctx context.Context, fleet *schema.Fleet, plan Plan, desired map[string]Desired, obs []Observed, table router.Table, res *Result) (bool, error) {
	log := e.logger()
	byID := map[string]Observed{}
	for _, o := range obs {
		byID[o.ID] = o
	}
	acted := false

	// 1. Traffic: one atomic table change for all services.
	next := router.Table{Services: map[string]router.Route{}}
	for name, r := range table.Services {
		next.Services[name] = r
	}
	changed := false
	for _, sp := range plan.Services {
		spec := desired[sp.Service].Spec
		if spec == nil {
			spec = fleet.Services[sp.Service]
		}
		listen := ""
		if spec != nil && spec.Expose != nil {
			listen = spec.Expose.Listen
		}
		cur, had := table.Services[sp.Service]
		if sp.Traffic == nil && (!had || cur.Listen == listen) {
			continue
		}
		tr := TrafficOf(router.Table{Services: map[string]router.Route{sp.Service: cur}})[sp.Service]
		if sp.Traffic != nil {
			tr = *sp.Traffic
		}
		if _, wanted := desired[sp.Service]; !wanted && len(tr.Instances) == 0 {
			delete(next.Services, sp.Service)
			changed = true
			continue
		}
		route := router.Route{Listen: listen, Active: tr.Active, Previous: tr.Previous, PreviousSince: tr.PreviousSince,
			Meta: map[string]string{metaInstances: strings.Join(tr.Instances, ",")}, Backends: []router.Backend{}}
		for _, id := range tr.Instances {
			o, ok := byID[id]
			if !ok || spec == nil || spec.Expose == nil {
				continue
			}
			if addr := o.Endpoints[spec.Expose.Port]; addr != "" {
				route.Backends = append(route.Backends, router.Backend{Instance: id, Addr: addr, Generation: o.Labels.SpecHash})
			}
		}
		next.Services[sp.Service] = route
		changed = true
	}
	if changed {
		if _, err := e.Router.Apply(ctx, next); err != nil {
			return false, fmt.Errorf("apply route table: %w", err)
		}
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
		if err := e.Router.Drain(ctx, drain); err != nil {
			log.Warn("drain incomplete; retiring anyway", "error", err)
		}
	}
	errs := parallel(ctx, len(retire), func(ctx context.Context, i int) error {
		r := retire[i]
		o := byID[r.Instance]
		log.Info("retire", "service", o.Labels.Service, "instance", r.Instance, "generation", short(r.SpecHash), "reason", r.Reason)
		if err := e.Target.Retire(ctx, r.Instance); err != nil {
			return fmt.Errorf("retire %s: %w", r.Instance, err)
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			return acted, err
		}
	}
	res.Retired += len(retire)
	for _, r := range retire {
		res.count(byID[r.Instance].Labels.Service, 0, 1)
	}
	acted = acted || len(retire) > 0

	// 3. Provision.
	type job struct {
		service string
		d       Desired
		reason  string
	}
	var jobs []job
	for _, sp := range plan.Services {
		for _, p := range sp.Step.Provision {
			jobs = append(jobs, job{sp.Service, desired[sp.Service], p.Reason})
		}
	}
	var mu sync.Mutex
	provErrs := parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		labels := targets.Labels{Fleet: fleet.Name, Service: j.service, SpecHash: j.d.Hash, Revision: j.d.Revision, CreatedAt: e.now().UTC().Truncate(time.Millisecond)}
		inst, err := e.Target.Provision(ctx, targets.Spec{Labels: labels, Service: j.d.Spec, Resolved: j.d.Resolved})
		if err != nil {
			return fmt.Errorf("provision %s: %w", j.service, err)
		}
		log.Info("provision", "service", j.service, "instance", inst.ID, "generation", short(j.d.Hash), "reason", j.reason)
		mu.Lock()
		res.Provisioned++
		res.count(j.service, 1, 0)
		mu.Unlock()
		return nil
	})
	for i, err := range provErrs {
		if err == nil {
			continue
		}
		acted = true
		j := jobs[i]
		if ctx.Err() != nil {
			return acted, ctx.Err()
		}
		if j.d.Rollback {
			return acted, err // nothing left to fall back to
		}
		fl := Failure{Service: j.service, Revision: j.d.Revision, Reason: err.Error(), At: e.now()}
		log.Error("rollout failed; rolling back", "service", j.service, "revision", j.d.Revision, "reason", fl.Reason)
		if rerr := e.Failures.Record(fl); rerr != nil {
			return acted, rerr
		}
		res.Failures = append(res.Failures, fl)
	}
	return acted || len(jobs) > 0, nil
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

// ErrFailed is returned by callers that turn a rolled-back rollout into an
// error (the CLI's exit status 1).
var ErrFailed = errors.New("rollout failed and was rolled back")
