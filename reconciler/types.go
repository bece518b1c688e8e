package reconciler

import (
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Health is the verdict of an instance's readiness check.
type Health int

const (
	// HealthUnknown: not probed enough yet, or still inside its start grace.
	HealthUnknown Health = iota
	// Healthy: passed healthyThreshold checks in a row.
	Healthy
	// Unhealthy: failed unhealthyThreshold checks in a row after its grace.
	Unhealthy
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// Observed is an instance as the reconciler last saw it.
type Observed struct {
	targets.Instance
	Health Health
	// HealthySince is when the instance last turned healthy (zero unless
	// Healthy). A reconciler restart resets it: the minHealthyFor clock of
	// an instance starts again, which only ever delays a retire.
	HealthySince time.Time
	// Drift says what changed in the instance since it was made ("" when
	// nothing did, or when the target cannot tell); a drifted instance is
	// replaced.
	Drift string
	// LivenessFailed: the service's liveness check failed its
	// unhealthyThreshold after its grace; the instance is replaced (a new
	// one first), whatever its readiness says.
	LivenessFailed bool
}

// Traffic is the reconciler's own routing record of one service. It is
// kept, opaquely, in the Meta of the service's route at the front (see
// Front), so it survives a restart of the reconciler, and it is rebuilt
// from the live fleet when it is lost.
type Traffic struct {
	// Active is the spec hash of the generation in traffic.
	Active string `json:"active,omitempty"`
	// Previous is the spec hash of the generation that left traffic at the
	// last switch; it is kept warm until PreviousSince + keepPrevious.
	Previous      string    `json:"previous,omitempty"`
	PreviousSince time.Time `json:"previousSince,omitzero"`
	// Instances are the ids of the instances in traffic, sorted.
	Instances []string `json:"instances"`
	// Canary is the canary of a generation being rolled out: in traffic
	// with its weight since Since, judged at Since + canary.duration.
	Canary *CanaryState `json:"canary,omitempty"`
	// Verify is the generation under watch since it became active (for
	// rollout.verifyFor).
	Verify *VerifyState `json:"verify,omitempty"`
}

// CanaryState is a canary's progress, kept in the traffic record so that
// a restart of molt picks it up where it was.
type CanaryState struct {
	Hash   string    `json:"hash"`
	Weight int       `json:"weight"` // percent of the service's requests
	Since  time.Time `json:"since"`
	// Verdict is empty while the canary is observed, Promote once it is
	// promoted (the rollout goes on with canary.then).
	Verdict   Verdict    `json:"verdict,omitempty"`
	Judgement *Judgement `json:"judgement,omitempty"`
}

// VerifyState is a generation under watch after its rollout.
type VerifyState struct {
	Hash  string    `json:"hash"`
	Since time.Time `json:"since"`
}

// Desired is what one service should become.
type Desired struct {
	// Spec is the service definition. Nil with a Hash of "" means hold: no
	// provision, keep only the active generation (used when the spec of
	// the generation to roll back to cannot be read).
	Spec     *schema.Service
	Hash     string
	Revision string
	// Rollback marks a guarded return to the last good generation after a
	// failed rollout of FailedRevision: no failure detection, no soak.
	Rollback       bool
	FailedRevision string
	// Resolved is what the target resolved for the spec (see
	// targets.Resolver) and the keyed digests of its secrets (see
	// Secrets); all of it is part of Hash, and the target's part goes to
	// Provision.
	Resolved map[string]string
	// Why says how Spec differs from the serving generation's, when that
	// one's record is known (its last converged revision): why this is a
	// new generation.
	Why []Change `json:"-"`
	// Current is the generation that last converged for the service (the
	// last good revision, with its replica count), when it is serving and
	// is not this one: while a rollout waits for a deploy window, or while
	// this spec cannot be resolved, the service is kept as Current says
	// (dead instances replaced) instead of as it happens to be.
	Current *Desired `json:"-"`
	// Expose is the service's exposure when Spec is nil (a hold), so that
	// its route keeps its listen address.
	Expose *schema.Expose `json:"-"`
	// Stalled says why the revision's spec cannot be rolled out (it cannot
	// be resolved: a missing executable, an image that cannot be had). The
	// service is then kept as Current says, and reported degraded.
	Stalled string `json:"-"`
	// Declared is the service as the revision declares it, when Spec is
	// nil (a hold): its replicas and strategy, for people.
	Declared *schema.Service `json:"-"`
}

// Input is everything Plan looks at.
type Input struct {
	Fleet    string
	Revision string
	// Desired by service name. A service with observed instances and no
	// entry here is pruned.
	Desired map[string]Desired
	// Instances of this fleet (other fleets' instances must be filtered out
	// by the caller; instances without labels are never passed).
	Instances []Observed
	// DeployWindows of the fleet; each service's own apply too.
	DeployWindows []schema.Window
	// Traffic by service name; a missing entry means the front has no
	// record (first deploy, or a lost state directory) and is rebuilt from
	// the healthy instances.
	Traffic map[string]Traffic
	// Routes are the fleet's routes as the front has them, by service.
	// Nil means "as Traffic says" (the plan's route changes are then
	// computed against routes built from Traffic).
	Routes map[string]targets.Route
	// Stalled holds, by service, why provisioning cannot succeed without a
	// new commit (an invalid spec outside a rollout): nothing is
	// provisioned for it and it is reported degraded.
	Stalled map[string]string
	// Backoff holds, by service, when provisioning may be tried again
	// after a transient error, and that error.
	Backoff map[string]Backoff
	// Counts are the front's counts of a service's traffic, by service
	// then generation, over the window of its canary or verification
	// (from Traffic's Canary.Since or Verify.Since); a service without an
	// entry has no counts (the front cannot count, or nothing is judged).
	Counts map[string]map[string]targets.Counts
	// Decisions are the operators' decisions on paused rollouts, by service.
	Decisions map[string]Decision
	// Engines are the target's engines as it last saw them (see
	// EngineReporter), nil when the target places instances itself. New
	// instances of docker services are placed on them (see placement.go).
	Engines []targets.Engine
	Now     time.Time
}

// Backoff is a retry scheduled after a transient error.
type Backoff struct {
	Until time.Time
	Err   string
}

// Plan is what it takes, per service, to reach the desired state.
type Plan struct {
	Fleet    string        `json:"fleet"`
	Revision string        `json:"revision"`
	Services []ServicePlan `json:"services"`
}

// ServicePlan is the plan of one service: the projected totals of the whole
// rollout (for people) and the next step (for the executor).
type ServicePlan struct {
	Service      string          `json:"service"`
	Strategy     schema.Strategy `json:"strategy,omitempty"`
	From         string          `json:"from,omitempty"` // active spec hash
	FromRevision string          `json:"fromRevision,omitempty"`
	To           string          `json:"to,omitempty"` // desired spec hash
	ToRevision   string          `json:"toRevision,omitempty"`
	Replicas     int             `json:"replicas"`
	Rollback     bool            `json:"rollback,omitempty"`
	// Why says why To is a new generation: how its spec differs from
	// From's, when From's record is known (see Desired.Why).
	Why []Change `json:"why,omitempty"`
	// Provision and Retire are the projected counts of the whole change.
	Provision int `json:"provision"`
	Retire    int `json:"retire"`
	// Warm counts previous-generation instances kept alive out of traffic.
	Warm int `json:"warm,omitempty"`
	// Step is what to carry out now.
	Step Step `json:"step"`
	// Traffic is the new routing record when it changes, nil otherwise.
	Traffic *Traffic `json:"traffic,omitempty"`
	// Route is the service's new route at the front when it changes (its
	// backends, listen address or record), nil otherwise. A route with no
	// listen address, no backend and no Meta removes the service's route.
	Route *targets.Route `json:"route,omitempty"`
	// Waiting says what the service waits for when nothing can be done now.
	Waiting    string `json:"waiting,omitempty"`
	WaitReason Wait   `json:"waitReason,omitempty"`
	// Degraded says why the service has, and will keep, fewer healthy
	// instances in traffic than it wants until something changes (a new
	// commit, a repaired artifact); such a service is never converged.
	Degraded       string      `json:"degraded,omitempty"`
	DegradedReason Degradation `json:"degradedReason,omitempty"`
	// Healthy counts the healthy instances in traffic once the step is
	// done; Wanted is how many the service wants.
	Healthy int `json:"healthy"`
	// Wake is when the plan would change by the clock alone (a warm
	// generation expires, a deploy window opens, a retry is due); zero when
	// nothing is due.
	Wake time.Time `json:"wake,omitzero"`
	// Deferred is set when a rollout waits for a deploy window: nothing is
	// done for it until then (the service keeps running as it is).
	Deferred time.Time `json:"deferredUntil,omitzero"`
	// Paused says that the rollout waits for `molt promote` (or `molt
	// abort`); such a service is settled, not converged.
	Paused string `json:"paused,omitempty"`
	// Judgement is the canary or verification decision the plan made
	// now, with its figures.
	Judgement *Judgement `json:"judgement,omitempty"`
	// Failed is set when the rollout failed: the executor records the
	// failure and plans again, which rolls back.
	Failed string   `json:"failed,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

// Step is one pass of the executor over a service: first the traffic
// change, then drains, then retires, then provisions.
type Step struct {
	// Generation is the spec hash the provisions are of: the desired one,
	// or the last good one while a rollout waits for a deploy window.
	Generation string      `json:"generation,omitempty"`
	Provision  []Provision `json:"provision,omitempty"`
	Retire     []Retire    `json:"retire,omitempty"`
}

// Provision asks for one new instance of the desired spec.
type Provision struct {
	Reason Reason `json:"reason"`
	Detail string `json:"detail,omitempty"`
	// Rollout: the instance is of a generation that is not serving yet,
	// so an invalid-spec error fails the rollout (and rolls it back); any
	// other provision (self-heal, scale, rollback) never fails a rollout.
	Rollout bool `json:"rollout,omitempty"`
	// Engine is the engine the instance goes to ("" lets the target
	// choose): see placement.go.
	Engine string `json:"engine,omitempty"`
}

// Retire asks for one instance to go.
type Retire struct {
	Instance string `json:"instance"`
	SpecHash string `json:"specHash"`
	Reason   Reason `json:"reason"`
	Detail   string `json:"detail,omitempty"`
	// Drain: the instance was in traffic; wait for its in-flight requests
	// after the traffic change and before the retire.
	Drain bool `json:"drain,omitempty"`
}

// Empty reports whether the step does nothing.
func (s Step) Empty() bool { return len(s.Provision) == 0 && len(s.Retire) == 0 }

// Of returns the desired state the step's provisions are made from: d, or
// the last good generation d.Current when the step is of that one.
func (s Step) Of(d Desired) Desired {
	if d.Current != nil && s.Generation != "" && s.Generation == d.Current.Hash && s.Generation != d.Hash {
		return *d.Current
	}
	return d
}

// Acts reports whether the service plan carries out anything now.
func (sp *ServicePlan) Acts() bool {
	return !sp.Step.Empty() || sp.Route != nil || sp.Failed != ""
}

// Converged reports whether the service is where it should be: nothing to
// do now, nothing to wait for, and every instance it wants healthy.
func (sp *ServicePlan) Converged() bool {
	return !sp.Acts() && sp.Waiting == "" && sp.Deferred.IsZero() && sp.Degraded == "" && sp.Paused == ""
}

// Paused returns the services whose rollout waits for a promotion.
func (p *Plan) Paused() []ServicePlan {
	var out []ServicePlan
	for _, sp := range p.Services {
		if sp.Paused != "" {
			out = append(out, sp)
		}
	}
	return out
}

// Settled reports whether nothing more can happen for the service without
// a change from outside: converged, degraded, or waiting for a deploy
// window, with nothing to do now.
func (sp *ServicePlan) Settled() bool {
	return !sp.Acts() && sp.Waiting == ""
}

// Deferred reports whether nothing can be done now but wait for deploy
// windows: no service acts or waits for anything else, and at least one
// waits for a window. It returns the earliest time a window opens.
func (p *Plan) Deferred() (time.Time, bool) {
	var first time.Time
	for i := range p.Services {
		sp := &p.Services[i]
		if sp.Acts() || sp.Waiting != "" {
			return time.Time{}, false
		}
		if !sp.Deferred.IsZero() && (first.IsZero() || sp.Deferred.Before(first)) {
			first = sp.Deferred
		}
	}
	return first, !first.IsZero()
}

// Changes reports whether the service would change at all: it acts, waits,
// or has provisions or retires ahead of it (a deferred rollout included).
func (sp *ServicePlan) Changes() bool {
	return sp.Provision > 0 || sp.Retire > 0 || sp.Acts() || sp.Waiting != "" || !sp.Deferred.IsZero() || sp.Paused != ""
}

// Settled reports whether every service is settled (see ServicePlan.Settled).
func (p *Plan) Settled() bool {
	for i := range p.Services {
		if !p.Services[i].Settled() {
			return false
		}
	}
	return true
}

// Degraded returns the services that are degraded.
func (p *Plan) Degraded() []ServicePlan {
	var out []ServicePlan
	for _, sp := range p.Services {
		if sp.Degraded != "" {
			out = append(out, sp)
		}
	}
	return out
}

// Wake returns the earliest time at which the plan would change by the
// clock alone, or zero.
func (p *Plan) Wake() time.Time {
	var first time.Time
	for _, sp := range p.Services {
		if !sp.Wake.IsZero() && (first.IsZero() || sp.Wake.Before(first)) {
			first = sp.Wake
		}
	}
	return first
}

// Converged reports whether every service is converged.
func (p *Plan) Converged() bool {
	for i := range p.Services {
		if !p.Services[i].Converged() {
			return false
		}
	}
	return true
}

// Changes reports whether the plan would change anything at all (what
// `molt plan` turns into its exit status).
func (p *Plan) Changes() bool {
	for i := range p.Services {
		if p.Services[i].Changes() {
			return true
		}
	}
	return false
}
