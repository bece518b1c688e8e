package docker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// A container carries molt's labels, runs the resolved image id, publishes
// its ports on 127.0.0.1 and sees the target's variables.
func TestProvisionedContainer(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	fleet := fleetName()
	svc := service("web", e.ref, map[string]string{"VERSION": "v1"})
	svc.Ports["admin"] = 9090
	svc.StopGrace = 1500 * time.Millisecond
	s := spec(t, tgt, fleet, svc, true)
	inst := provision(t, tgt, s)
	waitAnswer(t, inst, "v1")

	c := inspect(t, e.api, inst.ID)
	want := map[string]string{
		docker.LabelFleet:     fleet,
		docker.LabelService:   "web",
		docker.LabelSpecHash:  s.Labels.SpecHash,
		docker.LabelRevision:  s.Labels.Revision,
		docker.LabelCreatedAt: s.Labels.CreatedAt.UTC().Format(time.RFC3339Nano),
		docker.LabelEngine:    "local",
		docker.LabelImage:     e.id,
		docker.LabelImageRef:  e.ref,
		docker.LabelStopGrace: "1.5s",
		docker.LabelPorts:     `{"admin":9090,"http":8080}`,
	}
	for k, v := range want {
		if got := c.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if c.Config.Labels[docker.LabelConfig] == "" {
		t.Errorf("no %s label", docker.LabelConfig)
	}
	if c.Config.Image != e.id || !c.HostConfig.ReadonlyRootfs {
		t.Errorf("image %s, read-only %v; want %s, read-only", c.Config.Image, c.HostConfig.ReadonlyRootfs, e.id)
	}
	if !strings.HasPrefix(c.Name, "/molt-web-"+s.Labels.SpecHash[:8]+"-") {
		t.Errorf("container name %s", c.Name)
	}
	for name, ep := range inst.Endpoints {
		if !strings.HasPrefix(ep, "127.0.0.1:") {
			t.Errorf("endpoint %s = %s, want 127.0.0.1:<port>", name, ep)
		}
	}
	if len(inst.Endpoints) != 2 {
		t.Errorf("endpoints %v, want http and admin", inst.Endpoints)
	}
	for k, v := range map[string]string{
		"PORT": "8080", "PORT_HTTP": "8080", "PORT_ADMIN": "9090", "HOST": "0.0.0.0",
		"MOLT_FLEET": fleet, "MOLT_SERVICE": "web", "MOLT_REVISION": s.Labels.Revision, "MOLT_ENGINE": "local",
	} {
		if got := getEnv(t, inst, k); got != v {
			t.Errorf("container sees %s=%q, want %q", k, got, v)
		}
	}
}

// A container removed behind molt's back is simply gone; one that exited
// is listed dead.
func TestGoneBehindBack(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	fleet := fleetName()
	svc := service("web", e.ref, map[string]string{"EXIT_AFTER": "10ms"})
	exited := provision(t, tgt, spec(t, tgt, fleet, svc, true))
	removed := provision(t, tgt, spec(t, tgt, fleet, service("web", e.ref, nil), true))
	removeBehindBack(t, e.api, removed.ID)

	targetstest.Eventually(t, 15*time.Second, "the exited instance listed dead", func() bool {
		listed := listFleet(t, tgt, fleet)
		return len(listed) == 1 && listed[0].ID == exited.ID && listed[0].State == targets.Dead
	})
	if err := tgt.Retire(t.Context(), removed.ID); err != nil {
		t.Errorf("Retire of a removed container = %v, want nil", err)
	}
}

// Retire refuses a container without molt's labels and leaves it be.
func TestRetireRefusesForeign(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	id, untouched := dockertest.Foreign(t, e.api, e.ref)
	for _, ref := range []string{"local/" + id[:12], "local/" + id} {
		if err := tgt.Retire(t.Context(), ref); !errors.Is(err, docker.ErrNotMolt) {
			t.Errorf("Retire(%s) = %v, want ErrNotMolt", ref, err)
		}
	}
	for _, ref := range []string{"nowhere/" + id[:12], "local/not-hex-at-all"} {
		if err := tgt.Retire(t.Context(), ref); err == nil {
			t.Errorf("Retire(%s) = nil, want an error", ref)
		}
	}
	untouched(t)
}

// A spec the target cannot run fails before anything is created.
func TestProvisionInvalid(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	fleet := fleetName()
	tests := []struct {
		name    string
		edit    func(s *targets.Spec)
		invalid bool // wraps targets.ErrInvalidSpec
	}{
		{"port 0", func(s *targets.Spec) { s.Service.Ports["http"] = 0 }, true},
		{"bad memory", func(s *targets.Spec) { s.Service.Docker.Memory = "lots" }, true},
		{"resolved to a tag", func(s *targets.Spec) { s.Resolved = map[string]string{"image": e.ref} }, true},
		{"unknown engine", func(s *targets.Spec) { s.Service.Docker.Engines = []string{"nowhere"} }, true},
		{"missing network", func(s *targets.Spec) { s.Service.Docker.Networks = []string{"molt-no-such-network"} }, false},
		{"resolved image not on the engine", func(s *targets.Spec) {
			s.Resolved = map[string]string{"image": "sha256:" + strings.Repeat("0", 64)}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := spec(t, tgt, fleet, service("web", e.ref, nil), false)
			tc.edit(&s)
			inst, err := tgt.Provision(t.Context(), s)
			if err == nil {
				tgt.Retire(t.Context(), inst.ID)
				t.Fatalf("Provision succeeded")
			}
			if errors.Is(err, targets.ErrInvalidSpec) != tc.invalid {
				t.Errorf("Provision = %v; invalid spec: %v, want %v", err, !tc.invalid, tc.invalid)
			}
			t.Logf("Provision: %v", err)
		})
	}
	if got := listFleet(t, tgt, fleet); len(got) != 0 {
		t.Errorf("failed provisions left %v", ids(got))
	}
}
