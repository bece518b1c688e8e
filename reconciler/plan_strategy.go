package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/molt-dev/molt/schema"
)

// rolling replaces the serving instances in batches bounded by maxSurge and
// maxUnavailable; it is also the steady state of every strategy (scale up
// and down, replace dead and unhealthy instances, recycle).
//
// Its sets: fresh (the desired generation, ready or starting), old (other
// generations still in traffic) and sick (unhealthy instances of either:
// out of traffic at once, kept alive until their replacement is healthy
// unless no replacement can be made while they live).
func (s *servicePlanner) rolling(inRollout bool) {
	spec := s.desired.Spec
	h := s.desired.Hash
	r := spec.Replicas
	surge := spec.Rollout.MaxSurge.Resolve(r, true)
	unavail := spec.Rollout.MaxUnavailable.Resolve(r, false)
	if surge == 0 && unavail == 0 {
		surge = 1
	}
	minHealthy := spec.Rollout.MinHealthyFor
	if s.desired.Rollback {
		minHealthy = 0
	}
	stable := func(o *Observed) bool { return s.stableFor(o, minHealthy) }
	rollout := h != s.traffic.Active && !s.desired.Rollback

	var fresh, old, sick []*Observed
	for _, o := range s.alive(desired) {
		if o.Health == Unhealthy {
			sick = append(sick, o)
		} else {
			fresh = append(fresh, o)
		}
	}
	for _, o := range s.alive(serving, warm, expired, stray) {
		switch {
		case !s.routed[o.ID]: // warm, out of traffic: kept (see converge)
		case o.Health == Unhealthy:
			sick = append(sick, o)
		default:
			old = append(old, o)
		}
	}

	// Replacements outside rollouts: drifted instances, instances whose
	// liveness check fails, and instances older than recycle.maxAge (inside
	// its window) are replaced one at a time, a new one first.
	var over []*Observed
	why := map[string]Reason{}
	detail := map[string]string{}
	if !inRollout {
		for _, o := range fresh {
			switch {
			case o.Drift != "":
				over, why[o.ID], detail[o.ID] = append(over, o), ReasonDrift, o.Drift
			case o.LivenessFailed:
				over, why[o.ID] = append(over, o), ReasonLivenessFailed
			}
		}
		if rc := spec.Recycle; rc != nil && rc.MaxAge > 0 && windowOpen(rc.Window, s.now) {
			for _, o := range fresh {
				if why[o.ID] == "" && s.now.Sub(o.Labels.CreatedAt) > rc.MaxAge {
					over, why[o.ID] = append(over, o), ReasonRecycle
				}
			}
		}
	}
	isOver := func(o *Observed) bool { return why[o.ID] != "" }
	rebalancing := "" // what a rebalance across engines waits for

	if len(fresh) > r && len(over) > 0 {
		// A replacement is in flight: once every younger instance is
		// proven, the oldest over-age instance goes.
		proven := true
		for _, o := range fresh {
			if !isOver(o) && !stable(o) {
				proven = false
			}
		}
		if proven {
			s.retire(over[0], why[over[0].ID], detail[over[0].ID])
			fresh = slices.DeleteFunc(fresh, func(x *Observed) bool { return x.ID == over[0].ID })
			over = over[1:]
		} else {
			s.wait(WaitReplacement, fmt.Sprintf("waiting for the replacement of %s (%s) to be healthy", over[0].ID, why[over[0].ID].Text()))
		}
	} else if len(fresh) > r && len(s.engines()) > 1 {
		// Scale down keeping the spread over the engines (placement.go).
		var surplus []*Observed
		fresh, surplus, rebalancing = s.keepSpread(fresh, r, r+surge, stable)
		for _, o := range surplus {
			s.retire(o, ReasonScaleDown, "from engine "+o.Engine)
		}
	} else if len(fresh) > r {
		// Scale down the desired generation: keep the instances in
		// traffic, then the healthy ones, then the oldest.
		sort.SliceStable(fresh, func(i, j int) bool {
			a, b := fresh[i], fresh[j]
			if s.routed[a.ID] != s.routed[b.ID] {
				return s.routed[a.ID]
			}
			if (a.Health == Healthy) != (b.Health == Healthy) {
				return a.Health == Healthy
			}
			return a.Labels.CreatedAt.Before(b.Labels.CreatedAt)
		})
		for _, o := range fresh[r:] {
			s.retire(o, ReasonScaleDown, "")
		}
		fresh = fresh[:r]
	}

	// Available: routed old instances count until proven unhealthy, new
	// ones once stable.
	available := len(old)
	for _, o := range fresh {
		if stable(o) {
			available++
		}
	}
	floor := r - unavail

	// Sick instances are out of traffic already; each goes once its
	// replacement is healthy, or at once when no replacement can be made
	// while it lives.
	total := len(fresh) + len(old) + len(sick)
	var kept []*Observed
	for _, o := range sick {
		switch {
		case available >= r:
			s.retire(o, ReasonUnhealthy, "replaced")
			total--
		case r-len(fresh) > 0 && total >= r+surge:
			s.retire(o, ReasonUnhealthy, "")
			total--
		default:
			kept = append(kept, o)
		}
	}
	sick = kept

	// With rollout.pause, the rollout stops once its first batch is in
	// traffic and proven, until it is promoted.
	if rollout && s.paused() && len(old) > 0 && available > len(old) {
		route := ids(old)
		for _, o := range fresh {
			if o.Health == Healthy {
				route = append(route, o.ID)
			}
		}
		next := s.traffic
		next.Instances = route
		s.pause("after the first batch")
		s.out.Provision = max(0, r-len(fresh))
		s.setNext(next)
		return
	}

	// Take old instances out of traffic (and retire them) while the floor
	// allows, the least proven first: not healthy (yet), then not of the
	// active generation (an interrupted rollout's), then the oldest.
	sort.SliceStable(old, func(i, j int) bool {
		a, b := old[i], old[j]
		if (a.Health == Healthy) != (b.Health == Healthy) {
			return b.Health == Healthy
		}
		return a.Labels.SpecHash != s.traffic.Active && b.Labels.SpecHash == s.traffic.Active
	})
	removed := 0
	for _, o := range old {
		if removed >= available-floor {
			break
		}
		removed++
		s.retire(o, ReasonReplaced, "")
	}
	old = old[removed:]
	total -= removed

	// Provision up to replicas, bounded by the surge.
	want := min(r-len(fresh), r+surge-total)
	if want <= 0 && len(over) > 0 && len(fresh) == r && len(old) == 0 {
		switch {
		case total < r+surge:
			s.provision(1, ReasonReplacement, fmt.Sprintf("for %s (%s)", over[0].ID, why[over[0].ID].Text()), false)
		case available-1 >= floor:
			s.retire(over[0], why[over[0].ID], detail[over[0].ID])
		}
	}
	if want > 0 {
		reason := ReasonScaleUp
		switch {
		case rollout:
			reason = ReasonRollout
		case len(sick) > 0 || len(s.sets[dead]) > 0:
			reason = ReasonReplacement
		}
		s.provision(want, reason, "", rollout)
	}
	if want <= 0 && !rollout && len(over) == 0 && len(old) == 0 && len(sick) == 0 &&
		len(fresh) == r && total < r+surge {
		s.rebalance(fresh)
	}
	s.out.Provision = max(0, r-len(fresh))

	// Route: the old instances still serving, plus every healthy (or already
	// routed) instance of the desired generation.
	route := ids(old)
	ready := 0
	for _, o := range fresh {
		if s.retiring[o.ID] {
			continue
		}
		if o.Health == Healthy || s.routed[o.ID] {
			route = append(route, o.ID)
			if o.Health == Healthy {
				ready++
			}
		}
	}
	next := s.traffic
	next.Instances = route
	if len(old) == 0 && len(fresh) == r && ready == r && len(sick) == 0 {
		if next.Active != h && !(s.desired.Rollback && r == 0) {
			// (A failed first rollout rolls back to nothing: the failed
			// generation never becomes the active one.)
			if next.Active != "" && s.keepFor() > 0 {
				next.Previous, next.PreviousSince = next.Active, s.now.UTC()
			} else {
				next.Previous, next.PreviousSince = "", time.Time{}
			}
			next.Verify = s.verification(next.Active)
			next.Active = h
		}
	} else if s.out.Step.Empty() {
		switch {
		case rebalancing != "":
			s.wait(WaitReplacement, rebalancing)
		case len(sick) > 0:
			s.wait(WaitReplacement, fmt.Sprintf("waiting for the replacement of unhealthy %s to be healthy (%d/%d healthy)", sick[0].ID, ready, r))
		default:
			msg := fmt.Sprintf("%d/%d instances of %s healthy", ready, r, short(h))
			if len(old) > 0 {
				msg += fmt.Sprintf(", %d old instance(s) still in traffic", len(old))
			}
			if minHealthy > 0 {
				msg += fmt.Sprintf(" (minHealthyFor %s)", minHealthy)
			}
			s.wait(WaitHealthy, msg)
		}
	}
	if next.Active == "" && r == 0 && !s.desired.Rollback {
		next.Active = h
	}
	s.setNext(next)
}

// blueGreen provisions the whole new generation beside the serving one,
// waits until all of it is healthy, then switches traffic in one step; the
// serving generation then stays warm, out of traffic, for keepPrevious.
func (s *servicePlanner) blueGreen() {
	spec := s.desired.Spec
	h := s.desired.Hash
	r := spec.Replicas
	fresh := s.alive(desired)
	for _, o := range fresh[min(r, len(fresh)):] {
		s.retire(o, ReasonScaleDown, "")
	}
	fresh = fresh[:min(r, len(fresh))]
	s.out.Provision = r - len(fresh)

	// Until the switch, the serving generation keeps its healthy
	// instances in traffic; an unhealthy one leaves traffic at once and
	// stays until the switch (the new generation replaces it).
	next := s.traffic
	next.Instances = nil
	for _, id := range s.traffic.Instances {
		if o, ok := s.find(id); ok && s.classOf(o) != dead && o.Health != Unhealthy && !s.retiring[id] {
			next.Instances = append(next.Instances, id)
		}
	}
	if len(fresh) < r {
		s.provision(r-len(fresh), ReasonRollout, "", true)
		s.wait(WaitHealthy, fmt.Sprintf("provisioning the new generation %s", short(h)))
		s.setNext(next)
		return
	}
	ready := 0
	for _, o := range fresh {
		if s.stableFor(o, spec.Rollout.MinHealthyFor) {
			ready++
		}
	}
	if ready < r {
		s.wait(WaitHealthy, fmt.Sprintf("%d/%d instances of %s healthy", ready, r, short(h)))
		s.setNext(next)
		return
	}
	if s.paused() {
		s.pause("before the switch")
		s.setNext(next)
		return
	}
	switched := Traffic{Active: h, Instances: ids(fresh), Verify: s.verification(s.traffic.Active)}
	keep := s.keepFor() > 0
	if keep {
		switched.Previous, switched.PreviousSince = s.traffic.Active, s.now.UTC()
	}
	for _, o := range s.alive(serving) {
		switch {
		case o.Health == Unhealthy:
			s.retire(o, ReasonUnhealthy, "")
		case !keep:
			s.retire(o, ReasonReplaced, "")
		}
	}
	for _, o := range s.alive(warm, expired, stray) {
		s.retire(o, ReasonSuperseded, "")
	}
	s.setNext(switched)
}

// verification is the watch a generation comes under when it replaces
// the generation from (rollout.verifyFor): none for a first rollout (there
// is nothing to go back to) or a rollback.
func (s *servicePlanner) verification(from string) *VerifyState {
	if d := s.desired.Spec.Rollout.VerifyFor; d <= 0 || from == "" || s.desired.Rollback {
		return nil
	}
	return &VerifyState{Hash: s.desired.Hash, Since: s.now.UTC()}
}

// strategyOf is the strategy the service's rollouts follow now (a canary
// rolls out as its `then` strategy until canary analysis exists; a
// rollback is always rolling).
func strategyOf(d Desired) schema.Strategy {
	if d.Rollback {
		return schema.Rolling
	}
	st := d.Spec.Rollout.Strategy
	if st == schema.CanaryRun {
		if c := d.Spec.Rollout.Canary; c != nil && c.Then != "" {
			return c.Then
		}
		return schema.Rolling
	}
	return st
}
