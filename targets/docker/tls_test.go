package docker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// An engine reached over TCP with TLS, as on another host: instances go
// where the plan places them (Spec.Engine), their endpoints name the
// engine's host-ip, Engines reports each engine's state and capacity, a
// full engine refuses a new instance, and an engine that is killed is
// reported down, its instances not listed, until it comes back with them
// stopped (by its own restart) and retirable.
func TestTLSEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second Docker Engine")
	}
	e := setup(t)
	tls := dockertest.StartTLSEngine(t, e.api)
	tls.Load(t, e.api, e.ref)
	remote, err := docker.ParseEngine(tls.Flag("remote", "max=1"))
	if err != nil {
		t.Fatal(err)
	}
	tgt := newTarget(t, docker.Options{Timeout: 5 * time.Second, Engines: []docker.Engine{
		{Name: "local", Host: dockertest.Host()}, remote,
	}})
	fleet := fleetName()
	svc := service("web", e.ref, map[string]string{"VERSION": "v1"})

	s := spec(t, tgt, fleet, svc, true)
	s.Engine = "remote"
	inst := provision(t, tgt, s)
	if inst.Engine != "remote" || !strings.HasPrefix(inst.ID, "remote/") {
		t.Fatalf("instance %s on engine %q, want remote", inst.ID, inst.Engine)
	}
	if ep := inst.Endpoints["http"]; !strings.HasPrefix(ep, "127.0.0.1:") {
		t.Fatalf("endpoint %q does not name the engine's host-ip", ep)
	}
	waitAnswer(t, inst, "v1")

	// Full: max=1.
	s2 := spec(t, tgt, fleet, svc, true)
	s2.Engine = "remote"
	if _, err := tgt.Provision(t.Context(), s2); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("a second instance on remote (max=1): %v, want a full engine", err)
	}
	listFleet(t, tgt, fleet)
	want := []targets.Engine{{Name: "local", Up: true}, {Name: "remote", Up: true, Max: 1, Running: 1}}
	if got := tgt.Engines(); got[0].Name != want[0].Name || !got[0].Up || got[1] != want[1] {
		t.Fatalf("Engines() = %+v, want %+v (local's count is the whole engine's)", got, want)
	}

	tls.Kill(t)
	if got := listFleet(t, tgt, fleet); len(got) != 0 {
		t.Errorf("listed %v with the remote engine killed, want none (lost)", ids(got))
	}
	if got := tgt.Engines(); got[1].Up {
		t.Errorf("remote reported up after it was killed")
	}
	s3 := spec(t, tgt, fleet, svc, true) // resolved without the lost engine
	s3.Engine = "remote"
	if _, err := tgt.Provision(t.Context(), s3); err == nil {
		t.Errorf("Provision on the lost engine succeeded")
	}

	tls.Start(t)
	got := listFleet(t, tgt, fleet)
	if len(got) != 1 || got[0].ID != inst.ID || got[0].State != targets.Dead {
		t.Fatalf("after the engine came back: %+v, want %s listed dead", got, inst.ID)
	}
	if !tgt.Engines()[1].Up {
		t.Errorf("remote not reported up once it answers again")
	}
	// (provision's cleanup retires it)
}
