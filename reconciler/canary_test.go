package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
)

// counts makes synthetic counts: n requests, bad of them failed, every
// answered one taking about lat.
func counts(n, bad int64, lat time.Duration) targets.Counts {
	bounds := []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second}
	h := targets.Histogram{Bounds: bounds, Counts: make([]int64, len(bounds)+1)}
	i := 0
	for i < len(bounds) && lat > bounds[i] {
		i++
	}
	h.Counts[i] = n
	return targets.Counts{Requests: n, Status5xx: bad, Latency: h}
}

func TestJudgeCanary(t *testing.T) {
	policy := CanaryPolicy{MaxErrorRate: 0.05, MaxLatencyRatio: 2, MinRequests: 50, OnInsufficient: Rollback}
	promoteOnLow := policy
	promoteOnLow.OnInsufficient = Promote
	for _, c := range []struct {
		name        string
		p           CanaryPolicy
		canary, old targets.Counts
		verdict     Verdict
		finding     Finding
		says        string
	}{
		{"as good as the old generation", policy, counts(100, 1, 5*time.Millisecond), counts(900, 9, 5*time.Millisecond), Promote, FindingHealthy, "1.0%"},
		{"worse but within maxErrorRate", policy, counts(100, 5, 5*time.Millisecond), counts(900, 9, 5*time.Millisecond), Promote, FindingHealthy, ""},
		{"error rate worse", policy, counts(100, 50, 5*time.Millisecond), counts(900, 9, 5*time.Millisecond), Rollback, FindingErrorRate, "50.0% against 1.0%"},
		{"no worse than a bad old generation", policy, counts(100, 36, 5*time.Millisecond), counts(900, 300, 5*time.Millisecond), Promote, FindingHealthy, ""},
		{"latency worse", policy, counts(100, 0, 500*time.Millisecond), counts(900, 0, 5*time.Millisecond), Rollback, FindingLatency, "maxLatencyRatio 2.0"},
		{"latency within the ratio", policy, counts(100, 0, 8*time.Millisecond), counts(900, 0, 6*time.Millisecond), Promote, FindingHealthy, ""},
		{"insufficient traffic: roll back", policy, counts(10, 0, time.Millisecond), counts(900, 0, time.Millisecond), Rollback, FindingInsufficient, "fewer than minRequests 50"},
		{"insufficient traffic: promote", promoteOnLow, counts(10, 0, time.Millisecond), counts(900, 0, time.Millisecond), Promote, FindingInsufficient, "promoted"},
		{"no traffic at all", policy, targets.Counts{}, targets.Counts{}, Rollback, FindingInsufficient, "0 canary request(s)"},
		{"zero old-generation traffic: judged alone", policy, counts(100, 1, 900*time.Millisecond), targets.Counts{}, Promote, FindingHealthy, "no traffic to compare"},
		{"zero old-generation traffic, failing canary", policy, counts(100, 20, time.Millisecond), targets.Counts{}, Rollback, FindingErrorRate, "20.0% against 0.0%"},
		{"proxy errors count as failures", policy, targets.Counts{Requests: 100, ProxyErrors: 30}, counts(900, 0, time.Millisecond), Rollback, FindingErrorRate, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := JudgeCanary(c.p, c.canary, c.old)
			if j.Verdict != c.verdict || j.Finding != c.finding {
				t.Errorf("got %s (%s): %s; want %s (%s)", j.Verdict, j.Finding, j.Message, c.verdict, c.finding)
			}
			if !strings.Contains(j.Message, c.says) {
				t.Errorf("message %q does not say %q", j.Message, c.says)
			}
			if j.Requests != c.canary.Requests || j.BaselineRequests != c.old.Requests {
				t.Errorf("figures %+v do not carry the request counts", j)
			}
		})
	}
}

func TestJudgeVerification(t *testing.T) {
	p := VerifyPolicy{MaxErrorRate: 0.05, MinRequests: 50}
	for _, c := range []struct {
		name     string
		counts   targets.Counts
		instance string
		verdict  Verdict
		finding  Finding
	}{
		{"healthy", counts(500, 2, time.Millisecond), "", Pass, FindingHealthy},
		{"error rate above the limit", counts(500, 100, time.Millisecond), "", Fail, FindingErrorRate},
		{"too few requests to judge the rate", counts(20, 20, time.Millisecond), "", Pass, FindingHealthy},
		{"an instance failed", counts(500, 0, time.Millisecond), "instance web-1 exited (exit status 1)", Fail, FindingInstance},
		{"no traffic", targets.Counts{}, "", Pass, FindingHealthy},
	} {
		j := JudgeVerification(p, c.counts, c.instance)
		if j.Verdict != c.verdict || j.Finding != c.finding {
			t.Errorf("%s: got %s (%s): %s; want %s (%s)", c.name, j.Verdict, j.Finding, j.Message, c.verdict, c.finding)
		}
	}
}
