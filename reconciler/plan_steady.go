package reconciler

import (
	"hash/maphash"
	"math/bits"
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
//
// The instances are compared with the record as multisets: the sum of a
// seeded 64-bit hash of each instance's id must be the sum over the
// record's ids, and the sum over (id, address) of each exposed instance
// the sum over the route's backends (see steadyBackend). The record's ids
// are sorted and unique, so equal sums say that the instances are exactly
// the record's, each once. Looking each instance up in its record instead
// costs a cache miss or more each in a large fleet (the record is far
// from the instances in memory and read in another order): the sums read
// the instances once, in their order, and the record once, in its. Two
// different multisets have the same sum with a probability of about
// 2^-64 (the seed is drawn once per process): then a service that is not
// converged is taken for converged for as long as its instances and
// record stay as they are. Every other check is exact.

// steadySeed seeds the hashes of the sums.
var steadySeed = maphash.MakeSeed()

// steadyID is an instance id's term in a steady sum.
func steadyID(id string) uint64 { return maphash.String(steadySeed, id) }

// steadyBackend is the term of a backend: an instance's id (of term idTerm)
// and address. (The two strings' hashes are mixed by the high and low
// halves of their product, which no sum of other such terms undoes: two
// instances trading addresses change the sum.)
func steadyBackend(idTerm uint64, addr string) uint64 {
	hi, lo := bits.Mul64(idTerm^0x9e3779b97f4a7c15, maphash.String(steadySeed, addr)^0xd6e8feb86659fd93)
	return hi ^ lo
}

// steadyCheck is what steady proves of a service: steadyHead what holds
// of the service, see each instance as it is grouped (into a tally), done
// the rest. What see reads comes first (it is read for every instance,
// in no order); once made, a check is only read (instances may be seen
// side by side, each into a tally of its own, and the tallies added).
type steadyCheck struct {
	ok      bool
	exposed bool
	route   bool          // the backends are to be compared
	hash    string        // the desired generation (a copy: see steadyHead)
	port    string        // the exposed port, with expose (a copy)
	maxAge  time.Duration // recycle.maxAge, 0 without

	// The counts and sums the record and route give.
	ids, backends         int32
	wantIDs, wantBackends uint64
	spec                  *schema.Service
	revision              string
}

// steadyTally is what a service's instances sum to (see steadyCheck).
type steadyTally struct {
	count              int32 // every instance of the service
	bad                bool  // one that steady cannot take
	seen, seenBackends int32
	idSum, backendSum  uint64
}

// add adds the tally of other instances of the service.
func (t *steadyTally) add(u *steadyTally) {
	t.count += u.count
	t.bad = t.bad || u.bad
	t.seen += u.seen
	t.seenBackends += u.seenBackends
	t.idSum += u.idSum
	t.backendSum += u.backendSum
}

// steadyHead checks what steady proves of the desired service name (d)
// itself; done checks its count of instances. The strings see compares
// every instance with are copied into copies, next to other services'
// (the input's own are spread over the heap).
func steadyHead(in Input, name string, d *Desired, copies *arena) steadyCheck {
	spec := d.Spec
	switch {
	case spec == nil || d.Hash == "" || d.Stalled != "" || d.Rollback,
		spec.Docker != nil && len(in.Engines) > 1,
		in.Stalled[name] != "",
		decisionFor(in, name, d.Hash) != nil:
		return steadyCheck{}
	}
	tr, known := in.Traffic[name]
	switch {
	case !known || tr.Active != d.Hash || tr.Previous != "" || !tr.PreviousSince.IsZero(),
		tr.Canary != nil || tr.Verify != nil,
		len(tr.Instances) != spec.Replicas:
		return steadyCheck{}
	}
	ids := tr.Instances
	c := steadyCheck{ok: true, spec: spec, revision: d.Revision, ids: int32(len(ids))}
	for i, id := range ids {
		if i > 0 && ids[i-1] >= id {
			return steadyCheck{} // unsorted or repeated: finish would change it
		}
		c.wantIDs += steadyID(id)
	}
	if spec.Recycle != nil && spec.Recycle.MaxAge > 0 {
		c.maxAge = spec.Recycle.MaxAge
	}
	ex := exposeOf(*d)
	if ex != nil {
		c.exposed = true
	}
	if in.Routes != nil {
		rt, has := in.Routes[name]
		if !has || !steadyRouteHead(&rt, name, ex, tr) {
			return steadyCheck{}
		}
		bs := rt.Backends
		if len(bs) > 0 && !c.exposed {
			return steadyCheck{} // buildRoute gives none
		}
		for i := range bs {
			// As buildRoute gives them: in the order of the record (which
			// is the instances' ids'), each of the active generation and
			// with an address.
			b := &bs[i]
			if b.Generation != d.Hash || b.Addr == "" || i > 0 && bs[i-1].Instance >= b.Instance {
				return steadyCheck{}
			}
			c.wantBackends += steadyBackend(steadyID(b.Instance), b.Addr)
		}
		c.route, c.backends = true, int32(len(bs))
	}
	c.hash = copies.copy(d.Hash)
	if ex != nil {
		c.port = copies.copy(ex.Port)
	}
	return c
}

// see checks one instance of the service, into t.
func (c *steadyCheck) see(t *steadyTally, o *Observed, now time.Time) {
	if !c.ok || t.bad {
		return
	}
	switch {
	case o.State == targets.Dead || o.Labels.SpecHash != c.hash || o.Health != Healthy,
		o.Drift != "" || o.LivenessFailed,
		c.maxAge > 0 && now.Sub(o.Labels.CreatedAt) > c.maxAge:
		t.bad = true
		return
	}
	t.seen++
	id := steadyID(o.ID)
	t.idSum += id
	if c.route && c.exposed {
		if addr := o.Endpoints[c.port]; addr != "" {
			t.seenBackends++
			t.backendSum += steadyBackend(id, addr)
		}
	}
}

// done reports whether the check holds of every instance of the service,
// whose tally is t.
func (c *steadyCheck) done(t *steadyTally) bool {
	switch {
	case !c.ok || t.bad || t.count != c.ids || t.seen != c.ids || t.idSum != c.wantIDs:
		return false
	case !c.route:
		return true
	}
	return t.seenBackends == c.backends && t.backendSum == c.wantBackends
}

// plan is the plan of a service steady proved converged: what the stages
// give for it.
func (c *steadyCheck) plan(name string) ServicePlan {
	return ServicePlan{Service: name, Strategy: c.spec.Rollout.Strategy,
		From: c.hash, FromRevision: c.revision, To: c.hash, ToRevision: c.revision,
		Replicas: c.spec.Replicas, Healthy: c.spec.Replicas}
}

// steadyRouteHead reports whether the route rt at the front has what
// buildRoute gives for the record tr but the backends: service, listen
// address, HAProxy backend, and the record itself as its only Meta.
func steadyRouteHead(rt *targets.Route, name string, ex *schema.Expose, tr Traffic) bool {
	listen, haproxy := "", ""
	if ex != nil {
		listen, haproxy = ex.Listen, ex.HAProxy
	}
	if rt.Service != name || rt.Listen != listen || rt.HAProxy != haproxy || len(rt.Meta) != 1 {
		return false
	}
	raw, ok := rt.Meta[MetaTraffic]
	return ok && trafficEncodes(raw, tr)
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
