package docker_test

import (
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestPodmanConformance runs the conformance suite against a Podman API
// service of the test's own, reached as a Docker engine: nothing in the
// target knows it is Podman.
func TestPodmanConformance(t *testing.T) {
	p := dockertest.StartPodman(t)
	ref := dockertest.Ref(t.Name())
	p.HelloImage(t, ref, "v1")
	opts := docker.Options{Engines: []docker.Engine{{Name: "podman", Host: p.Host}}}
	targetstest.Run(t, func(t *testing.T) targetstest.Harness {
		return targetstest.Harness{
			Target: newTarget(t, opts),
			Service: func(t *testing.T, env map[string]string) *schema.Service {
				return service("hello", ref, env)
			},
			Kill: func(t *testing.T, inst targets.Instance) {
				dockertest.Kill(t, p.API, dockertest.ContainerID(t, inst.ID))
			},
			Reopen: func(t *testing.T) targets.Target { return newTarget(t, opts) },
			Foreign: map[string]func(t *testing.T) (string, func(t *testing.T)){
				"container": func(t *testing.T) (string, func(t *testing.T)) {
					id, untouched := dockertest.Foreign(t, p.API, ref)
					return "podman/" + id[:12], func(t *testing.T) { untouched(t) }
				},
			},
			Timeout: 20 * time.Second,
		}
	})
}

// TestPodmanNoDriftAsCreated: an untouched container of Podman has not
// drifted, whatever Podman adds to its configuration (container=podman,
// TERM and HOSTNAME in its environment, a working directory of "/", the
// tmpfs of a read-only root, its default network named podman), so molt
// does not replace Podman's instances over and over.
func TestPodmanNoDriftAsCreated(t *testing.T) {
	p := dockertest.StartPodman(t)
	ref := dockertest.Ref(t.Name())
	p.HelloImage(t, ref, "v1")
	tgt := newTarget(t, docker.Options{Engines: []docker.Engine{{Name: "podman", Host: p.Host}}})
	tests := []struct {
		name string
		edit func(svc *schema.Service)
	}{
		{"read-only", func(*schema.Service) {}},
		{"writable", func(s *schema.Service) { s.Docker.ReadOnlyRootfs = false }},
		{"read-only with a tmpfs of its own at /tmp", func(s *schema.Service) { s.Docker.Tmpfs = []string{"/tmp", "/var/cache/app:size=1m"} }},
		{"limits", func(s *schema.Service) { s.Docker.Memory = "64m"; s.Docker.CPUs = 0.5 }},
		{"user, entrypoint and command", func(s *schema.Service) {
			s.Docker.User = "65534:65534"
			s.Docker.Entrypoint = []string{"/hello"}
			s.Docker.Command = []string{"an-argument"}
		}},
		{"env the same as Podman's", func(s *schema.Service) { s.Env["TERM"] = "xterm"; s.Env["HOST"] = "0.0.0.0" }},
		{"two ports", func(s *schema.Service) { s.Ports["admin"] = 9090 }},
	}
	fleet := fleetName()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := service("web", ref, map[string]string{"VERSION": "v1"})
			tc.edit(svc)
			inst := provision(t, tgt, spec(t, tgt, fleet, svc, true))
			waitAnswer(t, inst, "v1")
			drift, err := tgt.Drift(t.Context(), inst)
			if err != nil || drift != "" {
				t.Errorf("Drift = %q, %v; want none", drift, err)
			}
		})
	}
}
