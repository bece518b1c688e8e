package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// applyState is what one Apply keeps from pass to pass, all of it
// rebuildable: what the target resolved for each spec and the digests of
// its secrets (resolved once, when the plan is first made, and again
// after a provision found a secret changed), the revision record (read
// again only after the executor changes it), the fleets of older
// revisions read from Git, drift verdicts, and the provision errors seen
// (stalls and backoffs).
type applyState struct {
	drift    map[string]string
	resolved map[string]map[string]string
	failures map[string]Failure // nil: read the record again
	good     map[string]Good    // nil: read the record again
	specs    map[string]*schema.Fleet
	stalled  map[string]string
	retry    map[string]*retryState
	exits    map[string]int // instances of the kept generation that exited, by service
	own      ownSteps       // what this Apply provisioned and retired
}

type retryState struct {
	attempts int
	until    time.Time
	err      string
}

func newApplyState() *applyState {
	return &applyState{drift: map[string]string{}, resolved: map[string]map[string]string{},
		specs: map[string]*schema.Fleet{}, stalled: map[string]string{}, retry: map[string]*retryState{}, exits: map[string]int{}}
}

// fail schedules the next provision of the service after a transient
// error: exponential from 1s, capped at 1m, with ±20% jitter; a
// *WaitError says when exactly.
func (st *applyState) fail(service string, err error, now time.Time) time.Time {
	r := st.retry[service]
	if r == nil {
		r = &retryState{}
		st.retry[service] = r
	}
	r.attempts++
	d := min(time.Second<<min(r.attempts-1, 6), time.Minute)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	r.until, r.err = now.Add(d), err.Error()
	var w *WaitError
	if errors.As(err, &w) {
		r.until = w.Until
	}
	return r.until
}

func (st *applyState) succeeded(service string) { delete(st.retry, service) }

func (st *applyState) backoffs() map[string]Backoff {
	out := map[string]Backoff{}
	for name, r := range st.retry {
		out[name] = Backoff{Until: r.until, Err: r.err}
	}
	return out
}

// fleetAt reads the fleet at an older revision, once per Apply.
func (e *Executor) fleetAt(ctx context.Context, revision string, st *applyState) *schema.Fleet {
	if f, ok := st.specs[revision]; ok {
		return f
	}
	if e.Specs == nil || revision == "" {
		return nil
	}
	f, err := e.Specs(ctx, revision)
	if err != nil {
		e.logger().Warn("cannot read an older revision", "revision", revision, "error", err)
		f = nil
	}
	st.specs[revision] = f
	return f
}

// desired computes what each service should become at revision, taking
// the revision record into account (see Executor.Apply).
func (e *Executor) desired(ctx context.Context, fleet *schema.Fleet, revision string, traffic map[string]Traffic, obs []Observed, st *applyState) (map[string]Desired, error) {
	if st.failures == nil {
		f, err := e.Revisions.ForRevision(fleet.Name, revision)
		if err != nil {
			return nil, err
		}
		st.failures = f
	}
	if st.good == nil {
		g, err := e.Revisions.Good(fleet.Name)
		if err != nil {
			return nil, err
		}
		st.good = g
	}
	out := map[string]Desired{}
	for name, svc := range fleet.Services {
		tr, known := traffic[name]
		if !known {
			tr = rebuildTraffic(aliveOf(obs, name))
		}
		extra, done := st.resolved[name]
		if !done {
			if r := st.retry["resolve/"+name]; r != nil && e.now().Before(r.until) {
				out[name] = e.unresolved(ctx, name, svc, tr, fmt.Errorf("%s", r.err), st)
				continue
			}
			var err error
			if extra, err = e.resolve(ctx, svc); err != nil {
				out[name] = e.unresolved(ctx, name, svc, tr, err, st)
				continue
			}
			delete(st.retry, "resolve/"+name)
			st.resolved[name] = extra
		}
		d := Desired{Spec: svc, Hash: svc.SpecHash(extra), Revision: revision, Resolved: extra}
		if fl, failed := st.failures[name]; failed && fl.Applies(d.Hash) {
			rb := e.rollbackTo(ctx, name, d, tr, obs, st)
			rb.FailedRevision = fl.Revision
			out[name] = rb
			continue
		}
		if tr.Active != "" && tr.Active != d.Hash {
			if g := e.lastGood(ctx, name, tr.Active, st); g != nil {
				d.Why = SpecChanges(*g, d)
				if e.secrets().Stale(*g) == "" {
					d.Current = g
				}
			}
		}
		out[name] = d
	}
	return out, nil
}

// resolve returns what makes svc's instances what they are beyond its
// spec: what the target resolves (an executable's digest, an image's
// content id) and the keyed digests of its secrets (see Secrets.Resolve).
func (e *Executor) resolve(ctx context.Context, svc *schema.Service) (map[string]string, error) {
	var extra map[string]string
	if r, ok := e.Target.(targets.Resolver); ok {
		var err error
		if extra, err = r.Resolve(ctx, svc); err != nil {
			return nil, err
		}
	}
	secrets, err := e.secrets().Resolve(svc)
	if err != nil {
		return nil, err
	}
	if len(secrets) > 0 {
		extra = maps.Clone(extra)
		if extra == nil {
			extra = map[string]string{}
		}
		maps.Copy(extra, secrets)
	}
	return extra, nil
}

// unresolved is the desired state of a service whose spec cannot be
// resolved: its last good generation when that is serving (dead instances
// are still replaced), else a hold; either way reported degraded.
func (e *Executor) unresolved(ctx context.Context, name string, svc *schema.Service, tr Traffic, err error, st *applyState) Desired {
	msg := fmt.Sprintf("cannot resolve the spec: %v", err)
	if Classify(err) != Stalling {
		key := "resolve/" + name
		if r := st.retry[key]; r == nil || !e.now().Before(r.until) {
			st.fail(key, err, e.now())
		}
		msg = fmt.Sprintf("cannot resolve the spec (retrying): %v", err)
	}
	if cur := e.current(ctx, name, tr.Active, st); cur != nil {
		c := *cur
		c.Stalled = msg
		return c
	}
	return Desired{Expose: svc.Expose, Stalled: msg, Declared: svc}
}

// current is the service's last good generation when it is the one
// serving (active) and more of its instances can be made (its secrets
// are still what they were), with the spec read from its revision.
func (e *Executor) current(ctx context.Context, name, active string, st *applyState) *Desired {
	g := e.lastGood(ctx, name, active, st)
	if g == nil || e.secrets().Stale(*g) != "" {
		return nil
	}
	return g
}

// lastGood is the service's last good generation when it is the one
// serving (active), with the spec read from its revision.
func (e *Executor) lastGood(ctx context.Context, name, active string, st *applyState) *Desired {
	g, ok := st.good[name]
	if !ok || g.Hash != active || active == "" {
		return nil
	}
	f := e.fleetAt(ctx, g.Revision, st)
	if f == nil || f.Services[name] == nil || f.Services[name].SpecHash(g.Resolved) != g.Hash {
		return nil
	}
	return &Desired{Spec: f.Services[name], Hash: g.Hash, Revision: g.Revision, Resolved: g.Resolved}
}

// rollbackTo builds the desired state of a rollback from the failed desired
// state d: the last revision that converged for the service, with its
// replica count; without that record, the serving generation with the spec
// of the revision its instances carry.
func (e *Executor) rollbackTo(ctx context.Context, name string, d Desired, tr Traffic, obs []Observed, st *applyState) Desired {
	if g, ok := st.good[name]; ok && g.Hash != d.Hash {
		f := e.fleetAt(ctx, g.Revision, st)
		if f != nil && f.Services[name] != nil && f.Services[name].SpecHash(g.Resolved) == g.Hash {
			rb := Desired{Spec: f.Services[name], Hash: g.Hash, Revision: g.Revision, Resolved: g.Resolved, Rollback: true}
			if why := e.secrets().Stale(rb); why != "" {
				// Its instances cannot be made again: keep those that
				// serve, as they are.
				e.logger().Warn("the last good generation cannot be provisioned again; holding it", "service", name, "generation", short(g.Hash), "reason", why)
				return Desired{Rollback: true, Expose: d.Spec.Expose, Declared: d.Spec,
					Stalled: "cannot provision the last good generation again: " + why}
			}
			return rb
		}
	}
	if tr.Active == d.Hash {
		d.Rollback = true // it is serving already: keep it as it is
		return d
	}
	if tr.Active == "" {
		// The first rollout failed: nothing to go back to but zero instances.
		none := *d.Spec
		none.Replicas = 0
		return Desired{Spec: &none, Hash: d.Hash, Resolved: d.Resolved, Rollback: true}
	}
	rev := ""
	for _, o := range obs {
		if o.Labels.Service == name && o.Labels.SpecHash == tr.Active {
			rev = o.Labels.Revision
			break
		}
	}
	if f := e.fleetAt(ctx, rev, st); f != nil && f.Services[name] != nil {
		old := f.Services[name]
		if old.SpecHash(nil) == tr.Active {
			return Desired{Spec: old, Hash: tr.Active, Revision: rev, Rollback: true}
		}
		if ext := e.rollbackResolved(ctx, old, tr.Active); ext != nil {
			return Desired{Spec: old, Hash: tr.Active, Revision: rev, Rollback: true, Resolved: ext}
		}
	}
	e.logger().Warn("cannot read the spec of the last good generation; holding it", "service", name, "revision", rev)
	return Desired{Rollback: true, Expose: d.Spec.Expose, Declared: d.Spec}
}

// rollbackResolved resolves the spec of the last good generation again and
// returns what it resolved when that gives back the generation's hash (an
// image tag may have moved since: then it cannot be provisioned as it was).
func (e *Executor) rollbackResolved(ctx context.Context, svc *schema.Service, hash string) map[string]string {
	if _, ok := e.Target.(targets.Resolver); !ok && len(svc.SecretEnv) == 0 {
		return nil
	}
	extra, err := e.resolve(ctx, svc)
	if err != nil || svc.SpecHash(extra) != hash {
		return nil
	}
	return extra
}

func aliveOf(obs []Observed, service string) []*Observed {
	var out []*Observed
	for i := range obs {
		if o := &obs[i]; o.Labels.Service == service && o.State != targets.Dead {
			out = append(out, o)
		}
	}
	return out
}
