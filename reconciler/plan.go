package reconciler

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/robfig/cron/v3"
)

// PlanFleet computes what it takes to move the observed fleet to the desired
// state. It is pure: no I/O, no clock (now comes in Input), and the same
// input always gives the same plan.
//
// Each service is planned alone: its instances are classified once into
// named sets (see class), and each stage of the strategy is a function of
// those sets that adds provisions and retires to the step and decides the
// next traffic record; the route at the front is then built from that
// record, so that what `molt plan` prints is what the executor does.
func PlanFleet(in Input) Plan { return planFleet(in, true) }

// planFleet is PlanFleet; shortcut says whether a converged service may be
// planned by the steady shortcut (see plan_steady.go; the tests compare
// both ways).
func planFleet(in Input, shortcut bool) Plan {
	groups := groupByService(in, shortcut)
	p := Plan{Fleet: in.Fleet, Revision: in.Revision, Services: make([]ServicePlan, 0, len(groups.all))}
	for _, i := range byName(groups.all) {
		g := &groups.all[i]
		if g.steady.done(&g.tally) {
			p.Services = append(p.Services, g.steady.plan(g.name))
			continue
		}
		groups.fill(in)
		sp := newServicePlanner(in, g.name)
		sp.insts = g.insts
		if in.Routes == nil && sp.known {
			// No routes given: the front is taken to be as the record says.
			sp.route, sp.hasRoute = buildRouteOf(g.name, exposeOf(sp.desired), sp.traffic, firstByID(g.insts)), true
		}
		p.Services = append(p.Services, sp.plan())
	}
	return p
}

// newServicePlanner is the planner of one service, before its instances.
func newServicePlanner(in Input, name string) servicePlanner {
	tr, known := in.Traffic[name]
	cur, hasRoute := in.Routes[name]
	desired, wanted := in.Desired[name]
	return servicePlanner{
		decision: decisionFor(in, name, desired.Hash),
		name:     name,
		now:      in.Now,
		traffic:  tr,
		known:    known,
		route:    cur,
		hasRoute: hasRoute,
		desired:  desired,
		wanted:   wanted,
		windows:  in.DeployWindows,
		stalled:  in.Stalled[name],
		backoff:  in.Backoff[name],
		counts:   in.Counts[name],

		allEngines: in.Engines,
	}
}

// decisionFor returns the operator's decision recorded for the service
// name that applies to its desired generation hash (one without a hash
// applies to any), or nil.
func decisionFor(in Input, name, hash string) *Decision {
	if d, ok := in.Decisions[name]; ok && (d.Hash == "" || d.Hash == hash) {
		return new(d)
	}
	return nil
}

// ours reports whether o is an instance of the input's fleet that the
// planner may touch: one of another fleet, or without a service or spec
// hash, is never touched.
func ours(in *Input, o *Observed) bool {
	return o.Labels.Fleet == in.Fleet && o.Labels.Service != "" && o.Labels.SpecHash != ""
}

// serviceGroup is a service to plan and its instances, by reference into
// Input.Instances (in their order there).
type serviceGroup struct {
	steady steadyCheck // (first: see reads it for every instance)
	tally  steadyTally
	name   string
	insts  []*Observed // (once filled)
}

// serviceGroups are the services of an input, by name in index.
type serviceGroups struct {
	all    []serviceGroup
	index  map[string]int
	filled bool
}

// groupByService returns every service the input names (desired,
// observed, in the traffic records or at the front), and groups the
// instances that are ours (see ours). With shortcut, what steady must see of each instance is
// checked as it is grouped, in the order of Input.Instances; the groups'
// lists of instances are made only when a service needs them (fill).
//
// The services the maps name are grouped first, each named by a copy of
// its name (see arena), then the instances: the input's own names are
// spread over the heap, one cache miss each time a lookup compares
// against one, and the copies are read from a few cache lines.
func groupByService(in Input, shortcut bool) *serviceGroups {
	index := make(map[string]int, len(in.Desired))
	gs := &serviceGroups{all: make([]serviceGroup, 0, len(in.Desired)), index: index}
	var copies arena
	add := func(name string, copy bool) int {
		i, ok := index[name]
		if !ok {
			if copy {
				name = copies.copy(name)
			}
			i = len(gs.all)
			index[name] = i
			gs.all = append(gs.all, serviceGroup{name: name})
		}
		return i
	}
	for name := range in.Desired {
		add(name, true)
	}
	wanted := len(gs.all) // (the groups of Desired come first)
	for name := range in.Traffic {
		add(name, true)
	}
	for name := range in.Routes {
		add(name, true)
	}
	workers := 1
	if len(in.Instances) >= parallelFrom {
		workers = min(runtime.GOMAXPROCS(0), maxWorkers)
	}
	if shortcut {
		split(wanted, workers, func(_, lo, hi int) {
			var copies arena
			for i := lo; i < hi; i++ {
				g := &gs.all[i]
				d := in.Desired[g.name]
				g.steady = steadyHead(in, g.name, &d, &copies)
			}
		})
	}
	// Each part of the instances is tallied apart, then the tallies are
	// added. (An instance of a service no map names is left for after:
	// the index grows one name at a time.)
	tallies := make([][]steadyTally, workers)
	later := make([][]int, workers)
	split(len(in.Instances), workers, func(w, lo, hi int) {
		tally := make([]steadyTally, len(gs.all))
		tallies[w] = tally
		last, g := "", -1
		for i := lo; i < hi; i++ {
			o := &in.Instances[i]
			if !ours(&in, o) {
				continue
			}
			if o.Labels.Service != last || g < 0 {
				var ok bool
				if g, ok = index[o.Labels.Service]; !ok {
					later[w] = append(later[w], i)
					g = -1
					continue
				}
				last = o.Labels.Service
			}
			t := &tally[g]
			t.count++
			if shortcut {
				gs.all[g].steady.see(t, o, in.Now)
			}
		}
	})
	for _, tally := range tallies {
		for g := range tally {
			gs.all[g].tally.add(&tally[g])
		}
	}
	for _, is := range later {
		for _, i := range is {
			gs.all[add(in.Instances[i].Labels.Service, false)].tally.count++ // (not wanted: no steady)
		}
	}
	return gs
}

// A plan of parallelFrom instances or more groups them in up to
// maxWorkers parts side by side (one per core): most of the time of a
// large converged fleet's plan is spent waiting for memory, which cores
// do side by side.
const (
	parallelFrom = 8192
	maxWorkers   = 4
)

// split calls fn for parts of [0, n), about n/parts each, side by side
// when there are several, and returns when every call has.
func split(n, parts int, fn func(part, lo, hi int)) {
	if parts <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	size := (n + parts - 1) / parts
	for p := range parts {
		lo, hi := min(p*size, n), min((p+1)*size, n)
		wg.Go(func() { fn(p, lo, hi) })
	}
	wg.Wait()
}

// arena holds copies of strings next to each other, in a few strings.
type arena struct{ b strings.Builder }

// copy returns a copy of s.
func (a *arena) copy(s string) string {
	if a.b.Cap()-a.b.Len() < len(s) {
		// A new string: the copies already made keep the old one's bytes,
		// which are never written again.
		a.b = strings.Builder{}
		a.b.Grow(max(16<<10, len(s)))
	}
	start := a.b.Len()
	a.b.WriteString(s)
	return a.b.String()[start:]
}

// fill makes every group's list of instances (once).
func (gs *serviceGroups) fill(in Input) {
	if gs.filled {
		return
	}
	gs.filled = true
	total := 0
	for i := range gs.all {
		total += int(gs.all[i].tally.count)
	}
	backing := make([]*Observed, total)
	for i := range gs.all {
		n := int(gs.all[i].tally.count)
		gs.all[i].insts, backing = backing[:0:n], backing[n:]
	}
	last, g := "", -1
	for i := range in.Instances {
		o := &in.Instances[i]
		if !ours(&in, o) {
			continue
		}
		if o.Labels.Service != last || g < 0 {
			last, g = o.Labels.Service, gs.index[o.Labels.Service]
		}
		gs.all[g].insts = append(gs.all[g].insts, o)
	}
}

// byName returns the positions of groups in the order of their names.
// (A group is large: its position is sorted, not the group. The names
// are compared by their first 8 bytes, read once each, and in full only
// where those are the same.)
func byName(groups []serviceGroup) []int32 {
	type key struct {
		head uint64 // the first 8 bytes, big-endian, 0 past the end
		i    int32
	}
	keys := make([]key, len(groups))
	for i := range groups {
		var h uint64
		name := groups[i].name
		for j := range 8 {
			h <<= 8
			if j < len(name) {
				h |= uint64(name[j])
			}
		}
		keys[i] = key{h, int32(i)}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.head, b.head); c != 0 {
			return c
		}
		return strings.Compare(groups[a.i].name, groups[b.i].name)
	})
	order := make([]int32, len(keys))
	for i, k := range keys {
		order[i] = k.i
	}
	return order
}

// class is what an instance is to its service's plan. Every instance is
// classified once, in classify, and the stages work on the sets.
type class int

const (
	// dead: the process or container is gone; it is retired.
	dead class = iota
	// desired: of the generation the service should run.
	desired
	// serving: of the generation in traffic, when that is not the desired one.
	serving
	// warm: of the previous generation, kept alive out of traffic for
	// keepPrevious (blue-green and canary only).
	warm
	// expired: of the previous generation, past keepPrevious.
	expired
	// stray: of any other generation (an interrupted rollout's).
	stray
)

// servicePlanner holds the named sets and the working state of one
// service's plan.
type servicePlanner struct {
	name     string
	now      time.Time
	stableAt time.Time   // the earliest an instance not yet stable for minHealthyFor will be
	insts    []*Observed // by reference into Input.Instances: never written
	traffic  Traffic     // the record (rebuilt from the live fleet when not known)
	known    bool
	route    targets.Route // the route at the front
	hasRoute bool
	desired  Desired
	wanted   bool
	windows  []schema.Window // the fleet's deploy windows
	stalled  string
	backoff  Backoff
	counts   map[string]targets.Counts // by generation, over the judged window
	decision *Decision                 // an operator's, about this rollout
	// allEngines are the target's engines (see placement.go).
	allEngines []targets.Engine

	sets     [stray + 1][]*Observed
	byID     map[string]*Observed // see find
	routed   map[string]bool      // in the current record, alive
	out      ServicePlan
	retiring map[string]bool
	next     Traffic // the record once the step is done
	// decided: the stage set next itself (otherwise it is the current
	// record less what the step retires).
	decided bool
	// done: out is complete (planned as another desired state).
	done bool
	// blocked: a provision was held back (stalled or backing off).
	blocked bool
}

func (s *servicePlanner) plan() ServicePlan {
	s.out = ServicePlan{Service: s.name, From: s.traffic.Active, To: s.desired.Hash,
		ToRevision: s.desired.Revision, Rollback: s.desired.Rollback}
	if spec := cmp.Or(s.desired.Spec, s.desired.Declared); spec != nil {
		s.out.Strategy = spec.Rollout.Strategy
		s.out.Replicas = spec.Replicas
	}
	s.retiring = map[string]bool{}
	var alive []*Observed
	for _, o := range s.insts {
		if o.State != targets.Dead {
			alive = append(alive, o)
		}
	}
	if !s.known {
		s.traffic = rebuildTraffic(alive)
		s.out.From = s.traffic.Active
	}
	s.routed = map[string]bool{}
	for _, id := range s.traffic.Instances {
		s.routed[id] = true
	}
	s.classify()
	for _, o := range s.sets[serving] {
		if s.out.FromRevision == "" {
			s.out.FromRevision = o.Labels.Revision
		}
	}
	if s.traffic.Active == s.desired.Hash {
		s.out.FromRevision = s.desired.Revision
	}
	for _, o := range s.sets[dead] {
		s.retire(o, ReasonExited, o.Detail)
	}

	switch {
	case !s.wanted:
		s.prune()
	case s.desired.Spec == nil:
		s.hold()
	default:
		s.converge()
	}
	if !s.done {
		s.place()
		s.finish()
	}
	if s.out.To != "" && s.out.To == s.desired.Hash && s.out.To != s.out.From && !s.out.Rollback {
		s.out.Why = s.desired.Why
	}
	if !s.stableAt.IsZero() && !s.out.Converged() {
		s.wakeAt(s.stableAt)
	}
	return s.out
}

// classify sorts every instance into exactly one set.
func (s *servicePlanner) classify() {
	s.sets = [stray + 1][]*Observed{}
	s.byID = nil
	sortInstances(s.insts)
	for _, o := range s.insts {
		s.sets[s.classOf(o)] = append(s.sets[s.classOf(o)], o)
	}
}

func (s *servicePlanner) classOf(o *Observed) class {
	h := o.Labels.SpecHash
	switch {
	case o.State == targets.Dead:
		return dead
	case s.wanted && s.desired.Spec != nil && h == s.desired.Hash:
		return desired
	case h == s.traffic.Active:
		return serving
	case h == s.traffic.Previous && s.now.Before(s.traffic.PreviousSince.Add(s.keepFor())):
		return warm
	case h == s.traffic.Previous:
		return expired
	}
	return stray
}

// keepFor is how long the previous generation stays warm: keepPrevious
// for blue-green and canary, never for rolling (which keeps at most
// replicas + maxSurge instances alive) or during a rollback.
func (s *servicePlanner) keepFor() time.Duration {
	spec := s.desired.Spec
	if spec == nil || strategyOf(s.desired) == schema.Rolling {
		return 0
	}
	return spec.Rollout.KeepPrevious
}

// alive returns the instances of the classes that are not retired yet.
func (s *servicePlanner) alive(classes ...class) []*Observed {
	var out []*Observed
	for _, c := range classes {
		for _, o := range s.sets[c] {
			if !s.retiring[o.ID] {
				out = append(out, o)
			}
		}
	}
	if len(classes) > 1 {
		sortInstances(out) // (each set is sorted already: see classify)
	}
	return out
}

// prune retires every instance of a service that is no longer desired and
// removes its route.
func (s *servicePlanner) prune() {
	for _, o := range s.alive(desired, serving, warm, expired, stray) {
		s.retire(o, ReasonRemoved, "")
	}
	s.setNext(Traffic{})
}

// hold keeps the serving generation as it is (the spec to provision more of
// it cannot be read) and retires everything else; unhealthy instances
// leave traffic but stay (nothing could replace them).
func (s *servicePlanner) hold() {
	switch {
	case s.desired.Stalled != "" && s.traffic.Active == "":
		s.degrade(DegradedStalled, s.desired.Stalled+": nothing can be provisioned")
	case s.desired.Stalled != "":
		s.degrade(DegradedStalled, s.desired.Stalled+": holding the serving generation as it is")
	default:
		s.degrade(DegradedNoSpec, "the spec of the serving generation cannot be read: holding it as it is, dead instances are not replaced")
	}
	for _, o := range s.alive(warm, expired, stray) {
		s.retire(o, ReasonNotServing, "")
	}
	next := s.traffic
	next.Instances = nil
	for _, o := range s.alive(serving) {
		if s.routed[o.ID] && o.Health != Unhealthy {
			next.Instances = append(next.Instances, o.ID)
		}
	}
	s.setNext(next)
}

func (s *servicePlanner) converge() {
	spec := s.desired.Spec
	h := s.desired.Hash
	strategy := strategyOf(s.desired)
	if s.desired.Rollback {
		// A rollback goes straight back, guarded by the floor.
		s.out.Notes = append(s.out.Notes, fmt.Sprintf("rolling back from failed revision %s", s.desired.FailedRevision))
	}

	// Revert: the desired generation is the warm previous one.
	if s.traffic.Active != h && s.traffic.Previous == h && s.switchBack() {
		return
	}

	inRollout := s.traffic.Active != h
	for _, o := range s.alive(serving, warm, expired, stray) {
		if s.routed[o.ID] {
			inRollout = true
		}
	}
	if inRollout && !s.desired.Rollback && !s.started() {
		// Deploy windows gate the start of a rollout; one under way
		// finishes, and rollbacks and reverts are never held back.
		windows := append(slices.Clone(s.windows), spec.DeployWindows...)
		if open, until := deployWindow(windows, s.now); !open {
			s.deferUntil(until)
			return
		}
	}
	if inRollout && !s.desired.Rollback {
		if reason := s.failure(); reason != "" {
			s.out.Failed = reason
			return
		}
		if d := s.decision; d != nil && d.Action == ActionAbort {
			s.out.Failed = fmt.Sprintf("aborted by %s (molt abort)", cmp.Or(d.By, "an operator"))
			return
		}
	}

	// Instances of no generation worth keeping go now; those still in
	// traffic leave it through the strategy.
	for _, o := range s.alive(expired) {
		if !s.routed[o.ID] {
			s.retire(o, ReasonExpired, "")
		}
	}
	if inRollout {
		// A new rollout makes the serving generation the next previous
		// one: the generation before it is no revert target any more.
		for _, o := range s.alive(warm) {
			if !s.routed[o.ID] {
				s.retire(o, ReasonSuperseded, "")
			}
		}
	}
	for _, o := range s.alive(serving, stray) {
		if !s.routed[o.ID] && !(strategy == schema.BlueGreen && inRollout && o.Labels.SpecHash == s.traffic.Active) {
			s.retire(o, ReasonSuperseded, "")
		}
	}
	if spec.Rollout.Strategy == schema.CanaryRun && !s.desired.Rollback && s.traffic.Active != h && s.traffic.Active != "" && s.canary() {
		return
	}
	if !inRollout && !s.desired.Rollback && s.verify() {
		return
	}
	if strategy == schema.BlueGreen && s.traffic.Active != h && s.traffic.Active != "" {
		s.blueGreen()
		return
	}
	s.rolling(inRollout)
}

// paused reports whether the rollout must stop at its pause point: the
// spec asks for a pause and no one promoted it.
func (s *servicePlanner) paused() bool {
	return s.desired.Spec.Rollout.Pause && !s.desired.Rollback &&
		(s.decision == nil || s.decision.Action != ActionPromote)
}

// pause stops the rollout at its pause point (after the canary decision,
// the first rolling batch, or before the blue-green switch).
func (s *servicePlanner) pause(where string) {
	s.out.Paused = fmt.Sprintf("paused %s: `molt promote %s` goes on, `molt abort %s` rolls back", where, s.name, s.name)
}

// deferUntil holds a rollout that may not start before a deploy window
// opens. Meanwhile the service is kept as its last good generation says
// (dead instances replaced) when that is known, and as it is otherwise.
func (s *servicePlanner) deferUntil(until time.Time) {
	spec := s.desired.Spec
	note := fmt.Sprintf("outside the deploy window: the rollout waits until %s", until.UTC().Format(time.RFC3339))
	if cur := s.desired.Current; cur != nil && cur.Spec != nil && cur.Hash == s.traffic.Active {
		sub := *s
		sub.desired = *cur
		sub.windows = nil
		sub.stalled = ""
		out := sub.plan()
		out.To, out.ToRevision = s.desired.Hash, s.desired.Revision
		out.Strategy, out.Replicas = spec.Rollout.Strategy, spec.Replicas
		// The totals are the rollout's, once the window opens (the step is
		// the self-heal of the generation that serves until then).
		out.Provision, out.Retire, out.Warm = spec.Replicas, 0, 0
		for _, o := range s.insts {
			switch {
			case o.Labels.SpecHash == s.desired.Hash:
			case s.keepFor() > 0 && o.Labels.SpecHash == s.traffic.Active && o.State != targets.Dead && o.Health != Unhealthy:
				out.Warm++
			default:
				out.Retire++
			}
		}
		out.Provision = max(out.Provision, len(out.Step.Provision))
		out.Retire = max(out.Retire, len(out.Step.Retire))
		out.Deferred, out.Wake = until, minTime(out.Wake, until)
		out.Notes = append(out.Notes, note)
		s.out = out
		s.done = true
		return
	}
	s.out.Deferred = until
	s.out.Provision = spec.Replicas
	s.out.Notes = append(s.out.Notes, note)
	// Without the last good spec, the serving generation is kept as it
	// is: unhealthy instances leave traffic, dead ones are retired.
	next := s.traffic
	next.Instances = nil
	for _, id := range s.traffic.Instances {
		if o, ok := s.find(id); ok && o.State != targets.Dead && o.Health != Unhealthy {
			next.Instances = append(next.Instances, id)
		}
	}
	s.setNext(next)
	s.wakeAt(until)
}

// switchBack moves traffic to the warm previous generation at once when it
// has enough healthy instances. It reports whether it did.
func (s *servicePlanner) switchBack() bool {
	spec := s.desired.Spec
	var ready []*Observed
	for _, o := range s.alive(desired) {
		if s.warmPrevious(o) && o.Health == Healthy {
			ready = append(ready, o)
		}
	}
	if len(ready) < spec.Replicas || len(ready) == 0 {
		return false
	}
	s.out.Notes = append(s.out.Notes, "revert: switching back to the warm previous generation")
	next := Traffic{Active: s.desired.Hash, Instances: ids(ready[:spec.Replicas])}
	keep := s.keepFor() > 0
	if keep {
		next.Previous, next.PreviousSince = s.traffic.Active, s.now
	}
	for _, o := range s.alive(desired) {
		if !slices.Contains(next.Instances, o.ID) {
			s.retire(o, ReasonScaleDown, "")
		}
	}
	for _, o := range s.alive(serving) {
		if !keep || o.Health == Unhealthy {
			s.retire(o, ReasonSuperseded, "")
		}
	}
	for _, o := range s.alive(warm, expired, stray) {
		s.retire(o, ReasonSuperseded, "")
	}
	s.setNext(next)
	return true
}

// warmPrevious reports whether o is an instance of the previous generation
// that was already there when it left traffic (not one provisioned since,
// which must pass the strategy's checks like any new instance).
func (s *servicePlanner) warmPrevious(o *Observed) bool {
	return o.Labels.SpecHash == s.traffic.Previous && !o.Labels.CreatedAt.After(s.traffic.PreviousSince)
}

// failure says why the rollout to the desired generation failed, or "".
// Only instances of the new generation can fail a rollout: the serving
// generation's troubles are replaced, never rolled back.
//
// progressDeadline is the longest time without progress, as in
// Kubernetes: progress is a new instance made (which follows the retire
// of an old one) or turning healthy, so a long rollout that keeps
// progressing never fails for its length.
func (s *servicePlanner) failure() string {
	var progress time.Time
	for _, o := range append(slices.Clone(s.sets[desired]), s.deadOf(s.desired.Hash)...) {
		if s.warmPrevious(o) {
			// A warm instance of the generation reverted to is no part of
			// this rollout: its age says nothing of the deadline, and its
			// death is a replacement, not a failure.
			continue
		}
		if o.Labels.CreatedAt.After(progress) {
			progress = o.Labels.CreatedAt
		}
		if o.Health == Healthy && o.HealthySince.After(progress) {
			progress = o.HealthySince
		}
		if o.State == targets.Dead {
			return fmt.Sprintf("instance %s exited (%s)", o.ID, o.Detail)
		}
		if o.Health == Unhealthy {
			return fmt.Sprintf("instance %s failed its health check", o.ID)
		}
	}
	// A canary under observation is progress until its window ends: the
	// judgement, not the clock, decides it.
	if c := s.traffic.Canary; c != nil && c.Hash == s.desired.Hash && s.desired.Spec.Rollout.Canary != nil {
		if end := c.Since.Add(s.desired.Spec.Rollout.Canary.Duration); end.After(progress) {
			progress = end
		}
	}
	if d := s.desired.Spec.Rollout.ProgressDeadline; !progress.IsZero() && d > 0 {
		if s.now.Sub(progress) > d {
			return fmt.Sprintf("no progress for %s (progressDeadline): last at %s", s.now.Sub(progress).Round(time.Second), progress.UTC().Format(time.RFC3339))
		}
		s.wakeAt(progress.Add(d).Add(time.Millisecond))
	}
	return ""
}

func (s *servicePlanner) deadOf(hash string) []*Observed {
	var out []*Observed
	for _, o := range s.sets[dead] {
		if o.Labels.SpecHash == hash {
			out = append(out, o)
		}
	}
	return out
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

// find returns the first instance with that id, in the order of the
// classified instances (the index is made at the first call after
// classify).
func (s *servicePlanner) find(id string) (*Observed, bool) {
	if s.byID == nil {
		s.byID = firstByID(s.insts)
	}
	o, ok := s.byID[id]
	return o, ok
}

// firstByID indexes instances by id, the first of each id.
func firstByID(insts []*Observed) map[string]*Observed {
	m := make(map[string]*Observed, len(insts))
	for _, o := range insts {
		if _, dup := m[o.ID]; !dup {
			m[o.ID] = o
		}
	}
	return m
}

func (s *servicePlanner) retire(o *Observed, reason Reason, detail string) {
	if s.retiring[o.ID] {
		return
	}
	s.retiring[o.ID] = true
	s.out.Step.Retire = append(s.out.Step.Retire, Retire{
		Instance: o.ID, SpecHash: o.Labels.SpecHash, Reason: reason, Detail: detail,
		Drain: s.routed[o.ID] && o.State != targets.Dead,
	})
}

// provision adds n provisions to the step, unless the service is stalled
// (nothing can be provisioned before a new commit) or backs off after a
// transient error.
func (s *servicePlanner) provision(n int, reason Reason, detail string, rollout bool) {
	if n <= 0 {
		return
	}
	if s.stalled != "" {
		s.blocked = true
		return
	}
	if s.now.Before(s.backoff.Until) {
		s.blocked = true
		s.wait(WaitBackoff, fmt.Sprintf("retrying at %s after a transient error: %s", s.backoff.Until.UTC().Format(time.RFC3339), s.backoff.Err))
		s.wakeAt(s.backoff.Until)
		return
	}
	s.out.Step.Generation = s.desired.Hash
	for range n {
		s.out.Step.Provision = append(s.out.Step.Provision, Provision{Reason: reason, Detail: detail, Rollout: rollout})
	}
}

// wait says what the service waits for; a scheduled retry is what it
// waits for first.
func (s *servicePlanner) wait(w Wait, msg string) {
	if s.out.WaitReason == WaitBackoff {
		return
	}
	s.out.WaitReason, s.out.Waiting = w, msg
}

func (s *servicePlanner) degrade(d Degradation, msg string) {
	s.out.DegradedReason, s.out.Degraded = d, msg
}

func (s *servicePlanner) wakeAt(t time.Time) { s.out.Wake = minTime(s.out.Wake, t) }

// stableFor reports whether o has been healthy for at least d. One that is
// healthy but not yet for d makes the moment it will be the plan's wake
// (when the service is not converged: see plan), so that the pass that
// can then move it comes on time rather than on the next probe or tick.
func (s *servicePlanner) stableFor(o *Observed, d time.Duration) bool {
	if o.Health != Healthy {
		return false
	}
	if at := o.HealthySince.Add(d); at.After(s.now) {
		s.stableAt = minTime(s.stableAt, at)
		return false
	}
	return true
}

// setNext decides the traffic record once the step is done.
func (s *servicePlanner) setNext(next Traffic) {
	s.next, s.decided = next, true
}

// rebuildTraffic reconstructs a lost routing record from the live fleet:
// every instance not known to be unhealthy is taken to be in traffic (right
// after a restart the prober has no verdict yet, and an empty route would
// supersede the serving generation), and the generation with the most such
// instances is the active one.
func rebuildTraffic(alive []*Observed) Traffic {
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

// sameTraffic reports whether two records are the same: the same as they
// are kept at the front.
func sameTraffic(a, b Traffic) bool { return encodeTraffic(a) == encodeTraffic(b) }

func sortInstances(os []*Observed) {
	sort.Slice(os, func(i, j int) bool {
		if !os[i].Labels.CreatedAt.Equal(os[j].Labels.CreatedAt) {
			return os[i].Labels.CreatedAt.Before(os[j].Labels.CreatedAt)
		}
		return os[i].ID < os[j].ID
	})
}

func ids(os []*Observed) []string {
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

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
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
