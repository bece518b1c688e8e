package reconciler

// Reason is the stable code of why an instance is provisioned or retired.
// Machines switch on the code; people read Text. Codes never change once
// released (they appear in `molt plan -o json` and in logs).
type Reason string

// Why an instance is provisioned.
const (
	ReasonRollout     Reason = "Rollout"     // a new generation replaces the serving one
	ReasonScaleUp     Reason = "ScaleUp"     // fewer instances than replicas
	ReasonReplacement Reason = "Replacement" // a new instance first, for one that must go
	ReasonRebalance   Reason = "Rebalance"   // on an under-filled engine, to even the spread
)

// Why an instance is retired.
const (
	ReasonExited         Reason = "Exited"         // the process or container is gone
	ReasonReplaced       Reason = "Replaced"       // its replacement is healthy
	ReasonSuperseded     Reason = "Superseded"     // of a generation no longer wanted
	ReasonScaleDown      Reason = "ScaleDown"      // more instances than replicas
	ReasonUnhealthy      Reason = "Unhealthy"      // failed its readiness check
	ReasonRemoved        Reason = "Removed"        // the service left the fleet
	ReasonExpired        Reason = "Expired"        // the warm previous generation's keepPrevious ran out
	ReasonNotServing     Reason = "NotServing"     // held: only the serving generation stays
	ReasonDrift          Reason = "Drift"          // it changed since it was made
	ReasonLivenessFailed Reason = "LivenessFailed" // failed its liveness check
	ReasonRecycle        Reason = "Recycle"        // older than recycle.maxAge
)

var reasonText = map[Reason]string{
	ReasonRollout:        "rollout of the new generation",
	ReasonScaleUp:        "scale up",
	ReasonReplacement:    "replacement",
	ReasonRebalance:      "rebalance across engines",
	ReasonExited:         "exited",
	ReasonReplaced:       "replaced by a healthy instance",
	ReasonSuperseded:     "superseded",
	ReasonScaleDown:      "scale down",
	ReasonUnhealthy:      "unhealthy",
	ReasonRemoved:        "service removed",
	ReasonExpired:        "previous generation expired",
	ReasonNotServing:     "not the serving generation",
	ReasonDrift:          "drifted",
	ReasonLivenessFailed: "liveness check failed",
	ReasonRecycle:        "older than recycle.maxAge",
}

// Text is the reason in English.
func (r Reason) Text() string {
	if t, ok := reasonText[r]; ok {
		return t
	}
	return string(r)
}

// Wait is the stable code of what a service waits for when nothing can be
// done for it now; ServicePlan.Waiting carries the sentence.
type Wait string

const (
	WaitHealthy     Wait = "Healthy"     // new instances to turn (and stay) healthy
	WaitReplacement Wait = "Replacement" // a replacement to be healthy before the old one goes
	WaitBackoff     Wait = "Backoff"     // a retry after a transient error
	WaitWindow      Wait = "DeployWindow"
	WaitCanary      Wait = "Canary"   // a canary's observation window
	WaitVerify      Wait = "Verify"   // the new generation's verification window
	WaitCapacity    Wait = "Capacity" // room on an engine (all full, or none answers)
)

// Degradation is the stable code of why a service cannot reach the
// healthy instance count it wants; ServicePlan.Degraded carries the
// sentence.
type Degradation string

const (
	// DegradedStalled: provisioning fails in a way no retry fixes (an
	// invalid spec, an artifact that cannot be had) outside a rollout.
	DegradedStalled Degradation = "Stalled"
	// DegradedNoSpec: the spec of the serving generation cannot be read.
	DegradedNoSpec Degradation = "SpecUnavailable"
)
