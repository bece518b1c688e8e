package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/robfig/cron/v3"
)

// PlanFleet computes what it takes to move the observed fleet to the desired
// state. It is pure: no I/O, no clock (now comes in Input), and the same
// input always gives the same plan.
func PlanFleet(in Input) Plan {
	byService := map[string][]Observed{}
	for _, o := range in.Instances {
		if o.Labels.Fleet != in.Fleet || o.Labels.Service == "" || o.Labels.SpecHash == "" {
			continue // not ours: never touched
		}
		byService[o.Labels.Service] = append(byService[o.Labels.Service], o)
	}
	names := map[string]bool{}
	for n := range in.Desired {
		names[n] = true
	}
	for n := range byService {
		names[n] = true
	}
	for n := range in.Traffic {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	p := Plan{Fleet: in.Fleet, Revision: in.Revision}
	for _, name := range sorted {
		tr, known := in.Traffic[name]
		sp := servicePlanner{
			name:     name,
			now:      in.Now,
			insts:    byService[name],
			traffic:  tr,
			known:    known,
			desired:  in.Desired[name],
			windows:  in.DeployWindows,
			wanted:   hasKey(in.Desired, name),
			retiring: map[string]bool{},
			leaving:  map[string]bool{},
		}
		p.Services = append(p.Services, sp.plan())
	}
	return p
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// servicePlanner holds the working sets of one service's plan.
type servicePlanner struct {
	name    string
	now     time.Time
	insts   []Observed
	traffic Traffic
	known   bool
	desired Desired
	wanted  bool
	windows []schema.Window // the fleet's deploy windows

	out      ServicePlan
	alive    []Observed
	dead     []Observed
	route    map[string]bool // current route, alive instances only
	retiring map[string]bool
	leaving  map[string]bool // leave traffic but stay alive (warm)
}

func (s *servicePlanner) plan() ServicePlan {
	s.out = ServicePlan{Service: s.name, From: s.traffic.Active, To: s.desired.Hash,
		ToRevision: s.desired.Revision, Rollback: s.desired.Rollback}
	for _, o := range s.insts {
		if o.State == targets.Dead {
			s.dead = append(s.dead, o)
		} else {
			s.alive = append(s.alive, o)
		}
	}
	sortInstances(s.alive)
	sortInstances(s.dead)
	if !s.known {
		s.traffic = rebuildTraffic(s.alive)
		s.out.From = s.traffic.Active
	}
	s.route = map[string]bool{}
	for _, id := range s.traffic.Instances {
		s.route[id] = true
	}
	for _, o := range s.alive {
		if o.Labels.SpecHash == s.traffic.Active && s.out.FromRevision == "" {
			s.out.FromRevision = o.Labels.Revision
		}
	}
	for _, o := range s.dead {
		s.retire(o, "exited")
	}

	switch {
	case !s.wanted:
		s.prune()
	case s.desired.Spec == nil:
		s.hold()
	default:
		s.converge()
	}
	s.finish()
	return s.out
}

// prune retires every instance of a service that is no longer desired.
func (s *servicePlanner) prune() {
	for _, o := range s.alive {
		s.retire(o, "service removed")
	}
	s.out.Retire = len(s.insts)
	if s.known || len(s.traffic.Instances) > 0 {
		s.out.Traffic = &Traffic{} // empty: the finish step drops the entry
	}
}

// hold keeps the active generation and retires everything else.
func (s *servicePlanner) hold() {
	s.out.Notes = append(s.out.Notes, "spec of the active generation unavailable: holding it as it is")
	for _, o := range s.alive {
		switch {
		case o.Labels.SpecHash != s.traffic.Active:
			s.retire(o, "not the active generation")
		case o.Health == Unhealthy && s.route[o.ID]:
			s.retire(o, "unhealthy") // never left in traffic
		}
	}
}

func (s *servicePlanner) converge() {
	spec := s.desired.Spec
	h := s.desired.Hash
	s.out.Strategy = spec.Rollout.Strategy
	s.out.Replicas = spec.Replicas
	strategy := spec.Rollout.Strategy
	if strategy == schema.CanaryRun {
		then := schema.Rolling
		if spec.Rollout.Canary != nil && spec.Rollout.Canary.Then != "" {
			then = spec.Rollout.Canary.Then
		}
		s.out.Notes = append(s.out.Notes, fmt.Sprintf("canary analysis is not implemented yet: rolling out as %s", then))
		strategy = then
	}
	if s.desired.Rollback {
		strategy = schema.Rolling // a rollback goes straight back, guarded by the floor
		s.out.Notes = append(s.out.Notes, fmt.Sprintf("rolling back from failed revision %s", s.desired.FailedRevision))
	}

	// Revert: the desired generation is the warm previous one.
	if s.traffic.Active != h && s.traffic.Previous == h && s.switchBack() {
		return
	}

	inRollout := s.traffic.Active != h
	for _, o := range s.alive {
		if o.Labels.SpecHash != h && s.route[o.ID] {
			inRollout = true
		}
	}
	if inRollout && !s.desired.Rollback && !s.started() {
		// Deploy windows gate the start of a rollout; one under way
		// finishes, and rollbacks and reverts are never held back.
		windows := append(slices.Clone(s.windows), spec.DeployWindows...)
		if open, until := deployWindow(windows, s.now); !open {
			s.out.Deferred = until
			s.out.Provision = spec.Replicas
			s.out.Notes = append(s.out.Notes, fmt.Sprintf("outside the deploy window: the rollout waits until %s", until.UTC().Format(time.RFC3339)))
			return
		}
	}
	if inRollout && !s.desired.Rollback {
		if reason := s.failure(); reason != "" {
			s.out.Failed = reason
			return
		}
	}

	// Instances that belong to no generation worth keeping go now.
	warmHash := ""
	if s.traffic.Active == h && s.traffic.Previous != "" && s.traffic.Previous != h {
		if s.now.Before(s.traffic.PreviousSince.Add(spec.Rollout.KeepPrevious)) {
			warmHash = s.traffic.Previous
		}
	}
	for _, o := range s.alive {
		hh := o.Labels.SpecHash
		switch {
		case hh == h, s.route[o.ID]:
		case hh == warmHash:
		case hh == s.traffic.Active && spec.Rollout.KeepPrevious > 0:
			// the serving generation, kept warm while it is replaced
		case hh == s.traffic.Previous && s.traffic.Active == h:
			s.retire(o, "previous generation expired")
		default:
			s.retire(o, "superseded")
		}
	}

	if strategy == schema.BlueGreen && s.traffic.Active != h && s.traffic.Active != "" {
		s.blueGreen()
		return
	}
	s.rolling(inRollout)
}

// switchBack moves traffic to the warm previous generation at once when it
// has enough healthy instances. It reports whether it did.
func (s *servicePlanner) switchBack() bool {
	spec := s.desired.Spec
	var ready []Observed
	for _, o := range s.alive {
		if s.warmPrevious(o) && o.Health == Healthy {
			ready = append(ready, o)
		}
	}
	if len(ready) < spec.Replicas || len(ready) == 0 {
		return false
	}
	s.out.Notes = append(s.out.Notes, "revert: switching back to the warm previous generation")
	next := Traffic{Active: s.desired.Hash, Instances: ids(ready[:spec.Replicas])}
	if spec.Rollout.KeepPrevious > 0 {
		next.Previous, next.PreviousSince = s.traffic.Active, s.now
	}
	for _, o := range s.alive {
		switch {
		case slices.Contains(next.Instances, o.ID):
		case o.Labels.SpecHash == s.desired.Hash:
			s.retire(o, "scale down")
		case o.Labels.SpecHash == s.traffic.Active && spec.Rollout.KeepPrevious > 0:
		default:
			s.retire(o, "superseded")
		}
	}
	s.out.Traffic = &next
	return true
}

// warmPrevious reports whether o is an instance of the previous generation
// that was already there when it left traffic (not one provisioned since,
// which must pass the strategy's checks like any new instance).
func (s *servicePlanner) warmPrevious(o Observed) bool {
	return o.Labels.SpecHash == s.traffic.Previous && !o.Labels.CreatedAt.After(s.traffic.PreviousSince)
}

// failure says why the rollout to the desired generation failed, or "".
func (s *servicePlanner) failure() string {
	h := s.desired.Hash
	var start time.Time
	for _, o := range s.insts {
		if o.Labels.SpecHash != h {
			continue
		}
		if s.warmPrevious(o) {
			// A warm instance of the generation reverted to is no part of
			// this rollout: its age says nothing of the deadline, and its
			// death is a replacement, not a failure.
			continue
		}
		if start.IsZero() || o.Labels.CreatedAt.Before(start) {
			start = o.Labels.CreatedAt
		}
		if o.State == targets.Dead {
			return fmt.Sprintf("instance %s exited (%s)", o.ID, o.Detail)
		}
		if o.Health == Unhealthy {
			return fmt.Sprintf("instance %s failed its health check", o.ID)
		}
	}
	if d := s.desired.Spec.Rollout.ProgressDeadline; !start.IsZero() && d > 0 && s.now.Sub(start) > d {
		return fmt.Sprintf("progress deadline of %s exceeded", d)
	}
	return ""
}

// rolling replaces the serving instances in batches bounded by maxSurge and
// maxUnavailable; it is also the steady state of every strategy (scale up
// and down, replace dead and unhealthy instances).
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

	var fresh, old []Observed // desired generation; others still in traffic
	for _, o := range s.alive {
		switch {
		case s.retiring[o.ID]:
		case o.Labels.SpecHash == h:
			if o.Health == Unhealthy {
				s.retire(o, "unhealthy")
				continue
			}
			fresh = append(fresh, o)
		case s.route[o.ID]:
			if o.Health == Unhealthy {
				s.retire(o, "unhealthy")
				continue
			}
			old = append(old, o)
		}
	}

	stable := func(o Observed) bool {
		return o.Health == Healthy && !o.HealthySince.After(s.now.Add(-minHealthy))
	}
	// Replacements: drifted instances, instances whose liveness check
	// fails, and instances older than recycle.maxAge (inside its window)
	// are replaced one at a time, a new one first, outside rollouts.
	var over []Observed
	why := map[string]string{}
	if !inRollout {
		for _, o := range fresh {
			switch {
			case o.Drift != "":
				over = append(over, o)
				why[o.ID] = "drift: " + o.Drift
			case o.LivenessFailed:
				over = append(over, o)
				why[o.ID] = "liveness check failed"
			}
		}
		if rc := spec.Recycle; rc != nil && rc.MaxAge > 0 && windowOpen(rc.Window, s.now) {
			for _, o := range fresh {
				if why[o.ID] == "" && s.now.Sub(o.Labels.CreatedAt) > rc.MaxAge {
					over = append(over, o)
					why[o.ID] = "recycle: older than maxAge"
				}
			}
		}
	}

	if len(fresh) > r && len(over) > 0 {
		// A replacement is in flight: once every younger instance is
		// proven, the oldest over-age instance goes.
		proven := true
		for _, o := range fresh {
			if !slices.ContainsFunc(over, func(x Observed) bool { return x.ID == o.ID }) && !stable(o) {
				proven = false
			}
		}
		if proven {
			s.retire(over[0], why[over[0].ID])
			fresh = slices.DeleteFunc(fresh, func(x Observed) bool { return x.ID == over[0].ID })
			over = over[1:]
		} else {
			s.out.Waiting = fmt.Sprintf("waiting for the replacement of %s (%s) to be healthy", over[0].ID, why[over[0].ID])
		}
	} else if len(fresh) > r {
		// Scale down the desired generation: prefer instances not in
		// traffic, then the least proven.
		sort.SliceStable(fresh, func(i, j int) bool {
			a, b := fresh[i], fresh[j]
			if s.route[a.ID] != s.route[b.ID] {
				return s.route[a.ID]
			}
			return a.Labels.CreatedAt.Before(b.Labels.CreatedAt)
		})
		for _, o := range fresh[r:] {
			s.retire(o, "scale down")
		}
		fresh = fresh[:r]
	}

	available := len(old) // routed old instances count until proven unhealthy
	for _, o := range fresh {
		if stable(o) {
			available++
		}
	}
	floor := r - unavail

	// Take old instances out of traffic while the floor allows, the least
	// proven first: not healthy (yet), then not of the active generation
	// (an interrupted rollout's), then the oldest.
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
		s.leaveTraffic(o, "replaced")
	}
	old = old[removed:]

	// Provision up to replicas, bounded by the surge.
	want := min(r-len(fresh), r+surge-len(fresh)-len(old))
	if want <= 0 && len(over) > 0 && len(fresh) == r && len(old) == 0 {
		switch {
		case surge > 0:
			s.provision(1, "replacing "+over[0].ID+" ("+why[over[0].ID]+")")
		case available-1 >= floor:
			s.retire(over[0], why[over[0].ID])
		}
	}
	if want > 0 {
		reason := "scale up"
		if inRollout {
			reason = "rollout"
		}
		s.provision(want, reason)
	}
	s.out.Provision = max(0, r-len(fresh))

	// Route: the old instances still serving, plus every healthy (or already
	// routed) instance of the desired generation.
	route := ids(old)
	ready := 0
	for _, o := range fresh {
		if o.Health == Healthy || s.route[o.ID] {
			route = append(route, o.ID)
			if o.Health == Healthy {
				ready++
			}
		}
	}
	next := s.traffic
	next.Instances = route
	if len(old) == 0 && len(fresh) == r && ready == r {
		if next.Active != h {
			if next.Active != "" && spec.Rollout.KeepPrevious > 0 {
				next.Previous, next.PreviousSince = next.Active, s.now
			} else {
				next.Previous, next.PreviousSince = "", time.Time{}
			}
			next.Active = h
		}
	} else if s.out.Step.Empty() {
		s.out.Waiting = fmt.Sprintf("%d/%d instances of %s healthy", ready, r, short(h))
		if len(old) > 0 {
			s.out.Waiting += fmt.Sprintf(", %d old instance(s) still in traffic", len(old))
		}
		if minHealthy > 0 {
			s.out.Waiting += fmt.Sprintf(" (minHealthyFor %s)", minHealthy)
		}
	}
	if next.Active == "" && r == 0 && !s.desired.Rollback {
		next.Active = h
	}
	s.setTraffic(next)
}

// blueGreen provisions the whole new generation beside the serving one,
// waits until all of it is healthy, then switches traffic in one step.
func (s *servicePlanner) blueGreen() {
	spec := s.desired.Spec
	h := s.desired.Hash
	r := spec.Replicas
	var fresh []Observed
	for _, o := range s.alive {
		switch {
		case s.retiring[o.ID]:
		case o.Labels.SpecHash == h:
			fresh = append(fresh, o)
		case s.route[o.ID] && o.Health == Unhealthy:
			s.retire(o, "unhealthy") // the serving generation keeps no unhealthy instance in traffic
		}
	}
	for _, o := range fresh[min(r, len(fresh)):] {
		s.retire(o, "scale down")
	}
	fresh = fresh[:min(r, len(fresh))]
	s.out.Provision = r - len(fresh)
	if len(fresh) < r {
		s.provision(r-len(fresh), "rollout")
		s.out.Waiting = fmt.Sprintf("provisioning the new generation %s", short(h))
		return
	}
	ready := 0
	for _, o := range fresh {
		if o.Health == Healthy && !o.HealthySince.After(s.now.Add(-spec.Rollout.MinHealthyFor)) {
			ready++
		}
	}
	if ready < r {
		s.out.Waiting = fmt.Sprintf("%d/%d instances of %s healthy", ready, r, short(h))
		return
	}
	next := Traffic{Active: h, Instances: ids(fresh)}
	if spec.Rollout.KeepPrevious > 0 && s.traffic.Active != "" {
		next.Previous, next.PreviousSince = s.traffic.Active, s.now
	}
	for _, o := range s.alive {
		if s.route[o.ID] && o.Labels.SpecHash != h {
			if o.Labels.SpecHash == s.traffic.Active && spec.Rollout.KeepPrevious > 0 {
				continue // leaves traffic, kept warm
			}
			s.retire(o, "replaced")
		}
	}
	s.setTraffic(next)
}

// leaveTraffic takes an instance out of traffic: kept warm when it belongs
// to the active generation and keepPrevious asks for it, retired otherwise.
func (s *servicePlanner) leaveTraffic(o Observed, reason string) {
	if o.Labels.SpecHash == s.traffic.Active && s.desired.Spec.Rollout.KeepPrevious > 0 && !s.desired.Rollback {
		s.leaving[o.ID] = true // out of the route; the instance stays
		return
	}
	s.retire(o, reason)
}

func (s *servicePlanner) retire(o Observed, reason string) {
	if s.retiring[o.ID] {
		return
	}
	s.retiring[o.ID] = true
	s.out.Step.Retire = append(s.out.Step.Retire, Retire{
		Instance: o.ID, SpecHash: o.Labels.SpecHash, Reason: reason, Drain: s.route[o.ID] && o.State != targets.Dead,
	})
}

func (s *servicePlanner) provision(n int, reason string) {
	for range n {
		s.out.Step.Provision = append(s.out.Step.Provision, Provision{Reason: reason})
	}
}

// setTraffic records the new routing state when it differs from the current.
func (s *servicePlanner) setTraffic(next Traffic) {
	kept := next.Instances[:0:0]
	for _, id := range next.Instances {
		if !s.retiring[id] && !s.leaving[id] {
			kept = append(kept, id)
		}
	}
	sort.Strings(kept)
	next.Instances = kept
	if !s.known || !sameTraffic(next, s.traffic) {
		s.out.Traffic = &next
	}
}

// finish fills in the projected totals and drops retired instances from
// the traffic of a plan that changes nothing else.
func (s *servicePlanner) finish() {
	warm, retire := 0, 0
	for _, o := range s.insts {
		switch {
		case s.retiring[o.ID]:
			retire++
		case s.wanted && o.Labels.SpecHash == s.desired.Hash:
		case s.wanted && s.desired.Spec == nil && o.Labels.SpecHash == s.traffic.Active: // held
		case s.keepsWarm(o):
			warm++
		default:
			retire++
		}
	}
	s.out.Warm = warm
	if s.out.Retire < retire {
		s.out.Retire = retire
	}
	if s.out.Retire < len(s.out.Step.Retire) {
		s.out.Retire = len(s.out.Step.Retire)
	}
	if s.out.Provision < len(s.out.Step.Provision) {
		s.out.Provision = len(s.out.Step.Provision)
	}
	if s.out.Traffic == nil && len(s.out.Step.Retire) > 0 {
		// A retire of a routed instance needs a route without it.
		for _, r := range s.out.Step.Retire {
			if s.route[r.Instance] {
				next := s.traffic
				next.Instances = nil
				for _, id := range s.traffic.Instances {
					if !s.retiring[id] {
						next.Instances = append(next.Instances, id)
					}
				}
				s.out.Traffic = &next
				break
			}
		}
	}
	if s.out.Traffic == nil && !s.known && s.wanted {
		t := s.traffic // persist the rebuilt record
		s.out.Traffic = &t
	}
	if s.out.Failed != "" {
		s.out.Step = Step{}
		s.out.Traffic = nil
	}
}

// rebuildTraffic reconstructs a lost routing record from the live fleet:
// every instance not known to be unhealthy is taken to be in traffic (right
// after a restart the prober has no verdict yet, and an empty route would
// supersede the serving generation), and the generation with the most such
// instances is the active one.
func rebuildTraffic(alive []Observed) Traffic {
	count := map[string]int{}
	var t Traffic
	for _, o := range alive {
		if o.Health != Unhealthy {
			count[o.Labels.SpecHash]++
			t.Instances = append(t.Instances, o.ID)
		}
	}
	best := 0
	for h, n := range count {
		if n > best || (n == best && h < t.Active) {
			t.Active, best = h, n
		}
	}
	sort.Strings(t.Instances)
	return t
}

func sameTraffic(a, b Traffic) bool {
	return a.Active == b.Active && a.Previous == b.Previous &&
		a.PreviousSince.Equal(b.PreviousSince) && slices.Equal(a.Instances, b.Instances)
}

func sortInstances(os []Observed) {
	sort.Slice(os, func(i, j int) bool {
		if !os[i].Labels.CreatedAt.Equal(os[j].Labels.CreatedAt) {
			return os[i].Labels.CreatedAt.Before(os[j].Labels.CreatedAt)
		}
		return os[i].ID < os[j].ID
	})
}

func ids(os []Observed) []string {
	out := make([]string, 0, len(os))
	for _, o := range os {
		out = append(out, o.ID)
	}
	return out
}

func short(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// keepsWarm reports whether an instance outside the desired generation is
// kept alive out of traffic (the previous generation, for keepPrevious).
func (s *servicePlanner) keepsWarm(o Observed) bool {
	spec := s.desired.Spec
	if !s.wanted || spec == nil || spec.Rollout.KeepPrevious <= 0 || s.desired.Rollback {
		return false
	}
	h := o.Labels.SpecHash
	if h == s.traffic.Active {
		return true
	}
	return h == s.traffic.Previous && s.now.Before(s.traffic.PreviousSince.Add(spec.Rollout.KeepPrevious))
}

// windowOpen reports whether now falls in a cron window: the window is open
// during every minute the cron spec matches (e.g. "* 2-4 * * *" is open
// from 02:00 to 04:59). An empty window is always open; a spec that does
// not parse (the schema refuses those) is never open.
func windowOpen(spec string, now time.Time) bool {
	if spec == "" {
		return true
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return false
	}
	minute := now.Truncate(time.Minute)
	return sched.Next(minute.Add(-time.Second)).Equal(minute)
}

// started reports whether the rollout to the desired generation has begun:
// an instance of it exists (or existed: a dead one is still listed).
func (s *servicePlanner) started() bool {
	for _, o := range s.insts {
		if o.Labels.SpecHash == s.desired.Hash && !s.warmPrevious(o) {
			return true
		}
	}
	return false
}
