package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/github"
	"github.com/molt-dev/molt/targets"
)

// TestFleetStatusCanary: during a canary, the status names each
// instance's role and weight from the traffic record and the route, the
// rollout's progress and deadline, the canary's window, and the commit
// links of both revisions.
func TestFleetStatusCanary(t *testing.T) {
	now := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	oldH, newH, warmH := "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"
	inst := func(id, hash, rev string, age time.Duration, h reconciler.Health, state targets.State) reconciler.Observed {
		return reconciler.Observed{Instance: targets.Instance{ID: id, State: state, Endpoints: map[string]string{"http": "127.0.0.1:1" + id[len(id)-1:]},
			Labels: targets.Labels{Fleet: "f", Service: "web", SpecHash: hash, Revision: rev, CreatedAt: now.Add(-age)}}, Health: h, HealthySince: now.Add(-age / 2)}
	}
	tr := reconciler.Traffic{Active: oldH, Previous: warmH, Instances: []string{"o1", "o2", "n1"},
		Canary: &reconciler.CanaryState{Hash: newH, Weight: 20, Since: now.Add(-time.Minute)}}
	raw, _ := json.Marshal(tr)
	route := targets.Route{Service: "web", Listen: "127.0.0.1:8080", Meta: map[string]string{reconciler.MetaTraffic: string(raw)},
		Backends: []targets.Backend{{Instance: "o1", Generation: oldH, Weight: 2}, {Instance: "o2", Generation: oldH, Weight: 2}, {Instance: "n1", Generation: newH, Weight: 1}}}
	spec := &schema.Fleet{Name: "f", Services: map[string]*schema.Service{"web": {Name: "web", Replicas: 2,
		Expose: &schema.Expose{Listen: "127.0.0.1:8080", Port: "http"}, Health: schema.Health{Grace: time.Minute},
		Rollout: schema.Rollout{Strategy: schema.Strategy("canary"), ProgressDeadline: 5 * time.Minute,
			Canary: &schema.Canary{Count: 1, Weight: 20, Duration: 10 * time.Minute}}}}}
	plan := reconciler.Plan{Fleet: "f", Revision: revB, Services: []reconciler.ServicePlan{{Service: "web", Strategy: "canary", From: oldH, FromRevision: revA,
		To: newH, ToRevision: revB, Replicas: 2, Waiting: "the canary's observation window", WaitReason: reconciler.WaitCanary}}}
	v := fleetInput{name: "f", repo: github.RepoRef{Owner: "o", Name: "r"}, spec: spec, plan: &plan, routes: []targets.Route{route}, now: now,
		instances: []reconciler.Observed{
			inst("o1", oldH, revA, time.Hour, reconciler.Healthy, targets.Running),
			inst("o2", oldH, revA, time.Hour, reconciler.Healthy, targets.Running),
			inst("n1", newH, revB, 2*time.Minute, reconciler.Healthy, targets.Running),
			inst("n2", newH, revB, 10*time.Second, reconciler.HealthUnknown, targets.Running),
			inst("w1", warmH, revA, 2*time.Hour, reconciler.Healthy, targets.Running),
			inst("d1", oldH, revA, time.Hour, reconciler.HealthUnknown, targets.Dead),
		},
		events: []apiEvent{{Kind: "selfheal", Fleet: "f", Service: "web"}, {Kind: "deploy", Fleet: "f", Service: "web", Message: "deployed", Time: now.Add(-time.Hour)}}}
	f := fleetStatus(v)
	if f.Commit != sha(revB) || f.CommitURL != "https://github.com/o/r/commit/"+sha(revB) || len(f.Services) != 1 {
		t.Fatalf("fleet %+v", f)
	}
	s := f.Services[0]
	if s.Live.Generation != "aaaaaaaa" || s.Live.Commit != sha(revA) || s.Desired.Generation != "bbbbbbbb" || s.Desired.Revision != revB {
		t.Errorf("live %+v, desired %+v", s.Live, s.Desired)
	}
	want := map[string]struct {
		role, health string
		weight       int
	}{
		"o1": {"active", "healthy", 40}, "o2": {"active", "healthy", 40}, "n1": {"canary", "healthy", 20},
		"n2": {"canary", "starting", 0}, "w1": {"previous", "healthy", 0}, "d1": {"retiring", "dead", 0},
	}
	if len(s.Instances) != len(want) {
		t.Fatalf("%d instances, want %d", len(s.Instances), len(want))
	}
	for _, in := range s.Instances {
		w := want[in.ID]
		if in.Role != w.role || in.Health != w.health || in.Weight != w.weight || in.Address == "" || in.Target != "process" {
			t.Errorf("instance %s: %+v, want %+v", in.ID, in, w)
		}
	}
	if s.Healthy != 2 || s.Replicas != 2 || s.Strategy != "canary" {
		t.Errorf("healthy %d/%d %s", s.Healthy, s.Replicas, s.Strategy)
	}
	r := s.Rollout
	if r == nil || r.From != "aaaaaaaa" || r.To != "bbbbbbbb" || r.Healthy != 1 || r.Wanted != 2 || !r.StartedAt.Equal(now.Add(-2*time.Minute)) ||
		!r.Deadline.Equal(now.Add(-10*time.Second).Add(5*time.Minute)) || r.Step != "waiting: the canary's observation window" {
		t.Errorf("rollout %+v", r)
	}
	if c := s.Canary; c == nil || c.Weight != 20 || !c.Until.Equal(now.Add(9*time.Minute)) {
		t.Errorf("canary %+v", c)
	}
	if o := s.LastOutcome; o == nil || o.Result != "converged" {
		t.Errorf("last outcome %+v", o)
	}
}
