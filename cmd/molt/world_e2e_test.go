package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/targetstest"
	"github.com/molt-dev/molt/targets/worldtest"
)

// execWorld is a real process target and a real router (in this process)
// in a temporary state directory, with an executor over them: the
// reconciler's executor against the world, without the CLI around it.
type execWorld struct {
	*worldtest.World
	t *testing.T
}

func newExecWorld(t *testing.T) *execWorld {
	t.Helper()
	return &execWorld{World: worldtest.New(t, nil), t: t}
}

// fleet loads a one-service fleet through the real schema loader. Only
// blue-green keeps the previous generation warm (keepPrevious 10m);
// rolling keeps none.
func (w *execWorld) fleet(rev, version, strategy, extra string) *schema.Fleet {
	w.t.Helper()
	keep := ""
	if strategy == "blue-green" {
		keep = `, keepPrevious: "10m"`
	}
	src := fmt.Sprintf(`
name: "e2e"
services: web: {
	replicas: 3
	process: command: [%q]
	env: {VERSION: %q, %s}
	ports: http: 0
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	stopGrace: "5s"
	rollout: {strategy: %q, maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "20s"%s}
}
`, w.Hello, version, extra, w.Port, strategy, keep)
	return worldtest.Fleet(w.t, w.Fleets, rev, src)
}

// hash is the spec hash the executor gives the fleet's web service: the
// process target resolves the executable's digest into it.
func (w *execWorld) hash(f *schema.Fleet) string {
	w.t.Helper()
	svc := f.Services["web"]
	extra, err := w.Process.Resolve(context.Background(), svc)
	if err != nil {
		w.t.Fatalf("resolve: %v", err)
	}
	return svc.SpecHash(extra)
}

// apply converges to f at rev; rev's spec is what a later rollback to it
// reads (as a commit of a repository would be).
func (w *execWorld) apply(f *schema.Fleet, rev string) reconciler.Result {
	w.t.Helper()
	w.Fleets[rev] = f
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := w.Exec.Apply(ctx, f, rev)
	if err != nil {
		w.t.Fatalf("apply %s: %v", rev, err)
	}
	return res
}

func (w *execWorld) instances() []targets.Instance {
	w.t.Helper()
	insts, err := w.Process.List(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return insts
}

// traffic is the reconciler's traffic record of the web service, as kept
// in the router's routes.
func (w *execWorld) traffic() reconciler.Traffic {
	w.t.Helper()
	routes, err := w.Front.Routes(context.Background(), "e2e")
	if err != nil {
		w.t.Fatal(err)
	}
	return reconciler.TrafficOf(routes)["web"]
}

// startLoad sends requests through the router until finished.
func (w *execWorld) startLoad() *targetstest.Load {
	return targetstest.StartLoad("127.0.0.1:"+w.Port, 4, 2*time.Millisecond)
}

func (w *execWorld) answer() string {
	w.t.Helper()
	return execGet(w.t, "http://127.0.0.1:"+w.Port+"/")
}

func execGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func execCount(insts []targets.Instance, pred func(targets.Instance) bool) int {
	n := 0
	for _, in := range insts {
		if pred(in) {
			n++
		}
	}
	return n
}

func ofGeneration(hash string) func(targets.Instance) bool {
	return func(i targets.Instance) bool { return i.Labels.SpecHash == hash }
}

func runningOf(hash string) func(targets.Instance) bool {
	return func(i targets.Instance) bool { return i.Labels.SpecHash == hash && i.State == targets.Running }
}

// TestE2ERollingRolloutAndFailedRollout: a rolling rollout under load
// fails no request and keeps no warm generation; a revert is a rollout
// like any other; a broken revision rolls back by itself and is not
// retried.
func TestE2ERollingRolloutAndFailedRollout(t *testing.T) {
	w := newExecWorld(t)
	v1 := w.fleet("main@sha1:1111", "v1", "rolling", "")
	res := w.apply(v1, "main@sha1:1111")
	if !res.Converged || res.Provisioned != 3 {
		t.Fatalf("v1: %+v", res)
	}
	if got := w.answer(); got != "hello from v1" {
		t.Fatalf("v1 answers %q", got)
	}

	// v1 -> v2 under load: no failed request.
	l := w.startLoad()
	v2 := w.fleet("main@sha1:2222", "v2", "rolling", "")
	res = w.apply(v2, "main@sha1:2222")
	bodies := l.Finish(t)
	if !res.Converged || res.Provisioned != 3 || res.Retired != 3 || len(res.Failures) > 0 {
		t.Fatalf("v2: %+v", res)
	}
	if bodies["hello from v2"] == 0 {
		t.Errorf("no answer from v2 during the rollout: %v", bodies)
	}
	h1, h2 := w.hash(v1), w.hash(v2)
	insts := w.instances()
	if n := execCount(insts, ofGeneration(h1)); n != 0 {
		t.Errorf("rolling kept %d v1 instances, want none", n)
	}
	if n := execCount(insts, runningOf(h2)); n != 3 || len(insts) != 3 {
		t.Errorf("%d v2 instances running of %d, want 3 of 3", n, len(insts))
	}
	if tr := w.traffic(); tr.Active != h2 || tr.Previous != "" {
		t.Errorf("traffic record %+v: want active v2 and no previous", tr)
	}

	// A revert to v1: with no warm generation, a rolling rollout again.
	l = w.startLoad()
	res = w.apply(v1, "main@sha1:3333")
	l.Finish(t)
	if !res.Converged || res.Provisioned != 3 || res.Retired != 3 {
		t.Errorf("revert: %+v; want 3 provisioned and 3 retired", res)
	}
	if got := w.answer(); got != "hello from v1" {
		t.Fatalf("after revert: %q", got)
	}

	// A broken v3 rolls back by itself; v1 keeps serving throughout.
	l = w.startLoad()
	v3 := w.fleet("main@sha1:4444", "v3", "rolling", `FAIL_HEALTH: "1"`)
	res = w.apply(v3, "main@sha1:4444")
	bodies = l.Finish(t)
	if len(res.Failures) != 1 || !res.Converged {
		t.Fatalf("v3: %+v", res)
	}
	if bodies["hello from v3"] != 0 {
		t.Errorf("v3 received traffic: %v", bodies)
	}
	h3 := w.hash(v3)
	insts = w.instances()
	if n := execCount(insts, ofGeneration(h3)); n != 0 {
		t.Errorf("%d v3 instances left after the rollback", n)
	}
	if n := execCount(insts, ofGeneration(h1)); n != 3 {
		t.Errorf("%d v1 instances after the rollback, want 3", n)
	}
	// Applying the failed revision again does not retry it.
	res = w.apply(v3, "main@sha1:4444")
	if res.Provisioned != 0 {
		t.Errorf("failed revision retried: %+v", res)
	}
}

// TestE2EBlueGreenSwitchAndInstantRevert: blue-green switches traffic in
// one step under load, keeps the previous generation warm, and a revert
// inside keepPrevious is a switch back with nothing provisioned.
func TestE2EBlueGreenSwitchAndInstantRevert(t *testing.T) {
	w := newExecWorld(t)
	v1 := w.fleet("main@sha1:aaaa", "v1", "blue-green", "")
	w.apply(v1, "main@sha1:aaaa")
	l := w.startLoad()
	v2 := w.fleet("main@sha1:bbbb", "v2", "blue-green", "")
	res := w.apply(v2, "main@sha1:bbbb")
	bodies := l.Finish(t)
	if res.Provisioned != 3 || res.Retired != 0 {
		t.Errorf("provisioned %d, retired %d; want 3 and 0", res.Provisioned, res.Retired)
	}
	if bodies["hello from v2"] == 0 || bodies["hello from v1"] == 0 {
		t.Errorf("bodies %v: want both generations seen across the switch", bodies)
	}
	if got := w.answer(); got != "hello from v2" {
		t.Fatalf("after switch: %q", got)
	}
	h1, h2 := w.hash(v1), w.hash(v2)
	if n := execCount(w.instances(), runningOf(h1)); n != 3 {
		t.Errorf("v1 instances kept warm: %d, want 3", n)
	}
	if tr := w.traffic(); tr.Active != h2 || tr.Previous != h1 {
		t.Errorf("traffic record %+v: want active v2, previous v1", tr)
	}

	// Revert to v1 inside keepPrevious: an instant switch, no provision.
	l = w.startLoad()
	res = w.apply(v1, "main@sha1:cccc")
	l.Finish(t)
	if res.Provisioned != 0 || res.Retired != 0 {
		t.Errorf("revert provisioned %d, retired %d; want a switch only", res.Provisioned, res.Retired)
	}
	if got := w.answer(); got != "hello from v1" {
		t.Fatalf("after revert: %q", got)
	}
	if tr := w.traffic(); tr.Active != h1 {
		t.Errorf("traffic record %+v: want active v1", tr)
	}
}

func TestE2EDeadInstanceIsReplaced(t *testing.T) {
	w := newExecWorld(t)
	v1 := w.fleet("main@sha1:dddd", "v1", "rolling", "")
	w.apply(v1, "main@sha1:dddd")
	insts := w.instances()
	victim := insts[0]
	rec := filepath.Join(w.State, "instances", victim.ID, "instance.json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	pid := execJSONInt(t, b, "pid")
	p, _ := os.FindProcess(pid)
	_ = p.Kill()
	targetstest.Eventually(t, 5*time.Second, "victim dead", func() bool {
		for _, in := range w.instances() {
			if in.ID == victim.ID {
				return in.State == targets.Dead
			}
		}
		return true
	})
	res := w.apply(v1, "main@sha1:dddd")
	if res.Provisioned != 1 || res.Retired != 1 {
		t.Errorf("replace: provisioned %d retired %d, want 1 and 1", res.Provisioned, res.Retired)
	}
	if n := execCount(w.instances(), func(i targets.Instance) bool { return i.State == targets.Running }); n != 3 {
		t.Errorf("%d running, want 3", n)
	}
}

func execJSONInt(t *testing.T, b []byte, key string) int {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("no %q in %s", key, b)
	}
	return int(v)
}

// TestE2ERecycleReplacesOldInstances: instances older than recycle.maxAge
// are replaced one at a time, with no failed request through the router.
func TestE2ERecycleReplacesOldInstances(t *testing.T) {
	w := newExecWorld(t)
	v1 := w.fleet("main@sha1:eeee", "v1", "rolling", "")
	v1.Services["web"].Recycle = &schema.Recycle{MaxAge: 2 * time.Second}
	w.apply(v1, "main@sha1:eeee")
	first := map[string]time.Time{}
	for _, in := range w.instances() {
		first[in.ID] = in.Labels.CreatedAt
	}
	// Let every instance pass maxAge.
	targetstest.Eventually(t, 10*time.Second, "the first instances to pass maxAge", func() bool {
		for _, at := range first {
			if time.Since(at) <= 2*time.Second {
				return false
			}
		}
		return true
	})
	l := w.startLoad()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Apply until none of the first instances is left: each pass replaces
	// one; the replacements themselves age meanwhile, so stop there.
	for {
		res, err := w.Exec.Apply(ctx, v1, "main@sha1:eeee")
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, in := range w.instances() {
			if _, ok := first[in.ID]; ok {
				left++
			}
		}
		if left == 0 || !res.Converged {
			break
		}
	}
	l.Finish(t)
	for _, in := range w.instances() {
		if _, ok := first[in.ID]; ok {
			t.Errorf("instance %s outlived maxAge", in.ID)
		}
	}
}
