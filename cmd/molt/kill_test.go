package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestKilledMidRollout kills `molt apply` with SIGKILL in the middle of a
// rolling rollout and runs it again: the fleet converges, no process is
// orphaned, the healthy floor holds, and no request through the router
// fails — the router kept serving while no molt ran.
func TestKilledMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hello := targetstest.Hello(t)
	work := t.TempDir()
	state, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) }) // after the down below: cleanups run last-in first-out
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(work, "repo")
	runGit(t, "", "init", "-q", "-b", "main", repo)
	write := func(version string) {
		src := fmt.Sprintf(`services: web: {
	replicas: 3
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {maxSurge: 1, maxUnavailable: 0, minHealthyFor: "700ms", progressDeadline: "60s"}
}
`, hello, version, port)
		if err := os.WriteFile(filepath.Join(repo, "fleet.cue"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		runGit(t, repo, "add", "-A")
		runGit(t, repo, "commit", "-qm", version)
	}
	molt := func(ctx context.Context, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, "molt", append(args, "--state-dir", state, "--log-level", "warn")...)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		return c
	}
	t.Cleanup(func() { _ = exec.Command("molt", "down", "--yes", "--state-dir", state).Run() })

	write("v1")
	if err := molt(context.Background(), "apply", "--repo", repo).Run(); err != nil {
		t.Fatalf("apply v1: %v", err)
	}

	// Load through the router, and a watch on the healthy floor.
	load := targetstest.StartLoad("127.0.0.1:"+port, 3, 3*time.Millisecond)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	rc := router.NewClient(state)
	var minHealthy atomic.Int64
	minHealthy.Store(1 << 30)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var backends []targets.Backend
			fleets, err := rc.Fleets(context.Background())
			if err != nil {
				continue
			}
			for _, f := range fleets {
				routes, _ := rc.Routes(context.Background(), f)
				for _, r := range routes {
					if r.Service == "web" {
						backends = append(backends, r.Backends...)
					}
				}
			}
			healthy := 0
			for _, b := range backends {
				resp, err := client.Get("http://" + b.Addr + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						healthy++
					}
				}
			}
			if int64(healthy) < minHealthy.Load() {
				minHealthy.Store(int64(healthy))
			}
		}
	}()

	// v2, killed halfway.
	write("v2")
	tgt, err := process.New(process.Options{Dir: filepath.Join(state, "instances")})
	if err != nil {
		t.Fatal(err)
	}
	first := molt(context.Background(), "apply", "--repo", repo)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		insts, err := tgt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if countGen(insts) >= 2 { // one v2 instance in, the second on its way
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rollout never reached its second instance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// No molt runs now: the router keeps serving on its own.
	time.Sleep(300 * time.Millisecond)
	if n, first := load.Failures(); n > 0 {
		t.Errorf("%d requests failed while molt was down, first: %s", n, first)
	}

	if err := molt(context.Background(), "apply", "--repo", repo).Run(); err != nil {
		t.Fatalf("apply v2 again: %v", err)
	}
	close(stop)
	wg.Wait()
	load.Finish(t)
	if m := minHealthy.Load(); m < 3 {
		t.Errorf("healthy instances in traffic fell to %d, floor is 3", m)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "v2") {
		t.Errorf("after the second apply the router answers %q", body)
	}
	insts, err := tgt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, in := range insts {
		if in.State == targets.Running {
			running++
		}
	}
	if running != 3 { // rolling keeps no warm generation
		t.Errorf("%d running instances, want 3", running)
	}
	if orphans := processesUnder(t, filepath.Join(state, "instances")); orphans != running {
		t.Errorf("%d processes run from the state dir, %d instances listed: orphans", orphans, running)
	}
	t.Logf("healthy floor held at >= %d", minHealthy.Load())
}

// countGen counts the instances of the newest generation.
func countGen(insts []targets.Instance) int {
	newest := ""
	var at time.Time
	for _, in := range insts {
		if in.Labels.CreatedAt.After(at) {
			at, newest = in.Labels.CreatedAt, in.Labels.SpecHash
		}
	}
	n := 0
	for _, in := range insts {
		if in.Labels.SpecHash == newest {
			n++
		}
	}
	if len(insts) == n {
		return 0 // one generation only: the rollout has not started
	}
	return n
}

// processesUnder counts the live processes whose working directory is
// inside dir (the process target runs each instance in its own directory).
func processesUnder(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			continue
		}
		if strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

func runGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
