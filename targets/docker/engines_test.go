package docker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// Two engine names for one daemon are two engines to molt: instances of a
// service are spread evenly over them, each is listed once, and a service
// that names an engine stays on it.
func TestSpreadAcrossEngines(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{Engines: []docker.Engine{
		{Name: "a", Host: dockertest.Host()},
		{Name: "b", Host: dockertest.Host()},
	}})
	fleet := fleetName()
	svc := service("web", e.ref, nil)

	for range 2 { // one at a time
		provision(t, tgt, spec(t, tgt, fleet, svc, true))
	}
	insts := make([]targets.Instance, 4) // and two at once
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			s := spec(t, tgt, fleet, svc, false)
			inst, err := tgt.Provision(t.Context(), s)
			if err != nil {
				t.Errorf("Provision: %v", err)
				return
			}
			insts[i] = inst
		})
	}
	wg.Wait()
	for _, inst := range insts[:2] {
		if inst.ID != "" {
			t.Cleanup(func() { tgt.Retire(context.Background(), inst.ID) })
		}
	}
	listed := listFleet(t, tgt, fleet)
	if got := perEngine(listed); len(listed) != 4 || got["a"] != 2 || got["b"] != 2 {
		t.Errorf("listed %v: want 2 instances on a and 2 on b, each once", ids(listed))
	}

	only := service("pinned", e.ref, nil)
	only.Docker.Engines = []string{"b"}
	for range 2 {
		provision(t, tgt, spec(t, tgt, fleet, only, true))
	}
	pinned := 0
	for _, in := range listFleet(t, tgt, fleet) {
		if in.Labels.Service == "pinned" {
			pinned++
			if !strings.HasPrefix(in.ID, "b/") {
				t.Errorf("pinned instance %s is not on engine b", in.ID)
			}
		}
	}
	if pinned != 2 {
		t.Errorf("%d pinned instances listed, want 2", pinned)
	}
}

// An engine that goes away is skipped: its instances are not listed (so
// molt replaces them elsewhere), and the others carry on.
func TestEngineGoesAway(t *testing.T) {
	e := setup(t)
	proxy := dockertest.NewProxy(t)
	tgt := newTarget(t, docker.Options{Timeout: 3 * time.Second, Engines: []docker.Engine{
		{Name: "a", Host: dockertest.Host()},
		{Name: "b", Host: proxy.Host},
	}})
	// Both engines are one daemon: once the proxy is gone, every instance
	// is retired through an engine named b that reaches it directly.
	direct := newTarget(t, docker.Options{Engines: []docker.Engine{{Name: "b", Host: dockertest.Host()}}})
	fleet := fleetName()
	svc := service("web", e.ref, map[string]string{"VERSION": "v1"})

	var onA, onB targets.Instance
	for range 2 {
		inst, err := tgt.Provision(t.Context(), spec(t, tgt, fleet, svc, true))
		if err != nil {
			t.Fatalf("Provision: %v", err)
		}
		t.Cleanup(func() {
			if err := direct.Retire(context.Background(), strings.Replace(inst.ID, "a/", "b/", 1)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		if strings.HasPrefix(inst.ID, "a/") {
			onA = inst
		} else {
			onB = inst
		}
	}
	if onA.ID == "" || onB.ID == "" {
		t.Fatalf("want one instance on each engine, got %s and %s", onA.ID, onB.ID)
	}

	proxy.Stop()
	listed := listFleet(t, tgt, fleet)
	if len(listed) != 1 || listed[0].ID != onA.ID {
		t.Errorf("with b gone, List = %v; want only %s", ids(listed), onA.ID)
	}
	if _, err := tgt.Resolve(t.Context(), svc); err != nil {
		t.Errorf("Resolve with b gone: %v", err)
	}
	inst := provision(t, tgt, spec(t, tgt, fleet, svc, true))
	if !strings.HasPrefix(inst.ID, "a/") {
		t.Errorf("with b gone, provisioned %s; want engine a", inst.ID)
	}
	waitAnswer(t, inst, "v1")
	if err := tgt.Retire(t.Context(), onB.ID); err == nil {
		t.Errorf("Retire(%s) on a gone engine = nil, want an error", onB.ID)
	}
}

// An engine where nothing listens does not stop the target; a service
// that only runs there cannot resolve, and a target whose only engine is
// gone cannot list.
func TestUnreachableEngine(t *testing.T) {
	e := setup(t)
	gone := dockertest.Unreachable(t)
	tgt := newTarget(t, docker.Options{Engines: []docker.Engine{
		{Name: "local", Host: dockertest.Host()},
		{Name: "gone", Host: gone},
	}})
	fleet := fleetName()
	svc := service("web", e.ref, nil)
	for range 2 {
		inst := provision(t, tgt, spec(t, tgt, fleet, svc, true))
		if !strings.HasPrefix(inst.ID, "local/") {
			t.Errorf("provisioned %s; want engine local", inst.ID)
		}
	}
	if got := listFleet(t, tgt, fleet); len(got) != 2 {
		t.Errorf("List = %v, want 2 instances", ids(got))
	}
	if err := tgt.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("Ping = %v, want an error naming engine gone", err)
	}

	stranded := service("stranded", e.ref, nil)
	stranded.Docker.Engines = []string{"gone"}
	if _, err := tgt.Resolve(t.Context(), stranded); err == nil || !strings.Contains(err.Error(), "no engine of service stranded answers") {
		t.Errorf("Resolve of a service on gone only = %v", err)
	}

	alone := newTarget(t, docker.Options{Engines: []docker.Engine{{Name: "gone", Host: gone}}})
	if _, err := alone.List(t.Context()); err == nil {
		t.Errorf("List with no engine answering = nil error")
	}
}

func perEngine(insts []targets.Instance) map[string]int {
	out := map[string]int{}
	for _, in := range insts {
		engine, _, _ := strings.Cut(in.ID, "/")
		out[engine]++
	}
	return out
}

func ids(insts []targets.Instance) []string {
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = in.ID
	}
	return out
}
