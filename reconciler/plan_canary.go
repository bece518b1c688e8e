package reconciler

import (
	"fmt"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// canary runs the canary stage of a rollout: canary.count instances of the
// new generation are provisioned beside the serving one; once healthy
// (minHealthyFor), they get canary.weight percent of the service's
// requests; after canary.duration the front's counts over that window
// decide (JudgeCanary). A rollback fails the rollout; a promotion is
// recorded and the rollout goes on with canary.then. It reports whether
// the stage is still going (false once promoted).
//
// Its state lives in the traffic record (Traffic.Canary), so a restart of
// molt during the window carries on with the same window.
func (s *servicePlanner) canary() bool {
	spec := s.desired.Spec
	c := spec.Rollout.Canary
	h := s.desired.Hash
	if c == nil {
		return false
	}
	var rec *CanaryState
	if s.traffic.Canary != nil && s.traffic.Canary.Hash == h {
		cp := *s.traffic.Canary
		rec = &cp
	}
	if rec != nil && rec.Verdict == Promote {
		if s.paused() {
			next := s.traffic
			next.Canary = rec
			s.pause("after the canary was promoted")
			s.out.Provision = max(0, spec.Replicas-len(s.alive(desired)))
			s.setNext(next)
			return true
		}
		return false
	}
	n := min(max(c.Count, 1), max(spec.Replicas, 1))
	fresh := s.alive(desired)
	for _, o := range fresh[min(n, len(fresh)):] {
		s.retire(o, ReasonScaleDown, "")
	}
	fresh = fresh[:min(n, len(fresh))]

	// The serving generation keeps its healthy instances in traffic; the
	// instances of any other generation (the canary of a rollout this one
	// supersedes) go at once.
	next := s.traffic
	next.Instances = nil
	for _, id := range s.traffic.Instances {
		o, ok := s.find(id)
		switch {
		case !ok || o.State == targets.Dead || o.Labels.SpecHash == h || s.retiring[id]:
		case o.Labels.SpecHash != s.traffic.Active:
			s.retire(o, ReasonSuperseded, "")
		case o.Health != Unhealthy:
			next.Instances = append(next.Instances, id)
		}
	}
	s.out.Provision = spec.Replicas - len(fresh)
	if len(fresh) < n {
		s.provision(n-len(fresh), ReasonRollout, "canary", true)
		s.wait(WaitHealthy, fmt.Sprintf("provisioning the canary (%d instance(s) of %s)", n, short(h)))
		next.Canary = rec
		s.setNext(next)
		return true
	}
	ready := 0
	for _, o := range fresh {
		if s.stableFor(o, spec.Rollout.MinHealthyFor) {
			ready++
		}
	}
	if ready < n {
		s.wait(WaitHealthy, fmt.Sprintf("%d/%d canary instance(s) of %s healthy", ready, n, short(h)))
		next.Canary = rec
		s.setNext(next)
		return true
	}
	for _, o := range fresh {
		next.Instances = append(next.Instances, o.ID)
	}
	if rec == nil {
		rec = &CanaryState{Hash: h, Weight: c.Weight, Since: s.now.UTC()}
	}
	next.Canary = rec
	end := rec.Since.Add(c.Duration)
	if s.now.Before(end) {
		s.wait(WaitCanary, fmt.Sprintf("canary: %d instance(s) of %s get %d%% of the requests until %s",
			n, short(h), rec.Weight, end.UTC().Format(time.RFC3339)))
		s.wakeAt(end)
		s.setNext(next)
		return true
	}
	j := JudgeCanary(canaryPolicy(c), s.counts[h], s.counts[s.traffic.Active])
	s.out.Judgement = &j
	if j.Verdict != Promote {
		s.out.Failed = "canary: " + j.Message
		return true
	}
	rec.Verdict, rec.Judgement = Promote, &j
	s.out.Notes = append(s.out.Notes, fmt.Sprintf("canary promoted (%s): %s; going on as %s", j.Finding, j.Message, strategyOf(s.desired)))
	s.setNext(next)
	return true
}

// canaryPolicy is what rollout.canary judges by.
func canaryPolicy(c *schema.Canary) CanaryPolicy {
	p := CanaryPolicy{MaxErrorRate: c.MaxErrorRate, MaxLatencyRatio: c.MaxLatencyRatio,
		MinRequests: int64(c.MinRequests), OnInsufficient: Rollback}
	if c.OnInsufficientTraffic == "promote" {
		p.OnInsufficient = Promote
	}
	return p
}

// verifyPolicy is what rollout.verifyFor judges by: rollout.maxErrorRate
// over at least canary.minRequests (50 without a canary) requests.
func verifyPolicy(spec *schema.Service) VerifyPolicy {
	p := VerifyPolicy{MaxErrorRate: spec.Rollout.MaxErrorRate, MinRequests: 50}
	if c := spec.Rollout.Canary; c != nil {
		p.MinRequests = int64(c.MinRequests)
	}
	return p
}

// verify watches the active generation for rollout.verifyFor after its
// rollout: an instance of it that exits or turns unhealthy, or an error
// rate through the front above rollout.maxErrorRate, fails the rollout,
// which then switches back to the warm previous generation (or rolls back
// under the floor). It reports whether the rollout failed; while the
// window lasts the service waits (it is not converged before it passed).
func (s *servicePlanner) verify() bool {
	v := s.traffic.Verify
	if v == nil || v.Hash != s.desired.Hash {
		return false
	}
	end := v.Since.Add(s.desired.Spec.Rollout.VerifyFor)
	if !s.now.Before(end) {
		// The window is over: its whole counts decide once more.
		j := JudgeVerification(verifyPolicy(s.desired.Spec), s.counts[v.Hash], "")
		s.out.Judgement = &j
		if j.Verdict == Fail {
			s.out.Failed = "verification: " + j.Message
			return true
		}
		j.Message = "verified for " + s.desired.Spec.Rollout.VerifyFor.String() + ": " + j.Message
		return false
	}
	failure := ""
	for _, o := range append(s.deadOf(v.Hash), s.sets[desired]...) {
		switch {
		case o.State == targets.Dead:
			failure = fmt.Sprintf("instance %s exited (%s)", o.ID, o.Detail)
		case o.Health == Unhealthy:
			failure = fmt.Sprintf("instance %s failed its health check", o.ID)
		}
		if failure != "" {
			break
		}
	}
	j := JudgeVerification(verifyPolicy(s.desired.Spec), s.counts[v.Hash], failure)
	if j.Verdict == Fail {
		s.out.Judgement = &j
		s.out.Failed = "verification: " + j.Message
		return true
	}
	s.wait(WaitVerify, fmt.Sprintf("verifying %s until %s: %s", short(v.Hash), end.UTC().Format(time.RFC3339), j.Message))
	s.wakeAt(end)
	return false
}

// canaryWeights gives each backend of a route its weight while a canary
// is observed: the canary's instances together get its weight percent of
// the requests, the others the rest. Outside that stage every backend
// weighs the same (0).
func canaryWeights(tr Traffic, backends []targets.Backend) {
	c := tr.Canary
	if c == nil || c.Verdict != "" || c.Weight <= 0 {
		return
	}
	nc, no := 0, 0
	for _, b := range backends {
		if b.Generation == c.Hash {
			nc++
		} else {
			no++
		}
	}
	if nc == 0 || no == 0 {
		return
	}
	wc, wo := c.Weight*no, (100-c.Weight)*nc
	if wo <= 0 {
		wc, wo = 100*no*nc, 1 // (the router reads weight 0 as 1)
	}
	for i := range backends {
		if backends[i].Generation == c.Hash {
			backends[i].Weight = wc
		} else {
			backends[i].Weight = wo
		}
	}
}
