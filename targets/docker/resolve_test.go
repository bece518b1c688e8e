package docker_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// A tag moved to another image resolves to the other image, changes the
// spec hash, and does not change what an earlier resolution provisions.
func TestResolveFollowsRetag(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	svc := service("web", e.ref, nil)

	got, err := tgt.Resolve(t.Context(), svc)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got[docker.ResolvedImage] != e.id {
		t.Fatalf("Resolve = %v, want image %s", got, e.id)
	}
	before := spec(t, tgt, fleetName(), svc, true)

	other := dockertest.Ref("other")
	id2 := dockertest.HelloImage(t, e.api, other, "v2")
	if id2 == e.id {
		t.Fatalf("variants v1 and v2 built the same image %s", id2)
	}
	dockertest.Tag(t, e.api, other, e.ref) // docker tag other ref: the tag moves

	again, err := tgt.Resolve(t.Context(), svc)
	if err != nil {
		t.Fatalf("Resolve after retag: %v", err)
	}
	if again[docker.ResolvedImage] != id2 {
		t.Errorf("Resolve after retag = %v, want image %s", again, id2)
	}
	if svc.SpecHash(got) == svc.SpecHash(again) {
		t.Errorf("spec hash %s did not change with the image", svc.SpecHash(got))
	}

	// Provisioning the earlier resolution runs the earlier image, by id.
	inst := provision(t, tgt, before)
	c := inspect(t, e.api, inst.ID)
	if c.Image != e.id || c.Config.Image != e.id {
		t.Errorf("container runs %s (config %s), want %s", c.Image, c.Config.Image, e.id)
	}
	if c.Config.Labels[docker.LabelImage] != e.id || c.Config.Labels[docker.LabelImageRef] != e.ref {
		t.Errorf("labels %v, want image %s from %s", c.Config.Labels, e.id, e.ref)
	}
}

// An image that is not on the engine and cannot be pulled (no registry
// here) is a clear error, and provisions nothing.
func TestResolveMissingImage(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	missing := "molt-test-missing-" + dockertest.Token(4) + ":v2"
	svc := service("web", missing, nil)

	_, err := tgt.Resolve(t.Context(), svc)
	want := "image " + missing + " is not on engine local and cannot be pulled: "
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve = %v, want an error saying %q", err, want)
	}
	t.Logf("Resolve: %v", err)

	fleet := fleetName()
	s := spec(t, tgt, fleet, svc, false)
	if inst, err := tgt.Provision(t.Context(), s); err == nil {
		tgt.Retire(t.Context(), inst.ID)
		t.Fatalf("Provision of a missing image succeeded: %s", inst.ID)
	} else if !strings.Contains(err.Error(), want) {
		t.Errorf("Provision = %v, want %q", err, want)
	}
	if got := listFleet(t, tgt, fleet); len(got) != 0 {
		t.Errorf("a failed Provision left %v", got)
	}
	res, err := e.api.ContainerList(t.Context(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", docker.LabelFleet+"="+fleet),
	})
	if err != nil || len(res.Items) != 0 {
		t.Errorf("containers of the fleet: %d (%v), want none", len(res.Items), err)
	}
}

func TestResolveInvalid(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	proc := service("p", e.ref, nil)
	proc.Docker = nil
	unknown := service("u", e.ref, nil)
	unknown.Docker.Engines = []string{"nowhere"}
	for _, tc := range []struct {
		name string
		svc  *schema.Service
	}{{"not docker", proc}, {"unknown engine", unknown}} {
		_, err := tgt.Resolve(t.Context(), tc.svc)
		if !errors.Is(err, targets.ErrInvalidSpec) {
			t.Errorf("%s: Resolve = %v, want ErrInvalidSpec", tc.name, err)
		}
	}
}
