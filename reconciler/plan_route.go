package reconciler

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// MetaTraffic is the key, in a route's Meta, of the reconciler's traffic
// record (JSON of Traffic). Fronts store it and never read it.
const MetaTraffic = "molt.traffic"

// finish turns the decided traffic record into the service's route, and
// fills in the projected totals and the service's health; it only adds to
// what the stages decided, never changes their step.
func (s *servicePlanner) finish() {
	if s.out.Failed != "" {
		s.out.Step = Step{}
		return
	}
	next := s.traffic
	if s.decided {
		next = s.next
	}
	kept := []string{}
	for _, id := range next.Instances {
		if !s.retiring[id] {
			kept = append(kept, id)
		}
	}
	sort.Strings(kept)
	next.Instances = kept
	warmAlive := false
	for _, o := range s.alive(warm) {
		if o.Labels.SpecHash == next.Previous {
			warmAlive = true
		}
	}
	keep := s.keepFor()
	if next.Previous != "" && !warmAlive && !s.now.Before(next.PreviousSince.Add(keep)) {
		next.Previous, next.PreviousSince = "", time.Time{} // nothing warm left to go back to
	}
	if warmAlive {
		s.wakeAt(next.PreviousSince.Add(keep))
	}
	// A canary record outlives its stage only until its generation serves;
	// a verification record until its window ends.
	if c := next.Canary; c != nil && (c.Hash != s.desired.Hash || next.Active == c.Hash || !s.wanted) {
		next.Canary = nil
	}
	if v := next.Verify; v != nil && (v.Hash != next.Active || !s.wanted || s.desired.Spec == nil ||
		!s.now.Before(v.Since.Add(s.desired.Spec.Rollout.VerifyFor))) {
		next.Verify = nil
	}
	if !s.known || !sameTraffic(next, s.traffic) {
		t := next
		s.out.Traffic = &t
	}

	want := targets.Route{Service: s.name}
	if s.wanted {
		if s.byID == nil {
			s.byID = firstByID(s.insts)
		}
		want = buildRouteOf(s.name, exposeOf(s.desired), next, s.byID)
	}
	if s.hasRoute || s.wanted {
		if !s.hasRoute || !routeEqual(want, s.route) {
			s.out.Route = &want
		}
	}

	// Health once the step is done, and the projected totals.
	r := 0
	if s.wanted && s.desired.Spec != nil {
		r = s.desired.Spec.Replicas
	}
	for _, id := range next.Instances {
		if o, ok := s.find(id); ok && o.Health == Healthy {
			s.out.Healthy++
		}
	}
	desiredOK, unknown := 0, false
	for _, o := range s.alive(desired) {
		if o.Health != Unhealthy {
			desiredOK++
		}
		if o.Health == HealthUnknown {
			unknown = true
		}
	}
	stay := min(desiredOK, r)
	if s.wanted && s.desired.Spec == nil {
		stay = len(s.alive(serving))
	}
	warmEnd := len(s.alive(warm))
	if keep > 0 && s.traffic.Active != s.desired.Hash && s.wanted {
		for _, o := range s.alive(serving) {
			if o.Health != Unhealthy {
				warmEnd++
			}
		}
	}
	s.out.Warm = warmEnd
	s.out.Retire = max(len(s.out.Step.Retire), len(s.insts)-stay-warmEnd)
	s.out.Provision = max(s.out.Provision, len(s.out.Step.Provision))

	if s.desired.Stalled != "" && s.desired.Spec != nil {
		s.degrade(DegradedStalled, s.desired.Stalled)
	}
	if s.stalled != "" {
		if s.out.Healthy < r || s.blocked {
			s.degrade(DegradedStalled, s.stalled)
			if s.out.WaitReason == WaitHealthy && !unknown {
				// Nothing that is starting could make up for it.
				s.out.Waiting, s.out.WaitReason = "", ""
			}
		} else {
			s.out.Notes = append(s.out.Notes, "cannot provision: "+s.stalled)
		}
	}
}

// exposeOf is the exposure the route of a desired service has.
func exposeOf(d Desired) *schema.Expose {
	if d.Spec != nil {
		return d.Spec.Expose
	}
	return d.Expose
}

// buildRoute is the route that carries a service's traffic as the record
// tr says: one backend per routed instance that has the exposed port, and
// the record itself in Meta.
func buildRoute(service string, ex *schema.Expose, tr Traffic, insts []Observed) targets.Route {
	byID := make(map[string]*Observed, len(insts))
	for i := range insts {
		if _, dup := byID[insts[i].ID]; !dup {
			byID[insts[i].ID] = &insts[i]
		}
	}
	return buildRouteOf(service, ex, tr, byID)
}

// buildRouteOf is buildRoute with the instances indexed by id (see
// firstByID).
func buildRouteOf(service string, ex *schema.Expose, tr Traffic, byID map[string]*Observed) targets.Route {
	rt := targets.Route{Service: service, Backends: []targets.Backend{}, Meta: map[string]string{MetaTraffic: encodeTraffic(tr)}}
	if ex == nil {
		return rt
	}
	rt.Listen, rt.HAProxy = ex.Listen, ex.HAProxy
	for _, id := range tr.Instances {
		o, ok := byID[id]
		if !ok || o.State == targets.Dead {
			continue
		}
		if addr := o.Endpoints[ex.Port]; addr != "" {
			rt.Backends = append(rt.Backends, targets.Backend{Instance: id, Addr: addr, Generation: o.Labels.SpecHash})
		}
	}
	canaryWeights(tr, rt.Backends)
	return rt
}

func routeEqual(a, b targets.Route) bool {
	return a.Service == b.Service && a.Listen == b.Listen && a.HAProxy == b.HAProxy &&
		slices.Equal(a.Backends, b.Backends) && maps.Equal(a.Meta, b.Meta)
}

// emptyRoute reports whether a route removes its service (see
// ServicePlan.Route).
func emptyRoute(r targets.Route) bool {
	return r.Listen == "" && r.HAProxy == "" && len(r.Backends) == 0 && len(r.Meta) == 0
}

func encodeTraffic(t Traffic) string {
	t.PreviousSince = t.PreviousSince.UTC()
	if t.Instances == nil {
		t.Instances = []string{}
	}
	b, err := json.Marshal(t)
	if err != nil {
		panic("reconciler: encode traffic: " + err.Error()) // plain values only
	}
	return string(b)
}

// TrafficOf reads the reconciler's traffic records out of a fleet's
// routes, by service. A route whose record is missing or unreadable has
// no entry: its record is rebuilt from the live fleet.
func TrafficOf(routes []targets.Route) map[string]Traffic {
	out := map[string]Traffic{}
	for _, r := range routes {
		raw, ok := r.Meta[MetaTraffic]
		if !ok {
			continue
		}
		var t Traffic
		if json.Unmarshal([]byte(raw), &t) != nil {
			continue
		}
		sort.Strings(t.Instances)
		out[r.Service] = t
	}
	return out
}

// routesByService indexes a fleet's routes.
func routesByService(routes []targets.Route) map[string]targets.Route {
	out := make(map[string]targets.Route, len(routes))
	for _, r := range routes {
		out[r.Service] = r
	}
	return out
}
