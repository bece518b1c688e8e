package reconciler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/molt-dev/molt/targets"
)

// EngineReporter is implemented by targets that run instances on several
// engines (hosts), as the docker target does: their engines as the last
// List saw them (answering or not, capacity, instances running). The
// executor passes them to the planner (Input.Engines), which places each
// new instance (Provision.Engine); without it, the target places them.
type EngineReporter interface {
	Engines() []targets.Engine
}

// Placement, in the planner's terms:
//
//   - A service's engines are those its docker.engines names, in that
//     order, or every engine of the target. Only docker services have
//     engines; a service without engines is placed by its target.
//   - Spread: the instances of one generation are spread evenly over the
//     service's engines that are up and have room. A new instance goes to
//     the engine with the fewest instances of its generation (the first
//     in order on a tie) that is up and has room: Max unset, or fewer
//     molt instances running there (of every fleet, less those the step
//     retires) than Max.
//   - Lost: the instances of an engine that does not answer are not
//     listed, so they are not counted anywhere; the strategy replaces them
//     and placement sends the replacements to the other engines.
//   - Rebalance: once a generation serves with all its instances healthy,
//     an uneven spread (an engine with two or more fewer instances than
//     another, and room) gets one more instance on the under-filled
//     engine (within maxSurge); once that one is proven, the surplus is
//     retired from the fullest engine. The healthy floor holds throughout:
//     a proven instance is never retired in favour of an unproven one.

// engines returns the service's engines (see above), nil when it has none.
func (s *servicePlanner) engines() []targets.Engine {
	spec := s.desired.Spec
	if spec == nil || spec.Docker == nil || len(s.allEngines) == 0 {
		return nil
	}
	if len(spec.Docker.Engines) == 0 {
		return s.allEngines
	}
	var out []targets.Engine
	for _, name := range spec.Docker.Engines {
		if i := slices.IndexFunc(s.allEngines, func(e targets.Engine) bool { return e.Name == name }); i >= 0 {
			out = append(out, s.allEngines[i])
		}
	}
	return out
}

// spread counts, by engine, the instances of generation hash that stay
// once the step is done.
func (s *servicePlanner) spread(hash string) map[string]int {
	n := map[string]int{}
	for _, o := range s.insts {
		if o.State != targets.Dead && !s.retiring[o.ID] && o.Labels.SpecHash == hash {
			n[o.Engine]++
		}
	}
	return n
}

// room returns, by engine, how many more instances each may take once
// the step's retires are done; engines without a Max are absent.
func (s *servicePlanner) room(engines []targets.Engine) map[string]int {
	room := map[string]int{}
	for _, e := range engines {
		if e.Max > 0 {
			room[e.Name] = e.Max - e.Running
		}
	}
	for _, o := range s.insts {
		if _, ok := room[o.Engine]; ok && o.State == targets.Running && s.retiring[o.ID] {
			room[o.Engine]++
		}
	}
	return room
}

// fits reports whether engine e is up and has room.
func fits(e targets.Engine, room map[string]int) bool {
	r, capped := room[e.Name]
	return e.Up && (!capped || r > 0)
}

// place puts each provision of the step on an engine (see the vocabulary
// above). Provisions that no engine has room for are dropped, and the
// service waits for room (WaitCapacity).
func (s *servicePlanner) place() {
	provs := s.out.Step.Provision
	engines := s.engines()
	if len(provs) == 0 || len(engines) == 0 {
		return
	}
	count := s.spread(s.out.Step.Generation)
	room := s.room(engines)
	placed := provs[:0:0]
	for _, p := range provs {
		best := -1
		for i, e := range engines {
			if fits(e, room) && (best < 0 || count[e.Name] < count[engines[best].Name]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		name := engines[best].Name
		p.Engine = name
		count[name]++
		if _, ok := room[name]; ok {
			room[name]--
		}
		placed = append(placed, p)
	}
	if len(placed) == len(provs) {
		s.out.Step.Provision = placed
		return
	}
	s.out.Step.Provision = placed
	s.blocked = true
	var why []string
	for _, e := range engines {
		switch {
		case !e.Up:
			why = append(why, fmt.Sprintf("%s does not answer", e.Name))
		case e.Max > 0:
			why = append(why, fmt.Sprintf("%s is full (%d/%d)", e.Name, e.Max-room[e.Name], e.Max))
		}
	}
	s.wait(WaitCapacity, fmt.Sprintf("no engine has room for %d new instance(s) of %s: %s",
		len(provs)-len(placed), short(s.out.Step.Generation), strings.Join(why, ", ")))
}

// keepSpread chooses which r instances of fresh (the desired generation,
// none unhealthy) a scale down keeps when the service has several
// engines: one engine at a time, the one with the fewest kept so far,
// and on each engine the most proven first (stable, then healthy, then
// routed, then the oldest). It returns the kept and the surplus.
//
// When that would retire a proven instance and keep an unproven one (a
// rebalancing instance still starting), it keeps them all and says what
// it waits for instead, unless the surplus is past what the strategy lets
// live (limit): then the most proven are kept, whatever their engines.
func (s *servicePlanner) keepSpread(fresh []*Observed, r, limit int, stable func(*Observed) bool) (kept, surplus []*Observed, waiting string) {
	tier := func(o *Observed) int {
		switch {
		case stable(o):
			return 0
		case o.Health == Healthy:
			return 1
		}
		return 2
	}
	better := func(a, b *Observed) int {
		return cmp.Or(cmp.Compare(tier(a), tier(b)),
			-cmpBool(s.routed[a.ID], s.routed[b.ID]),
			a.Labels.CreatedAt.Compare(b.Labels.CreatedAt),
			cmp.Compare(a.ID, b.ID))
	}
	left := slices.Clone(fresh)
	slices.SortStableFunc(left, better)
	n := map[string]int{}
	for len(kept) < r {
		best := -1
		for i, o := range left {
			if best < 0 || n[o.Engine] < n[left[best].Engine] {
				best = i // left is sorted: the first of each engine is its best
			}
		}
		kept = append(kept, left[best])
		n[left[best].Engine]++
		left = slices.Delete(left, best, best+1)
	}
	surplus = left
	unproven := slices.ContainsFunc(kept, func(o *Observed) bool { return !stable(o) })
	proven := slices.IndexFunc(surplus, stable)
	if !unproven || proven < 0 {
		return kept, surplus, ""
	}
	if len(fresh) <= limit {
		o := surplus[proven]
		return fresh, nil, fmt.Sprintf("rebalancing across engines: waiting for the new instance(s) to be healthy before %s leaves engine %s", o.ID, o.Engine)
	}
	all := slices.Clone(fresh)
	slices.SortStableFunc(all, better)
	return all[:r], all[r:], ""
}

// rebalance provisions one more instance of the desired generation on
// the service's most under-filled engine when its spread is uneven: an
// engine that is up and has room holds two or more fewer instances than
// another engine that is up. fresh are the generation's instances; they
// must all be healthy (the surplus is retired once the new one is proven,
// see keepSpread).
func (s *servicePlanner) rebalance(fresh []*Observed) {
	engines := s.engines()
	if len(engines) < 2 || slices.ContainsFunc(fresh, func(o *Observed) bool { return o.Health != Healthy }) {
		return
	}
	n := map[string]int{}
	for _, o := range fresh {
		n[o.Engine]++
	}
	room := s.room(engines)
	lo, hi := -1, -1
	for i, e := range engines {
		if !e.Up {
			continue
		}
		if hi < 0 || n[e.Name] > n[engines[hi].Name] {
			hi = i
		}
		if fits(e, room) && (lo < 0 || n[e.Name] < n[engines[lo].Name]) {
			lo = i
		}
	}
	if lo < 0 || n[engines[hi].Name]-n[engines[lo].Name] < 2 {
		return
	}
	s.provision(1, ReasonRebalance, fmt.Sprintf("engine %s has %d, engine %s %d", engines[hi].Name, n[engines[hi].Name], engines[lo].Name, n[engines[lo].Name]), false)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// onEngines says where the provisions go, as the plan prints it:
// " on engines a, b" (each engine once, in order), or "" when the target
// places them.
func onEngines(provs []Provision) string {
	var names []string
	for _, p := range provs {
		if p.Engine != "" && !slices.Contains(names, p.Engine) {
			names = append(names, p.Engine)
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return " on engine " + names[0]
	}
	return " on engines " + strings.Join(names, ", ")
}
