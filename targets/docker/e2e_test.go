package docker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/targetstest"
	"github.com/molt-dev/molt/targets/worldtest"
)

// world is the docker target behind targets.ByKind, a real router and an
// executor over them, as molt serve wires them.
type world struct {
	t      *testing.T
	e      *env
	fleet  string // the fleet's name, fresh per test: the engine is shared
	port   string
	target *docker.Target
	router *router.Client
	exec   *reconciler.Executor
	fleets map[string]*schema.Fleet // by revision, for rollbacks
}

func newWorld(t *testing.T) *world {
	t.Helper()
	e := setup(t)
	state := worldtest.StateDir(t, "mdr")
	tgt := newTarget(t, docker.Options{})
	rc := worldtest.StartRouter(t, state)
	w := &world{t: t, e: e, fleet: "e2e-" + dockertest.Token(3), port: worldtest.FreePort(t), target: tgt, router: rc, fleets: map[string]*schema.Fleet{}}
	w.exec = worldtest.NewExecutor(state, targets.ByKind{Docker: tgt}, rc, w.fleets)
	t.Cleanup(func() { // (before the router stops)
		ctx, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		insts, _ := tgt.List(ctx)
		for _, in := range insts {
			if in.Labels.Fleet == w.fleet {
				if err := tgt.Retire(ctx, in.ID); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	})
	return w
}

// fleetOf loads a one-service docker fleet through the real schema loader.
func (w *world) fleetOf(rev, image, version, strategy, dockerExtra string) *schema.Fleet {
	w.t.Helper()
	src := fmt.Sprintf(`
name: %q
services: web: {
	replicas: 3
	docker: {image: %q, %s}
	env: {VERSION: %q, HOST: "0.0.0.0"}
	ports: http: 8080
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	stopGrace: "5s"
	rollout: {strategy: %q, maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "30s"}
}
`, w.fleet, image, dockerExtra, version, w.port, strategy)
	return worldtest.Fleet(w.t, w.fleets, rev, src)
}

func (w *world) apply(f *schema.Fleet, rev string) reconciler.Result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := w.exec.Apply(ctx, f, rev)
	if err != nil {
		w.t.Fatalf("apply %s: %v", rev, err)
	}
	return res
}

func (w *world) instances() []targets.Instance {
	w.t.Helper()
	return listFleet(w.t, w.target, w.fleet)
}

func (w *world) running() []targets.Instance {
	w.t.Helper()
	var out []targets.Instance
	for _, in := range w.instances() {
		if in.State == targets.Running {
			out = append(out, in)
		}
	}
	return out
}

func (w *world) get() string {
	w.t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + w.port + "/")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func TestE2ERolling(t *testing.T) {
	w := newWorld(t)
	v1 := w.fleetOf("main@sha1:1111", w.e.ref, "v1", "rolling", "")
	if res := w.apply(v1, "main@sha1:1111"); !res.Converged || res.Provisioned != 3 {
		t.Fatalf("v1: %+v", res)
	}
	if got := w.get(); got != "hello from v1" {
		t.Fatalf("v1 answers %q", got)
	}
	l := w.startLoad()
	v2 := w.fleetOf("main@sha1:2222", w.e.ref, "v2", "rolling", "")
	res := w.apply(v2, "main@sha1:2222")
	bodies := l.Finish(t)
	if !res.Converged || res.Provisioned != 3 || len(res.Failures) > 0 {
		t.Fatalf("v2: %+v", res)
	}
	if bodies["hello from v2"] == 0 {
		t.Errorf("no answer from v2 during the rollout: %v", bodies)
	}
	if got := w.get(); got != "hello from v2" {
		t.Errorf("after the rollout: %q", got)
	}
}

func TestE2EBlueGreen(t *testing.T) {
	w := newWorld(t)
	w.apply(w.fleetOf("main@sha1:aaaa", w.e.ref, "v1", "blue-green", ""), "main@sha1:aaaa")
	l := w.startLoad()
	res := w.apply(w.fleetOf("main@sha1:bbbb", w.e.ref, "v2", "blue-green", ""), "main@sha1:bbbb")
	bodies := l.Finish(t)
	if res.Provisioned != 3 || len(res.Failures) > 0 {
		t.Errorf("v2: %+v", res)
	}
	if bodies["hello from v2"] == 0 || bodies["hello from v1"] == 0 {
		t.Errorf("bodies %v: want both generations seen across the switch", bodies)
	}
	if got := w.get(); got != "hello from v2" {
		t.Fatalf("after the switch: %q", got)
	}
}

// The same commit applied again after its tag moved to another image
// rolls out a new generation made from that image, without a failed
// request.
func TestE2ERetagReplaces(t *testing.T) {
	w := newWorld(t)
	f := w.fleetOf("main@sha1:cccc", w.e.ref, "v1", "rolling", "")
	w.apply(f, "main@sha1:cccc")
	svc := f.Services["web"]
	before := svc.SpecHash(map[string]string{docker.ResolvedImage: w.e.id})

	other := dockertest.Ref("retag")
	id2 := dockertest.HelloImage(t, w.e.api, other, "v2")
	dockertest.Tag(t, w.e.api, other, w.e.ref)
	after := svc.SpecHash(map[string]string{docker.ResolvedImage: id2})

	l := w.startLoad()
	res := w.apply(f, "main@sha1:cccc")
	l.Finish(t)
	if res.Provisioned != 3 || len(res.Failures) > 0 {
		t.Errorf("after the retag: %+v; want 3 provisioned", res)
	}
	gens := map[string]int{}
	for _, in := range w.running() {
		gens[in.Labels.SpecHash]++
		if in.Labels.SpecHash == after {
			if c := inspect(t, w.e.api, in.ID); c.Image != id2 {
				t.Errorf("%s runs %s, want %s", in.ID, c.Image, id2)
			}
		}
	}
	if gens[after] != 3 || gens[before]+gens[after] != len(w.running()) {
		t.Errorf("running generations %v; want 3 of %s (the retagged image)", gens, after)
	}
	routes, err := w.router.Routes(t.Context(), w.fleet)
	if err != nil {
		t.Fatal(err)
	}
	if got := reconciler.TrafficOf(routes)["web"].Active; got != after {
		t.Errorf("the router sends traffic to generation %s, want %s", got, after)
	}
}

// A container killed behind molt's back is replaced by the next apply;
// a container molt did not create is left alone throughout.
func TestE2EKilledReplaced(t *testing.T) {
	w := newWorld(t)
	_, untouched := dockertest.Foreign(t, w.e.api, w.e.ref)
	f := w.fleetOf("main@sha1:dddd", w.e.ref, "v1", "rolling", "")
	w.apply(f, "main@sha1:dddd")
	victim := w.instances()[0]
	dockertest.Kill(t, w.e.api, dockertest.ContainerID(t, victim.ID))
	targetstest.Eventually(t, 10*time.Second, "the killed instance listed dead", func() bool {
		for _, in := range w.instances() {
			if in.ID == victim.ID {
				return in.State == targets.Dead
			}
		}
		return false
	})
	res := w.apply(f, "main@sha1:dddd")
	if res.Provisioned != 1 || res.Retired != 1 {
		t.Errorf("replace: provisioned %d, retired %d; want 1 and 1", res.Provisioned, res.Retired)
	}
	if n := len(w.running()); n != 3 {
		t.Errorf("%d running, want 3", n)
	}
	untouched(t)
}

// A container edited in place is drift, and the next apply replaces it.
func TestE2EDriftReplaced(t *testing.T) {
	w := newWorld(t)
	_, untouched := dockertest.Foreign(t, w.e.api, w.e.ref)
	f := w.fleetOf("main@sha1:eeee", w.e.ref, "v1", "rolling", "readOnlyRootfs: false")
	w.apply(f, "main@sha1:eeee")
	if res := w.apply(f, "main@sha1:eeee"); res.Provisioned != 0 || res.Retired != 0 {
		t.Fatalf("an unchanged fleet: provisioned %d, retired %d", res.Provisioned, res.Retired)
	}
	victim := w.instances()[0]
	if err := dockertest.CopyFile(t.Context(), w.e.api, dockertest.ContainerID(t, victim.ID), "/etc/edited", "by hand"); err != nil {
		t.Fatal(err)
	}
	l := w.startLoad()
	res := w.apply(f, "main@sha1:eeee")
	l.Finish(t)
	if res.Provisioned != 1 || res.Retired != 1 {
		t.Errorf("drift: provisioned %d, retired %d; want 1 and 1", res.Provisioned, res.Retired)
	}
	for _, in := range w.instances() {
		if in.ID == victim.ID {
			t.Errorf("the drifted %s is still there", victim.ID)
		}
	}
	if n := len(w.running()); n != 3 {
		t.Errorf("%d running, want 3", n)
	}
	untouched(t)
}

// startLoad sends requests through the router until finished.
func (w *world) startLoad() *targetstest.Load {
	return targetstest.StartLoad("127.0.0.1:"+w.port, 4, 2*time.Millisecond)
}
