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

// Traffic is the routing state of one service, as kept in the router's
// table (which survives a restart of the reconciler).
type Traffic struct {
	// Active is the spec hash of the generation in traffic.
	Active string `json:"active,omitempty"`
	// Previous is the spec hash of the generation that left traffic at the
	// last switch; it is kept warm until PreviousSince + keepPrevious.
	Previous      string    `json:"previous,omitempty"`
	PreviousSince time.Time `json:"previousSince,omitzero"`
	// Instances are the ids of the instances in traffic, sorted.
	Instances []string `json:"instances"`
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
	// targets.Resolver); it is part of Hash and goes to Provision.
	Resolved map[string]string
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
	// Traffic by service name; a missing entry means the router has no
	// record (first deploy, or a lost state directory) and is rebuilt from
	// the healthy instances.
	Traffic map[string]Traffic
	Now     time.Time
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
	// Provision and Retire are the projected counts of the whole change.
	Provision int `json:"provision"`
	Retire    int `json:"retire"`
	// Warm counts previous-generation instances kept alive out of traffic.
	Warm int `json:"warm,omitempty"`
	// Step is what to carry out now.
	Step Step `json:"step"`
	// Traffic is the new routing state when it changes, nil otherwise.
	Traffic *Traffic `json:"traffic,omitempty"`
	// Waiting says what the service waits for when nothing can be done now.
	Waiting string `json:"waiting,omitempty"`
	// Deferred is set when a rollout waits for a deploy window: nothing is
	// done for it until then (the service keeps running as it is).
	Deferred time.Time `json:"deferredUntil,omitzero"`
	// Failed is set when the rollout failed: the executor records the
	// failure and plans again, which rolls back.
	Failed string   `json:"failed,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

// Step is one pass of the executor over a service: first the traffic
// change, then drains, then retires, then provisions.
type Step struct {
	Provision []Provision `json:"provision,omitempty"`
	Retire    []Retire    `json:"retire,omitempty"`
}

// Provision asks for one new instance of the desired spec.
type Provision struct {
	Reason string `json:"reason"`
}

// Retire asks for one instance to go.
type Retire struct {
	Instance string `json:"instance"`
	SpecHash string `json:"specHash"`
	Reason   string `json:"reason"`
	// Drain: the instance was in traffic; wait for its in-flight requests
	// after the traffic change and before the retire.
	Drain bool `json:"drain,omitempty"`
}

// Empty reports whether the step does nothing.
func (s Step) Empty() bool { return len(s.Provision) == 0 && len(s.Retire) == 0 }

// Acts reports whether the service plan carries out anything now.
func (sp *ServicePlan) Acts() bool {
	return !sp.Step.Empty() || sp.Traffic != nil || sp.Failed != ""
}

// Converged reports whether the service is where it should be: nothing to
// do now and nothing to wait for.
func (sp *ServicePlan) Converged() bool {
	return !sp.Acts() && sp.Waiting == "" && sp.Deferred.IsZero()
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
	return sp.Provision > 0 || sp.Retire > 0 || sp.Acts() || sp.Waiting != "" || !sp.Deferred.IsZero()
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
