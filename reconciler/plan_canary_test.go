package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// canaryOf is a canary service of r replicas: count canaries, weight
// percent, observed for a minute, then rolling.
func canaryOf(r, count, weight int, then schema.Strategy) *schema.Service {
	s := rolling(r, "1", "0")
	s.Rollout.Strategy = schema.CanaryRun
	s.Rollout.Canary = &schema.Canary{Count: count, Weight: weight, Duration: time.Minute, MaxErrorRate: 0.05,
		Then: then, MinRequests: 50, MaxLatencyRatio: 2, OnInsufficientTraffic: "rollback"}
	if then == schema.BlueGreen {
		s.Rollout.KeepPrevious = time.Hour
	}
	return s
}

func withCanary(t Traffic, hash string, ago time.Duration, verdict Verdict) Traffic {
	t.Canary = &CanaryState{Hash: hash, Weight: 10, Since: t0.Add(-ago), Verdict: verdict}
	return t
}

func planOne(t *testing.T, in Input) ServicePlan {
	t.Helper()
	in.Fleet, in.Revision, in.Now = testFleet, "rev", t0
	p := PlanFleet(in)
	checkPlan(t, in, p)
	return p.Services[0]
}

func TestPlanCanary(t *testing.T) {
	from3 := "web v1 a:h b:h c:h"
	good := map[string]map[string]targets.Counts{"web": {"v2": counts(100, 1, 5*time.Millisecond), "v1": counts(900, 9, 5*time.Millisecond)}}
	bad := map[string]map[string]targets.Counts{"web": {"v2": counts(100, 50, 5*time.Millisecond), "v1": counts(900, 9, 5*time.Millisecond)}}

	t.Run("provisions the canary only", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3), Traffic: webTraffic(route("v1", "a b c")),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling)))})
		if len(sp.Step.Provision) != 1 || sp.WaitReason != WaitHealthy || !sp.Step.Provision[0].Rollout {
			t.Fatalf("want one canary provisioned: %s", describePlan(&sp))
		}
	})
	t.Run("a healthy canary joins the route and its window starts", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@1m d:h"), Traffic: webTraffic(route("v1", "a b c")),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling)))})
		if sp.Traffic == nil || sp.Traffic.Canary == nil || !sp.Traffic.Canary.Since.Equal(t0) || strings.Join(sp.Traffic.Instances, " ") != "a b c d" {
			t.Fatalf("want the canary in traffic since now: %s", describePlan(&sp))
		}
		if sp.WaitReason != WaitCanary || !sp.Wake.Equal(t0.Add(time.Minute)) || sp.Converged() {
			t.Fatalf("want to wait a minute for the canary: wake %s, %s", sp.Wake, sp.Waiting)
		}
	})
	t.Run("observing: nothing changes before the window ends", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 30*time.Second, "")),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling))), Counts: bad})
		if sp.Acts() || sp.WaitReason != WaitCanary || sp.Judgement != nil {
			t.Fatalf("want the canary observed, untouched: %s", describePlan(&sp))
		}
	})
	t.Run("a canary observed longer than progressDeadline is no stalled rollout", func(t *testing.T) {
		spec := canaryOf(3, 1, 10, schema.Rolling)
		spec.Rollout.ProgressDeadline = 10 * time.Second
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 30*time.Second, "")),
			Desired: web(desire("v2", spec)), Counts: good})
		if sp.Failed != "" || sp.WaitReason != WaitCanary {
			t.Fatalf("want the canary still observed: %s", describePlan(&sp))
		}
	})
	t.Run("a good canary is promoted", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 61*time.Second, "")),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling))), Counts: good})
		if sp.Judgement == nil || sp.Judgement.Verdict != Promote || sp.Failed != "" {
			t.Fatalf("want a promotion: %s", describePlan(&sp))
		}
		if sp.Traffic == nil || sp.Traffic.Canary == nil || sp.Traffic.Canary.Verdict != Promote {
			t.Fatalf("the promotion is not recorded: %+v", sp.Traffic)
		}
	})
	t.Run("a bad canary fails the rollout", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 61*time.Second, "")),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling))), Counts: bad})
		if sp.Judgement == nil || sp.Judgement.Verdict != Rollback || !strings.HasPrefix(sp.Failed, "canary: canary error rate 50.0%") {
			t.Fatalf("want the rollout failed by the canary: %s", describePlan(&sp))
		}
	})
	t.Run("no counts: insufficient traffic decides", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 61*time.Second, "")),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling)))})
		if sp.Judgement == nil || sp.Judgement.Finding != FindingInsufficient || sp.Failed == "" {
			t.Fatalf("want a rollback for insufficient traffic: %s", describePlan(&sp))
		}
	})
	t.Run("a promoted canary goes on as then: rolling", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 2*time.Minute, Promote)),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling)))})
		if len(sp.Step.Retire) != 1 || sp.Step.Retire[0].Reason != ReasonReplaced {
			t.Fatalf("want the rolling rollout to go on: %s", describePlan(&sp))
		}
	})
	t.Run("a promoted canary goes on as then: blue-green", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, from3+"; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 2*time.Minute, Promote)),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.BlueGreen)))})
		if len(sp.Step.Provision) != 2 || len(sp.Step.Retire) != 0 {
			t.Fatalf("want the rest of the new generation provisioned: %s", describePlan(&sp))
		}
	})
	t.Run("the canary's record goes once it serves", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v2@2m d:h e:h f:h"),
			Traffic: webTraffic(withCanary(route("v2", "d e f"), "v2", 5*time.Minute, Promote)),
			Desired: web(desire("v2", canaryOf(3, 1, 10, schema.Rolling)))})
		if sp.Traffic == nil || sp.Traffic.Canary != nil {
			t.Fatalf("the canary record stays: %+v", sp.Traffic)
		}
	})
}

func TestCanaryWeights(t *testing.T) {
	for _, c := range []struct {
		weight, canaries, old int
	}{{10, 1, 3}, {10, 2, 5}, {50, 1, 1}, {1, 1, 9}, {100, 1, 2}} {
		tr := Traffic{Canary: &CanaryState{Hash: "v2", Weight: c.weight}}
		var bs []targets.Backend
		for range c.canaries {
			bs = append(bs, targets.Backend{Generation: "v2"})
		}
		for range c.old {
			bs = append(bs, targets.Backend{Generation: "v1"})
		}
		canaryWeights(tr, bs)
		var wc, total int
		for _, b := range bs {
			total += b.Weight
			if b.Generation == "v2" {
				wc += b.Weight
			}
			if b.Weight <= 0 {
				t.Fatalf("weight %d: a backend weighs %d", c.weight, b.Weight)
			}
		}
		share := 100 * float64(wc) / float64(total)
		if d := share - float64(c.weight); d > 1 || d < -1 {
			t.Errorf("weight %d%% with %d canaries and %d old: the canaries get %.1f%%", c.weight, c.canaries, c.old, share)
		}
	}
}

func TestPlanVerify(t *testing.T) {
	spec := func() *schema.Service {
		s := blueGreen(3, keep(time.Hour))
		s.Rollout.VerifyFor, s.Rollout.MaxErrorRate = time.Minute, 0.05
		return s
	}
	v2v1 := "web v1 a:h b:h c:h; web v2@5m d:h e:h f:h"
	watched := func(ago time.Duration) map[string]Traffic {
		tr := withPrevious(route("v2", "d e f"), "v1", ago)
		tr.Verify = &VerifyState{Hash: "v2", Since: t0.Add(-ago)}
		return webTraffic(tr)
	}
	failing := map[string]map[string]targets.Counts{"web": {"v2": counts(200, 100, time.Millisecond)}}
	healthy := map[string]map[string]targets.Counts{"web": {"v2": counts(200, 1, time.Millisecond)}}

	t.Run("the switch starts the watch", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@5m d:h e:h f:h"),
			Traffic: webTraffic(route("v1", "a b c")), Desired: web(desire("v2", spec()))})
		if sp.Traffic == nil || sp.Traffic.Active != "v2" || sp.Traffic.Verify == nil || !sp.Traffic.Verify.Since.Equal(t0) {
			t.Fatalf("want v2 active and under watch: %+v", sp.Traffic)
		}
	})
	t.Run("within the window: waits, not converged", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, v2v1), Traffic: watched(10 * time.Second),
			Desired: web(desire("v2", spec())), Counts: healthy})
		if sp.Converged() || sp.WaitReason != WaitVerify || !sp.Wake.Equal(t0.Add(50*time.Second)) {
			t.Fatalf("want verification waiting: %s (wake %s)", describePlan(&sp), sp.Wake)
		}
	})
	t.Run("an error rate above the limit fails it", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, v2v1), Traffic: watched(10 * time.Second),
			Desired: web(desire("v2", spec())), Counts: failing})
		if sp.Judgement == nil || sp.Judgement.Verdict != Fail || !strings.HasPrefix(sp.Failed, "verification: error rate 50.0%") {
			t.Fatalf("want verification failed: %s", describePlan(&sp))
		}
	})
	t.Run("an instance that exits fails it", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@5m d:d e:h f:h"), Traffic: watched(10 * time.Second),
			Desired: web(desire("v2", spec())), Counts: healthy})
		if sp.Judgement == nil || sp.Judgement.Finding != FindingInstance || sp.Failed == "" {
			t.Fatalf("want verification failed by the instance: %s", describePlan(&sp))
		}
	})
	t.Run("after the window: passed, the record goes", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, v2v1), Traffic: watched(2 * time.Minute),
			Desired: web(desire("v2", spec())), Counts: healthy})
		if sp.Failed != "" || sp.Traffic == nil || sp.Traffic.Verify != nil || sp.Judgement == nil || sp.Judgement.Verdict != Pass {
			t.Fatalf("want the watch over: %s %+v", describePlan(&sp), sp.Traffic)
		}
	})
	t.Run("after the window: the whole window's error rate still decides", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, v2v1), Traffic: watched(2 * time.Minute),
			Desired: web(desire("v2", spec())), Counts: failing})
		if sp.Failed == "" {
			t.Fatalf("want verification failed: %s", describePlan(&sp))
		}
	})
	t.Run("a verified generation with no record is converged", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, v2v1), Traffic: webTraffic(withPrevious(route("v2", "d e f"), "v1", 2*time.Minute)),
			Desired: web(desire("v2", spec())), Counts: failing})
		if !sp.Converged() {
			t.Fatalf("want converged: %s", describePlan(&sp))
		}
	})
	t.Run("the rollback switches back to the warm generation at once", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, v2v1), Traffic: watched(10 * time.Second),
			Desired: web(rollbackTo("v1", spec()))})
		if sp.Traffic == nil || sp.Traffic.Active != "v1" || strings.Join(sp.Traffic.Instances, " ") != "a b c" || len(sp.Step.Provision) != 0 {
			t.Fatalf("want an instant switch back to v1: %s", describePlan(&sp))
		}
	})
}

func TestPlanPause(t *testing.T) {
	pausedRolling := rolling(3, "1", "0")
	pausedRolling.Rollout.Pause = true
	promote := map[string]Decision{"web": {Fleet: testFleet, Service: "web", Action: ActionPromote}}
	abort := map[string]Decision{"web": {Fleet: testFleet, Service: "web", Action: ActionAbort, By: "ana"}}

	t.Run("rolling pauses after its first batch", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@1m d:h"), Traffic: webTraffic(route("v1", "a b c d")),
			Desired: web(desire("v2", pausedRolling))})
		if sp.Paused == "" || !sp.Step.Empty() || sp.Converged() || !sp.Settled() {
			t.Fatalf("want paused after the first batch, settled: %s", describePlan(&sp))
		}
	})
	t.Run("the first batch is made before the pause", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h"), Traffic: webTraffic(route("v1", "a b c")),
			Desired: web(desire("v2", pausedRolling))})
		if sp.Paused != "" || len(sp.Step.Provision) != 1 {
			t.Fatalf("want the first batch provisioned: %s", describePlan(&sp))
		}
	})
	t.Run("promoted, the rolling rollout goes on", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@1m d:h"), Traffic: webTraffic(route("v1", "a b c d")),
			Desired: web(desire("v2", pausedRolling)), Decisions: promote})
		if sp.Paused != "" || len(sp.Step.Retire) != 1 {
			t.Fatalf("want the rollout to go on: %s", describePlan(&sp))
		}
	})
	t.Run("aborted, the rollout fails", func(t *testing.T) {
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@1m d:h"), Traffic: webTraffic(route("v1", "a b c d")),
			Desired: web(desire("v2", pausedRolling)), Decisions: abort})
		if sp.Failed != "aborted by ana (molt abort)" {
			t.Fatalf("want the rollout aborted: %s", describePlan(&sp))
		}
	})
	t.Run("a decision about another generation does not count", func(t *testing.T) {
		other := map[string]Decision{"web": {Fleet: testFleet, Service: "web", Action: ActionAbort, Hash: "v9"}}
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@1m d:h"), Traffic: webTraffic(route("v1", "a b c d")),
			Desired: web(desire("v2", pausedRolling)), Decisions: other})
		if sp.Failed != "" || sp.Paused == "" {
			t.Fatalf("want paused, not aborted: %s", describePlan(&sp))
		}
	})
	t.Run("a canary pauses once promoted", func(t *testing.T) {
		spec := canaryOf(3, 1, 10, schema.Rolling)
		spec.Rollout.Pause = true
		sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@2m d:h"),
			Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 2*time.Minute, Promote)),
			Desired: web(desire("v2", spec))})
		if !strings.HasPrefix(sp.Paused, "paused after the canary was promoted") || !sp.Step.Empty() {
			t.Fatalf("want paused after the canary: %s", describePlan(&sp))
		}
	})
	t.Run("a first rollout never pauses", func(t *testing.T) {
		sp := planOne(t, Input{Desired: web(desire("v1", pausedRolling))})
		if sp.Paused != "" || len(sp.Step.Provision) != 3 {
			t.Fatalf("want the first rollout made: %s", describePlan(&sp))
		}
	})
}

// A new rollout supersedes a canary still in traffic: the old canary goes
// at once, and only the serving generation shares traffic with the new one.
func TestPlanCanarySupersedesCanary(t *testing.T) {
	sp := planOne(t, Input{Instances: instances(t, "web v1 a:h b:h c:h; web v2@2m d:h; web v3@1m e:h"),
		Traffic: webTraffic(withCanary(route("v1", "a b c d"), "v2", 30*time.Second, "")),
		Desired: web(desire("v3", canaryOf(3, 1, 10, schema.Rolling)))})
	if got := retireSummary(sp.Step.Retire); got != "Superseded=1" || sp.Step.Retire[0].Instance != "d" {
		t.Fatalf("want the v2 canary retired: %s", describePlan(&sp))
	}
	if sp.Traffic == nil || strings.Join(sp.Traffic.Instances, " ") != "a b c e" || sp.Traffic.Canary == nil || sp.Traffic.Canary.Hash != "v3" {
		t.Fatalf("want v1 and the v3 canary in traffic: %+v", sp.Traffic)
	}
}
