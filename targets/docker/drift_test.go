package docker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// A container as molt made it has not drifted, whatever the service asks
// of the engine: the configuration hash molt writes at creation matches
// the one it computes from an inspect.
func TestNoDriftAsCreated(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	net := testNetwork(t, e.api)
	netID := networkID(t, e.api, net)
	tests := []struct {
		name string
		edit func(svc *schema.Service)
	}{
		{"read-only", func(*schema.Service) {}},
		{"writable", func(s *schema.Service) { s.Docker.ReadOnlyRootfs = false }},
		{"writable with tmpfs", func(s *schema.Service) {
			s.Docker.ReadOnlyRootfs = false
			s.Docker.Tmpfs = []string{"/tmp", "/var/cache/app:size=1m"}
		}},
		{"limits", func(s *schema.Service) { s.Docker.Memory = "64m"; s.Docker.CPUs = 0.5 }},
		{"user, entrypoint and command", func(s *schema.Service) {
			s.Docker.User = "65534:65534"
			s.Docker.Entrypoint = []string{"/hello"}
			s.Docker.Command = []string{"an-argument"}
		}},
		{"command only", func(s *schema.Service) { s.Docker.Command = []string{"an-argument"} }},
		{"env shadowing the image's", func(s *schema.Service) { s.Env["HOST"] = "0.0.0.0"; s.Env["PATH"] = "/" }},
		{"networks", func(s *schema.Service) { s.Docker.Networks = []string{net, "bridge"} }},
		{"network by id", func(s *schema.Service) { s.Docker.Networks = []string{"default", netID} }},
		{"two ports", func(s *schema.Service) { s.Ports["admin"] = 9090 }},
	}
	fleet := fleetName()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := service("web", e.ref, map[string]string{"VERSION": "v1"})
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

// A file written into a writable container is drift; a read-only one
// refuses the write and has not drifted.
func TestDriftFileSystem(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	fleet := fleetName()

	writable := service("web", e.ref, nil)
	writable.Docker.ReadOnlyRootfs = false
	writable.Docker.Tmpfs = []string{"/run/app"}
	w := provision(t, tgt, spec(t, tgt, fleet, writable, true))
	if err := dockertest.CopyFile(t.Context(), e.api, dockertest.ContainerID(t, w.ID), "/x", "edited in place"); err != nil {
		t.Fatalf("copy into the writable container: %v", err)
	}
	drift, err := tgt.Drift(t.Context(), w)
	if err != nil || drift != "file system changed: /x added" {
		t.Errorf("Drift = %q, %v; want %q", drift, err, "file system changed: /x added")
	}

	ro := provision(t, tgt, spec(t, tgt, fleet, service("web", e.ref, nil), true))
	if err := dockertest.CopyFile(t.Context(), e.api, dockertest.ContainerID(t, ro.ID), "/x", "edited in place"); err == nil {
		t.Errorf("a write into a read-only container succeeded")
	} else {
		t.Logf("write into the read-only container: %v", err)
	}
	if drift, err := tgt.Drift(t.Context(), ro); err != nil || drift != "" {
		t.Errorf("read-only container: Drift = %q, %v; want none", drift, err)
	}
}

// A container changed behind molt's back (docker update, docker network
// connect or disconnect) no longer matches its labels.
func TestDriftConfiguration(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	net := testNetwork(t, e.api)
	tests := []struct {
		name   string
		change func(ctx context.Context, id string) error
	}{
		{"docker update", func(ctx context.Context, id string) error {
			_, err := e.api.ContainerUpdate(ctx, id, client.ContainerUpdateOptions{Resources: &container.Resources{CPUShares: 512}})
			return err
		}},
		{"docker network connect", func(ctx context.Context, id string) error {
			_, err := e.api.NetworkConnect(ctx, net, client.NetworkConnectOptions{Container: id})
			return err
		}},
		{"docker network disconnect", func(ctx context.Context, id string) error {
			_, err := e.api.NetworkDisconnect(ctx, "bridge", client.NetworkDisconnectOptions{Container: id})
			return err
		}},
	}
	fleet := fleetName()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst := provision(t, tgt, spec(t, tgt, fleet, service("web", e.ref, nil), true))
			if err := tc.change(t.Context(), dockertest.ContainerID(t, inst.ID)); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			drift, err := tgt.Drift(t.Context(), inst)
			if err != nil || !strings.HasPrefix(drift, "configuration changed") {
				t.Errorf("Drift = %q, %v; want a configuration change", drift, err)
			}
		})
	}
}

// Drift refuses containers that are not molt's, and a container that is
// gone has not drifted.
func TestDriftForeignAndGone(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	id, untouched := dockertest.Foreign(t, e.api, e.ref)
	_, err := tgt.Drift(t.Context(), targets.Instance{ID: "local/" + id[:12]})
	if !errors.Is(err, docker.ErrNotMolt) {
		t.Errorf("Drift of a foreign container = %v, want ErrNotMolt", err)
	}
	untouched(t)

	inst := provision(t, tgt, spec(t, tgt, fleetName(), service("web", e.ref, nil), true))
	removeBehindBack(t, e.api, inst.ID)
	if drift, err := tgt.Drift(t.Context(), inst); err != nil || drift != "" {
		t.Errorf("Drift of a removed container = %q, %v; want none", drift, err)
	}
}

// testNetwork creates a bridge network, removed when t ends.
func testNetwork(t *testing.T, api *client.Client) string {
	t.Helper()
	name := "molt-test-net-" + dockertest.Token(4)
	if _, err := api.NetworkCreate(t.Context(), name, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := api.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil {
			t.Logf("cleanup: remove network %s: %v", name, err)
		}
	})
	return name
}

func networkID(t *testing.T, api *client.Client, name string) string {
	t.Helper()
	res, err := api.NetworkInspect(t.Context(), name, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Network.ID
}

// removeBehindBack removes the container of a docker instance, as
// docker rm -f would.
func removeBehindBack(t *testing.T, api *client.Client, id string) {
	t.Helper()
	_, err := api.ContainerRemove(t.Context(), dockertest.ContainerID(t, id), client.ContainerRemoveOptions{Force: true})
	if err != nil {
		t.Fatalf("docker rm -f: %v", err)
	}
}
