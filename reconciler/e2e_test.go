package reconciler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/targetstest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	targetstest.RemoveHello()
	os.Exit(code)
}

// world is a real process target and a real router in a temporary state
// directory, with an executor over them.
type world struct {
	t      *testing.T
	state  string
	port   string
	hello  string
	target *process.Target
	exec   *reconciler.Executor
	fleets map[string]*schema.Fleet // by revision, for rollbacks
}

func newWorld(t *testing.T) *world {
	t.Helper()
	state, err := os.MkdirTemp("", "mr") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := process.New(process.Options{Dir: filepath.Join(state, "instances")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := router.NewServer(router.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	rc := router.NewClient(state)
	targetstest.Eventually(t, 5*time.Second, "router up", func() bool { return rc.Ping(context.Background()) == nil })
	w := &world{t: t, state: state, port: freePort(t), hello: targetstest.Hello(t), target: tgt, fleets: map[string]*schema.Fleet{}}
	w.exec = &reconciler.Executor{
		Target: tgt, Router: rc, Prober: reconciler.NewProber(), Failures: reconciler.NewFailures(state),
		Tick: 50 * time.Millisecond,
		Specs: func(_ context.Context, rev string) (*schema.Fleet, error) {
			if f := w.fleets[rev]; f != nil {
				return f, nil
			}
			return nil, fmt.Errorf("no revision %s", rev)
		},
	}
	t.Cleanup(func() {
		insts, _ := tgt.List(context.Background())
		for _, in := range insts {
			_ = tgt.Retire(context.Background(), in.ID)
		}
		cancel()
		<-done
		tgt.Close()
		os.RemoveAll(state)
	})
	return w
}

// fleet loads a one-service fleet through the real schema loader.
func (w *world) fleet(rev, version, strategy, extra string) *schema.Fleet {
	w.t.Helper()
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
	rollout: {strategy: %q, maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "20s", keepPrevious: "10m"}
}
`, w.hello, version, extra, w.port, strategy)
	f, err := schema.Load(fstest.MapFS{"fleet.cue": {Data: []byte(src)}}, ".")
	if err != nil {
		w.t.Fatalf("load fleet: %v", err)
	}
	w.fleets[rev] = f
	return f
}

func (w *world) apply(f *schema.Fleet, rev string) reconciler.Result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := w.exec.Apply(ctx, f, rev)
	if err != nil {
		w.t.Fatalf("apply %s: %v", rev, err)
	}
	return res
}

func (w *world) instances() []targets.Instance {
	w.t.Helper()
	insts, err := w.target.List(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return insts
}

// startLoad sends requests through the router until finished.
func (w *world) startLoad() *targetstest.Load {
	return targetstest.StartLoad("127.0.0.1:"+w.port, 4, 2*time.Millisecond)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func count(insts []targets.Instance, pred func(targets.Instance) bool) int {
	n := 0
	for _, in := range insts {
		if pred(in) {
			n++
		}
	}
	return n
}

func TestRollingRolloutRevertAndFailedRollout(t *testing.T) {
	w := newWorld(t)
	v1 := w.fleet("main@sha1:1111", "v1", "rolling", "")
	res := w.apply(v1, "main@sha1:1111")
	if !res.Converged || res.Provisioned != 3 {
		t.Fatalf("v1: %+v", res)
	}
	if got := get(t, "http://127.0.0.1:"+w.port+"/"); got != "hello from v1" {
		t.Fatalf("v1 answers %q", got)
	}

	// v1 -> v2 under load: no failed request.
	l := w.startLoad()
	v2 := w.fleet("main@sha1:2222", "v2", "rolling", "")
	res = w.apply(v2, "main@sha1:2222")
	bodies := l.Finish(t)
	if !res.Converged || res.Provisioned != 3 || len(res.Failures) > 0 {
		t.Fatalf("v2: %+v", res)
	}
	if bodies["hello from v2"] == 0 {
		t.Errorf("no answer from v2 during the rollout: %v", bodies)
	}
	h1, h2 := v1.Services["web"].SpecHash(nil), v2.Services["web"].SpecHash(nil)
	insts := w.instances()
	if n := count(insts, func(i targets.Instance) bool { return i.Labels.SpecHash == h1 && i.State == targets.Running }); n != 3 {
		t.Errorf("v1 instances kept warm: %d, want 3", n)
	}

	// Revert to v1 inside keepPrevious: an instant switch, no provision.
	l = w.startLoad()
	res = w.apply(v1, "main@sha1:3333")
	l.Finish(t)
	if res.Provisioned != 0 || res.Retired != 0 {
		t.Errorf("revert provisioned %d, retired %d; want a switch only", res.Provisioned, res.Retired)
	}
	if got := get(t, "http://127.0.0.1:"+w.port+"/"); got != "hello from v1" {
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
	h3 := v3.Services["web"].SpecHash(nil)
	insts = w.instances()
	if n := count(insts, func(i targets.Instance) bool { return i.Labels.SpecHash == h3 }); n != 0 {
		t.Errorf("%d v3 instances left after the rollback", n)
	}
	if n := count(insts, func(i targets.Instance) bool { return i.Labels.SpecHash == h1 }); n != 3 {
		t.Errorf("%d v1 instances after the rollback, want 3", n)
	}
	_ = h2
	// Applying the failed revision again does not retry it.
	res = w.apply(v3, "main@sha1:4444")
	if res.Provisioned != 0 {
		t.Errorf("failed revision retried: %+v", res)
	}
}

func TestBlueGreenSwitchesAtOnce(t *testing.T) {
	w := newWorld(t)
	v1 := w.fleet("main@sha1:aaaa", "v1", "blue-green", "")
	w.apply(v1, "main@sha1:aaaa")
	l := w.startLoad()
	v2 := w.fleet("main@sha1:bbbb", "v2", "blue-green", "")
	res := w.apply(v2, "main@sha1:bbbb")
	bodies := l.Finish(t)
	if res.Provisioned != 3 {
		t.Errorf("provisioned %d, want 3", res.Provisioned)
	}
	if bodies["hello from v2"] == 0 || bodies["hello from v1"] == 0 {
		t.Errorf("bodies %v: want both generations seen across the switch", bodies)
	}
	if got := get(t, "http://127.0.0.1:"+w.port+"/"); got != "hello from v2" {
		t.Fatalf("after switch: %q", got)
	}
}

func TestDeadInstanceIsReplaced(t *testing.T) {
	w := newWorld(t)
	v1 := w.fleet("main@sha1:cccc", "v1", "rolling", "")
	w.apply(v1, "main@sha1:cccc")
	insts := w.instances()
	victim := insts[0]
	rec := filepath.Join(w.state, "instances", victim.ID, "instance.json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	pid := jsonInt(t, b, "pid")
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
	res := w.apply(v1, "main@sha1:cccc")
	if res.Provisioned != 1 || res.Retired != 1 {
		t.Errorf("replace: provisioned %d retired %d, want 1 and 1", res.Provisioned, res.Retired)
	}
	if n := count(w.instances(), func(i targets.Instance) bool { return i.State == targets.Running }); n != 3 {
		t.Errorf("%d running, want 3", n)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func jsonInt(t *testing.T, b []byte, key string) int {
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

// TestRecycleReplacesOldInstances: instances older than recycle.maxAge
// are replaced one at a time, with no failed request through the router.
func TestRecycleReplacesOldInstances(t *testing.T) {
	w := newWorld(t)
	v1 := w.fleet("main@sha1:eeee", "v1", "rolling", "")
	v1.Services["web"].Recycle = &schema.Recycle{MaxAge: 2 * time.Second}
	w.apply(v1, "main@sha1:eeee")
	first := map[string]bool{}
	for _, in := range w.instances() {
		first[in.ID] = true
	}
	time.Sleep(2100 * time.Millisecond) // let every instance pass maxAge
	l := w.startLoad()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Apply until none of the first instances is left: each pass replaces
	// one; the replacements themselves age meanwhile, so stop there.
	for {
		res, err := w.exec.Apply(ctx, v1, "main@sha1:eeee")
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, in := range w.instances() {
			if first[in.ID] {
				left++
			}
		}
		if left == 0 || !res.Converged {
			break
		}
	}
	l.Finish(t)
	for _, in := range w.instances() {
		if first[in.ID] {
			t.Errorf("instance %s outlived maxAge", in.ID)
		}
	}
}
