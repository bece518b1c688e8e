package targetstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Run runs the conformance suite against the targets f builds.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, r *fixture, f Factory)
	}{
		{"ProvisionList", testProvisionList},
		{"DistinctInstances", testDistinct},
		{"Retire", testRetire},
		{"RetireIdempotent", testRetireIdempotent},
		{"KilledIsDead", testKilledIsDead},
		{"Restart", testRestart},
		{"Foreign", testForeign},
		{"Env", testEnv},
		{"SecretEnv", testSecretEnv},
		{"InvalidSpec", testInvalidSpec},
		{"CancelledContext", testCancelled},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newFixture(t, f), f)
		})
	}
}

// fixture is one subtest's harness and the fleet it provisions into.
type fixture struct {
	h     *Harness
	fleet string
}

func newFixture(t *testing.T, f Factory) *fixture {
	t.Helper()
	h := f(t)
	if h.Target == nil || h.Service == nil || h.Kill == nil {
		t.Fatal("targetstest: the Harness needs Target, Service and Kill")
	}
	return &fixture{h: &h, fleet: "conformance-" + token(4)}
}

// spec returns a spec for a new instance of the hello app answering
// version, with env added to its environment.
func (r *fixture) spec(t *testing.T, version string, env map[string]string) targets.Spec {
	t.Helper()
	all := map[string]string{"VERSION": version}
	for k, v := range env {
		all[k] = v
	}
	svc := r.h.Service(t, all)
	name := svc.Name
	if name == "" {
		name = "hello"
	}
	return targets.Spec{
		Labels: targets.Labels{
			Fleet:     r.fleet,
			Service:   name,
			SpecHash:  svc.SpecHash(nil),
			Revision:  token(20),
			CreatedAt: time.Now(), // sub-second, on purpose
		},
		Service: svc,
	}
}

// provision provisions spec and retires the instance when the test ends.
func (r *fixture) provision(t *testing.T, spec targets.Spec) targets.Instance {
	t.Helper()
	inst, err := r.h.Target.Provision(t.Context(), spec)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	r.retireAtEnd(t, inst.ID)
	return inst
}

func (r *fixture) retireAtEnd(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*r.h.timeout())
		defer cancel()
		if err := r.h.Target.Retire(ctx, id); err != nil {
			t.Errorf("cleanup: Retire(%s): %v", id, err)
		}
	})
}

// list returns the instances of the fixture's fleet that tgt lists, and
// checks that every instance listed carries molt's labels.
func (r *fixture) list(t *testing.T, tgt targets.Target) []targets.Instance {
	t.Helper()
	all, err := tgt.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []targets.Instance
	for _, inst := range all {
		if inst.ID == "" || inst.Labels.Fleet == "" || inst.Labels.Service == "" || inst.Labels.SpecHash == "" {
			t.Errorf("List returned an instance without molt's labels: %+v", inst)
		}
		if inst.Labels.Fleet == r.fleet {
			out = append(out, inst)
		}
	}
	return out
}

func (r *fixture) find(t *testing.T, tgt targets.Target, id string) (targets.Instance, bool) {
	t.Helper()
	for _, inst := range r.list(t, tgt) {
		if inst.ID == id {
			return inst, true
		}
	}
	return targets.Instance{}, false
}

// checkInstance checks inst against what was provisioned: labels exactly
// (CreatedAt to the second or better), running, an http endpoint.
func checkInstance(t *testing.T, what string, got targets.Instance, spec targets.Spec) {
	t.Helper()
	if got.ID == "" {
		t.Errorf("%s: empty id", what)
	}
	if got.State != targets.Running {
		t.Errorf("%s: state %q (%s), want running", what, got.State, got.Detail)
	}
	if d := got.Labels.CreatedAt.Sub(spec.Labels.CreatedAt).Abs(); d >= time.Second {
		t.Errorf("%s: CreatedAt %v, want %v (to the second)", what, got.Labels.CreatedAt, spec.Labels.CreatedAt)
	}
	g, w := got.Labels, spec.Labels
	g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	if g != w {
		t.Errorf("%s: labels %+v, want %+v", what, g, w)
	}
	if got.Endpoints["http"] == "" {
		t.Errorf("%s: no http endpoint in %v", what, got.Endpoints)
	}
}

func testProvisionList(t *testing.T, r *fixture, _ Factory) {
	version := "v-" + token(3)
	spec := r.spec(t, version, nil)
	inst := r.provision(t, spec)
	checkInstance(t, "Provision", inst, spec)

	listed := r.list(t, r.h.Target)
	if len(listed) != 1 || listed[0].ID != inst.ID {
		t.Fatalf("List = %v, want only %s", ids(listed), inst.ID)
	}
	checkInstance(t, "List", listed[0], spec)
	if listed[0].Endpoints["http"] != inst.Endpoints["http"] {
		t.Errorf("List endpoint %q, Provision said %q", listed[0].Endpoints["http"], inst.Endpoints["http"])
	}
	waitAnswer(t, r.h, listed[0], version)
}

func testDistinct(t *testing.T, r *fixture, _ Factory) {
	va, vb := "a-"+token(3), "b-"+token(3)
	a := r.provision(t, r.spec(t, va, nil))
	b := r.provision(t, r.spec(t, vb, nil))
	if a.ID == b.ID {
		t.Errorf("two provisions gave the same id %s", a.ID)
	}
	if a.Endpoints["http"] == b.Endpoints["http"] {
		t.Errorf("two provisions gave the same endpoint %s", a.Endpoints["http"])
	}
	waitAnswer(t, r.h, a, va)
	waitAnswer(t, r.h, b, vb)
	if got := r.list(t, r.h.Target); len(got) != 2 {
		t.Errorf("List = %v, want 2 instances", ids(got))
	}
}

func testRetire(t *testing.T, r *fixture, _ Factory) {
	version := "v-" + token(3)
	keep := r.provision(t, r.spec(t, "keep-"+version, nil))
	inst := r.provision(t, r.spec(t, version, nil))
	waitAnswer(t, r.h, inst, version)

	if err := r.h.Target.Retire(t.Context(), inst.ID); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if _, ok := r.find(t, r.h.Target, inst.ID); ok {
		t.Errorf("%s still listed after Retire", inst.ID)
	}
	waitSilent(t, r.h, inst.Endpoints["http"], version)
	if _, ok := r.find(t, r.h.Target, keep.ID); !ok {
		t.Errorf("retiring %s also removed %s", inst.ID, keep.ID)
	}
	waitAnswer(t, r.h, keep, "keep-"+version)
}

func testRetireIdempotent(t *testing.T, r *fixture, _ Factory) {
	inst := r.provision(t, r.spec(t, "v-"+token(3), nil))
	for i := range 2 {
		if err := r.h.Target.Retire(t.Context(), inst.ID); err != nil {
			t.Errorf("Retire #%d: %v", i+1, err)
		}
	}
	for _, id := range []string{"hello-00000000-000000", "no-such-instance-" + token(4)} {
		if err := r.h.Target.Retire(t.Context(), id); err != nil {
			t.Errorf("Retire(unknown %s) = %v, want nil", id, err)
		}
	}
	if got := r.list(t, r.h.Target); len(got) != 0 {
		t.Errorf("List = %v after retiring everything", ids(got))
	}
}

func testKilledIsDead(t *testing.T, r *fixture, _ Factory) {
	version := "v-" + token(3)
	inst := r.provision(t, r.spec(t, version, nil))
	waitAnswer(t, r.h, inst, version)
	r.h.Kill(t, inst)

	ok, note := poll(t, r.h, func(context.Context) (bool, string) {
		got, found := r.find(t, r.h.Target, inst.ID)
		if !found {
			return false, "not listed"
		}
		return got.State == targets.Dead, fmt.Sprintf("%s (%s)", got.State, got.Detail)
	})
	if !ok {
		t.Fatalf("killed instance %s never listed dead; last: %s", inst.ID, note)
	}
	t.Logf("killed instance listed as dead: %s", note)
	if err := r.h.Target.Retire(t.Context(), inst.ID); err != nil {
		t.Fatalf("Retire of a dead instance: %v", err)
	}
	if _, ok := r.find(t, r.h.Target, inst.ID); ok {
		t.Errorf("dead instance %s still listed after Retire", inst.ID)
	}
}

func testRestart(t *testing.T, r *fixture, _ Factory) {
	if r.h.Reopen == nil {
		t.Skip("the harness has no Reopen")
	}
	version := "v-" + token(3)
	spec := r.spec(t, version, nil)
	inst := r.provision(t, spec)
	before := r.list(t, r.h.Target)

	again := r.h.Reopen(t)
	after := r.list(t, again)
	if len(after) != 1 || len(before) != 1 {
		t.Fatalf("before restart %v, after %v: want the one instance %s", ids(before), ids(after), inst.ID)
	}
	checkInstance(t, "List after restart", after[0], spec)
	if after[0].ID != inst.ID || !maps.Equal(after[0].Endpoints, inst.Endpoints) {
		t.Errorf("after restart: %s %v, want %s %v", after[0].ID, after[0].Endpoints, inst.ID, inst.Endpoints)
	}
	waitAnswer(t, r.h, after[0], version)

	if err := again.Retire(t.Context(), inst.ID); err != nil {
		t.Fatalf("Retire through the new target: %v", err)
	}
	waitSilent(t, r.h, inst.Endpoints["http"], version)
	if _, ok := r.find(t, r.h.Target, inst.ID); ok {
		t.Errorf("%s retired through the new target, still listed by the old one", inst.ID)
	}
}

// testForeign runs each of the harness's Foreign makers on a fresh harness
// of its own.
func testForeign(t *testing.T, r *fixture, f Factory) {
	if len(r.h.Foreign) == 0 {
		t.Skip("the harness has no Foreign")
	}
	for _, name := range slices.Sorted(maps.Keys(r.h.Foreign)) {
		t.Run(name, func(t *testing.T) {
			r := newFixture(t, f)
			id, untouched := r.h.Foreign[name](t)
			inst := r.provision(t, r.spec(t, "v-"+token(3), nil))

			all, err := r.h.Target.List(t.Context())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			for _, got := range all {
				if got.ID == id {
					t.Errorf("List returned the foreign %s: %+v", name, got)
				}
			}
			r.list(t, r.h.Target) // checks that every listed instance has labels
			if err := r.h.Target.Retire(t.Context(), id); err != nil {
				t.Logf("Retire(foreign %s) = %v", id, err)
			}
			if err := r.h.Target.Retire(t.Context(), inst.ID); err != nil {
				t.Fatalf("Retire: %v", err)
			}
			untouched(t)
		})
	}
}

func testEnv(t *testing.T, r *fixture, _ Factory) {
	version := "v-" + token(3)
	env := map[string]string{
		"GREETING":   "hello, world = ok",
		"EMPTY_VAR":  "",
		"MULTI_LINE": "one\ntwo",
	}
	inst := r.provision(t, r.spec(t, version, env))
	waitAnswer(t, r.h, inst, version)
	for k, want := range env {
		got, ok := getEnv(t, inst, k)
		if !ok || got != want {
			t.Errorf("instance sees %s=%q (set: %v), want %q", k, got, ok, want)
		}
	}
}

// testSecretEnv: the values of Spec.SecretEnv reach the instance's
// environment (over the service's env of other names) and nothing the
// target returns or lists holds one; a declared secret without a value
// is an invalid spec, and leaves nothing behind.
func testSecretEnv(t *testing.T, r *fixture, _ Factory) {
	version := "v-" + token(3)
	secret := "s3cr3t-" + token(8) + "\n= ok"
	spec := r.spec(t, version, map[string]string{"PLAIN": "visible"})
	svc := *spec.Service
	svc.SecretEnv = map[string]schema.Secret{"DB_PASSWORD": {File: "/nonexistent/read-by-the-executor"}}
	spec.Service = &svc
	spec.SecretEnv = targets.SecretValues{"DB_PASSWORD": secret}
	inst := r.provision(t, spec)
	waitAnswer(t, r.h, inst, version)
	if got, ok := getEnv(t, inst, "DB_PASSWORD"); !ok || got != secret {
		t.Errorf("instance sees DB_PASSWORD=%q (set: %v), want the secret's value", got, ok)
	}
	if got, _ := getEnv(t, inst, "PLAIN"); got != "visible" {
		t.Errorf("instance sees PLAIN=%q, want %q", got, "visible")
	}
	for _, in := range append([]targets.Instance{inst}, r.list(t, r.h.Target)...) {
		if s := fmt.Sprintf("%+v %#v", in, in); strings.Contains(s, secret) || strings.Contains(s, "s3cr3t-") {
			t.Errorf("the target returned the secret's value: %s", s)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", spec, spec, spec, spec.SecretEnv); strings.Contains(s, "s3cr3t-") {
		t.Errorf("a spec prints a secret's value: %s", s)
	}

	missing := r.spec(t, "v-"+token(3), nil)
	msvc := *missing.Service
	msvc.SecretEnv = svc.SecretEnv
	missing.Service = &msvc
	bad, err := r.h.Target.Provision(t.Context(), missing)
	if err == nil {
		r.retireAtEnd(t, bad.ID)
	}
	if !errors.Is(err, targets.ErrInvalidSpec) {
		t.Errorf("Provision of a service whose secret has no value = %v, want ErrInvalidSpec", err)
	}
	if got := r.list(t, r.h.Target); len(got) != 1 {
		t.Errorf("a failed Provision left %v", ids(got))
	}
}

func testInvalidSpec(t *testing.T, r *fixture, _ Factory) {
	spec := r.spec(t, "v-"+token(3), nil)
	svc := *spec.Service
	svc.Process, svc.Docker = nil, nil
	spec.Service = &svc
	inst, err := r.h.Target.Provision(t.Context(), spec)
	if err == nil {
		r.retireAtEnd(t, inst.ID)
	}
	if !errors.Is(err, targets.ErrInvalidSpec) {
		t.Errorf("Provision of a service with neither process nor docker = %v, want ErrInvalidSpec", err)
	}
	if got := r.list(t, r.h.Target); len(got) != 0 {
		t.Errorf("a failed Provision left %v", ids(got))
	}
}

func testCancelled(t *testing.T, r *fixture, _ Factory) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	inst, err := r.h.Target.Provision(ctx, r.spec(t, "v-"+token(3), nil))
	if err == nil {
		r.retireAtEnd(t, inst.ID)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Provision with a cancelled context = %v, want context.Canceled", err)
	}
	if got := r.list(t, r.h.Target); len(got) != 0 {
		t.Errorf("a cancelled Provision left %v", ids(got))
	}
}

func testConcurrent(t *testing.T, r *fixture, _ Factory) {
	const n = 5
	specs := make([]targets.Spec, n)
	for i := range specs {
		specs[i] = r.spec(t, fmt.Sprintf("c%d-%s", i, token(3)), nil)
	}
	insts := make([]targets.Instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			insts[i], errs[i] = r.h.Target.Provision(t.Context(), specs[i])
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Provision #%d: %v", i, err)
			continue
		}
		r.retireAtEnd(t, insts[i].ID)
	}
	if t.Failed() {
		return
	}
	seenID, seenEP := map[string]bool{}, map[string]bool{}
	for i, inst := range insts {
		if seenID[inst.ID] || seenEP[inst.Endpoints["http"]] {
			t.Errorf("instance %s at %s is not distinct", inst.ID, inst.Endpoints["http"])
		}
		seenID[inst.ID], seenEP[inst.Endpoints["http"]] = true, true
		waitAnswer(t, r.h, inst, specs[i].Service.Env["VERSION"])
	}
	if got := r.list(t, r.h.Target); len(got) != n {
		t.Errorf("List = %v, want %d instances", ids(got), n)
	}
}

func ids(insts []targets.Instance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.ID
	}
	return out
}
