package reconciler

import (
	"fmt"
	"time"

	"github.com/molt-dev/molt/targets"
)

// Verdict is what a judgement of a generation's traffic decides.
type Verdict string

const (
	Promote  Verdict = "Promote"  // the canary goes on to every replica
	Rollback Verdict = "Rollback" // the new generation goes
	Pass     Verdict = "Pass"     // verification passed
	Fail     Verdict = "Fail"     // verification failed: switch back
)

// Finding is the stable code of why a judgement decided as it did.
type Finding string

const (
	FindingHealthy      Finding = "Healthy"             // within every limit
	FindingErrorRate    Finding = "ErrorRate"           // too many failed requests
	FindingLatency      Finding = "Latency"             // p99 too slow against the old generation
	FindingInsufficient Finding = "InsufficientTraffic" // too few requests to judge
	FindingInstance     Finding = "InstanceFailed"      // an instance exited or turned unhealthy
)

// CanaryPolicy is what a canary is judged by (rollout.canary).
type CanaryPolicy struct {
	// MaxErrorRate: the canary's error rate may exceed the old
	// generation's by at most this much (0.05: five points).
	MaxErrorRate float64
	// MaxLatencyRatio: the canary's p99 may be at most this many times
	// the old generation's.
	MaxLatencyRatio float64
	// MinRequests: with fewer canary requests, OnInsufficient decides.
	MinRequests    int64
	OnInsufficient Verdict
}

// Judgement is a decision with the figures it was made from; it is what
// apply, the plan and the pull-request comment report.
type Judgement struct {
	Verdict  Verdict `json:"verdict"`
	Finding  Finding `json:"finding"`
	Message  string  `json:"message"`
	Requests int64   `json:"requests"` // of the generation judged
	// ErrorRate and P99 of the generation judged and of the baseline (the
	// old generation, for a canary).
	ErrorRate         float64       `json:"errorRate"`
	BaselineRequests  int64         `json:"baselineRequests,omitempty"`
	BaselineErrorRate float64       `json:"baselineErrorRate,omitempty"`
	P99               time.Duration `json:"p99,omitempty"`
	BaselineP99       time.Duration `json:"baselineP99,omitempty"`
}

// JudgeCanary decides a canary from its counts and the old generation's
// over the same window. It is pure.
//
// With fewer than MinRequests canary requests, OnInsufficient decides.
// Otherwise the canary is rolled back when its error rate is above the old
// generation's by more than MaxErrorRate, or its p99 above MaxLatencyRatio
// times the old p99; it is promoted otherwise. With no old-generation
// traffic (nothing to compare with), the canary's error rate is compared
// with zero and its latency is not judged.
func JudgeCanary(p CanaryPolicy, canary, old targets.Counts) Judgement {
	j := Judgement{Requests: canary.Requests, ErrorRate: canary.ErrorRate(),
		BaselineRequests: old.Requests, BaselineErrorRate: old.ErrorRate(),
		P99: canary.Latency.Quantile(0.99), BaselineP99: old.Latency.Quantile(0.99)}
	switch {
	case canary.Requests < p.MinRequests:
		j.Verdict, j.Finding = p.OnInsufficient, FindingInsufficient
		j.Message = fmt.Sprintf("%d canary request(s), fewer than minRequests %d: %s as onInsufficientTraffic says",
			canary.Requests, p.MinRequests, verb(p.OnInsufficient))
	case j.ErrorRate-j.BaselineErrorRate > p.MaxErrorRate:
		j.Verdict, j.Finding = Rollback, FindingErrorRate
		j.Message = fmt.Sprintf("canary error rate %s against %s for the old generation, more than maxErrorRate %s above it (%d and %d request(s))",
			percent(j.ErrorRate), percent(j.BaselineErrorRate), percent(p.MaxErrorRate), canary.Requests, old.Requests)
	case old.Requests > 0 && j.BaselineP99 > 0 && p.MaxLatencyRatio > 0 &&
		float64(j.P99) > p.MaxLatencyRatio*float64(j.BaselineP99):
		j.Verdict, j.Finding = Rollback, FindingLatency
		j.Message = fmt.Sprintf("canary p99 %s against %s for the old generation, more than maxLatencyRatio %.1f times it (%d and %d request(s))",
			j.P99.Round(time.Millisecond), j.BaselineP99.Round(time.Millisecond), p.MaxLatencyRatio, canary.Requests, old.Requests)
	default:
		j.Verdict, j.Finding = Promote, FindingHealthy
		j.Message = fmt.Sprintf("canary error rate %s (old %s), p99 %s (old %s) over %d request(s)",
			percent(j.ErrorRate), percent(j.BaselineErrorRate), j.P99.Round(time.Millisecond),
			j.BaselineP99.Round(time.Millisecond), canary.Requests)
		if old.Requests == 0 {
			j.Message += "; the old generation had no traffic to compare latency with"
		}
	}
	return j
}

// VerifyPolicy is what a new generation is watched by after its rollout
// (rollout.verifyFor, rollout.maxErrorRate).
type VerifyPolicy struct {
	MaxErrorRate float64
	MinRequests  int64
}

// JudgeVerification decides whether a generation under watch has failed:
// an instance of it failed (instanceFailure says how), or its error rate
// over the window is above MaxErrorRate over at least MinRequests
// requests. Pass means nothing failed so far; the caller knows whether the
// window is over. It is pure.
func JudgeVerification(p VerifyPolicy, counts targets.Counts, instanceFailure string) Judgement {
	j := Judgement{Requests: counts.Requests, ErrorRate: counts.ErrorRate(), P99: counts.Latency.Quantile(0.99)}
	switch {
	case instanceFailure != "":
		j.Verdict, j.Finding, j.Message = Fail, FindingInstance, instanceFailure
	case counts.Requests >= p.MinRequests && j.ErrorRate > p.MaxErrorRate:
		j.Verdict, j.Finding = Fail, FindingErrorRate
		j.Message = fmt.Sprintf("error rate %s over %d request(s), above maxErrorRate %s",
			percent(j.ErrorRate), counts.Requests, percent(p.MaxErrorRate))
	default:
		j.Verdict, j.Finding = Pass, FindingHealthy
		j.Message = fmt.Sprintf("error rate %s over %d request(s)", percent(j.ErrorRate), counts.Requests)
		if counts.Requests < p.MinRequests {
			j.Message += fmt.Sprintf(", too few to judge the error rate by (minRequests %d)", p.MinRequests)
		}
	}
	return j
}

func verb(v Verdict) string {
	if v == Promote {
		return "promoted"
	}
	return "rolled back"
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }
