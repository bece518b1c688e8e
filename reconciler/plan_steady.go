package reconciler

import (
	"slices"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// A converged service is planned by a shortcut (steady: steadyHead, then
// see for each instance as PlanFleet groups them, then done) that gives
// the plan the stages would give (nothing to do, nothing to wait for)
// without classifying, sorting or copying its instances. It takes the
// shortcut only when it can prove, in that one pass, that the stages
// would find nothing to do; anything else, however close to converged,
// takes the stages.
//
// What it proves, against what the stages check (see converge, rolling,
// finish):
//
//   - the service is wanted with a spec that is not stalled, not held, not
//     a rollback, and no operator decision or stall is recorded for it;
//   - its record is known, active is the desired generation, with no
//     previous generation, no canary and no verification under way (so no
//     revert, rollout, deploy window, deadline or judgement applies);
//   - it has exactly replicas instances, each alive, of the desired
//     generation, healthy, without drift or a failed liveness check, and
//     none past recycle.maxAge (whatever its window says);
//   - the record routes exactly those instances, sorted (so the route the
//     stages would build is the record as it is);
//   - it has at most one engine (no spread to keep or rebalance);
//   - the route at the front is the one buildRoute would give.
//
// A backoff is ignored: it only holds back provisions, and there are none.

// steadyCheck is what steady proves of a service: steadyHead what holds
// of the service, see each instance as it is grouped, done the rest.
type steadyCheck struct {
	ok       bool
	spec     *schema.Service
	hash     string
	revision string
	ids      []string         // the record's instances
	pos      map[string]int32 // position in ids, for a large record
	seen     []bool           // by position in ids: its instance was seen
	addrs    []string         // by position in ids: its instance's address, when compared
	next     int              // the position after the last seen
	maxAge   time.Duration    // recycle.maxAge, 0 without
	port     string           // the exposed port, with expose
	exposed  bool
	route    bool // the backends are to be compared
	backends []targets.Backend
}

// steadyHead checks what steady proves of the service itself, which has
// count instances; routeFromRecord says that the route at the front is
// the one built from the record (Input.Routes nil).
func (s *servicePlanner) steadyHead(count int, routeFromRecord bool) steadyCheck {
	d := &s.desired
	spec := d.Spec
	tr := &s.traffic
	switch {
	case !s.wanted || spec == nil || d.Hash == "" || d.Stalled != "" || d.Rollback,
		s.stalled != "" || s.decision != nil,
		!s.known || tr.Active != d.Hash || tr.Previous != "" || !tr.PreviousSince.IsZero(),
		tr.Canary != nil || tr.Verify != nil,
		spec.Docker != nil && len(s.allEngines) > 1,
		count != spec.Replicas || len(tr.Instances) != count:
		return steadyCheck{}
	}
	ids := tr.Instances
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			return steadyCheck{} // unsorted or repeated: finish would change it
		}
	}
	c := steadyCheck{ok: true, spec: spec, hash: d.Hash, revision: d.Revision, ids: ids}
	if spec.Recycle != nil && spec.Recycle.MaxAge > 0 {
		c.maxAge = spec.Recycle.MaxAge
	}
	ex := exposeOf(*d)
	if ex != nil {
		c.exposed, c.port = true, ex.Port
	}
	if !routeFromRecord {
		if !s.steadyRouteHead(ex) {
			return steadyCheck{}
		}
		c.route, c.backends = true, s.route.Backends
	}
	return c
}

// steadyIndexed is the size of a record past which its positions are
// looked up in a map rather than searched.
const steadyIndexed = 256

// see checks one instance of the service (each is seen once).
func (c *steadyCheck) see(o *Observed, now time.Time) {
	if !c.ok {
		return
	}
	switch {
	case o.State == targets.Dead || o.Labels.SpecHash != c.hash || o.Health != Healthy,
		o.Drift != "" || o.LivenessFailed,
		c.maxAge > 0 && now.Sub(o.Labels.CreatedAt) > c.maxAge:
		c.ok = false
		return
	}
	// (Targets often list in the record's order: try the next position
	// first.)
	j, found := c.next, c.next < len(c.ids) && c.ids[c.next] == o.ID
	switch {
	case found:
	case len(c.ids) > steadyIndexed:
		if c.pos == nil {
			c.pos = make(map[string]int32, len(c.ids))
			for i, id := range c.ids {
				c.pos[id] = int32(i)
			}
		}
		var p int32
		p, found = c.pos[o.ID]
		j = int(p)
	default:
		j, found = slices.BinarySearch(c.ids, o.ID)
	}
	if !found || c.seen[j] {
		c.ok = false // not routed, or routed twice
		return
	}
	c.seen[j], c.next = true, j+1
	if c.route && c.exposed {
		c.addrs[j] = o.Endpoints[c.port]
	}
}

// done reports whether the check holds once every instance was seen (as
// many as the record has, each at its own position: every position is
// filled).
func (c *steadyCheck) done() bool {
	if !c.route {
		return true
	}
	b := 0
	if c.exposed {
		for j, addr := range c.addrs {
			if addr == "" {
				continue
			}
			// (Every instance seen is of the desired generation.)
			if b >= len(c.backends) || c.backends[b] != (targets.Backend{Instance: c.ids[j], Addr: addr, Generation: c.hash}) {
				return false
			}
			b++
		}
	}
	return b == len(c.backends)
}

// plan is the plan of a service steady proved converged: what the stages
// give for it.
func (c *steadyCheck) plan(name string) ServicePlan {
	return ServicePlan{Service: name, Strategy: c.spec.Rollout.Strategy,
		From: c.hash, FromRevision: c.revision, To: c.hash, ToRevision: c.revision,
		Replicas: c.spec.Replicas, Healthy: c.spec.Replicas}
}

// steadyRouteHead reports whether the route at the front has what
// buildRoute gives for the record but the backends: service, listen
// address, HAProxy backend, and the record itself as its only Meta.
func (s *servicePlanner) steadyRouteHead(ex *schema.Expose) bool {
	rt := &s.route
	listen, haproxy := "", ""
	if ex != nil {
		listen, haproxy = ex.Listen, ex.HAProxy
	}
	if !s.hasRoute || rt.Service != s.name || rt.Listen != listen || rt.HAProxy != haproxy || len(rt.Meta) != 1 {
		return false
	}
	raw, ok := rt.Meta[MetaTraffic]
	return ok && trafficEncodes(raw, s.traffic)
}

// trafficEncodes reports whether raw is encodeTraffic(t). A record of an
// active generation and instances whose strings JSON leaves as they are
// is compared as it is read; any other is encoded.
func trafficEncodes(raw string, t Traffic) bool {
	if t.Previous != "" || !t.PreviousSince.IsZero() || t.Canary != nil || t.Verify != nil || !jsonPlain(t.Active) {
		return raw == encodeTraffic(t)
	}
	rest, ok := raw, true
	eat := func(p string) {
		if ok = ok && len(rest) >= len(p) && rest[:len(p)] == p; ok {
			rest = rest[len(p):]
		}
	}
	eatString := func(v string) {
		eat(`"`)
		eat(v)
		eat(`"`)
	}
	eat(`{`)
	if t.Active != "" {
		eat(`"active":`)
		eatString(t.Active)
		eat(`,`)
	}
	eat(`"instances":[`)
	for i, id := range t.Instances {
		if !jsonPlain(id) {
			return raw == encodeTraffic(t)
		}
		if i > 0 {
			eat(`,`)
		}
		eatString(id)
	}
	eat(`]}`)
	return ok && rest == ""
}

// jsonPlain reports whether encoding/json writes s as it is between its
// quotes: printable ASCII but for the characters it escapes.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
