package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// faultyFront sits between molt and the Git server and can refuse
// connections or hang, to simulate an unreachable or slow remote.
type faultyFront struct {
	mode  atomic.Value // "ok", "refuse", "hang"
	proxy *httputil.ReverseProxy
	srv   *http.Server
	URL   string
}

func newFaultyFront(t *testing.T, upstream string) *faultyFront {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyFront{proxy: httputil.NewSingleHostReverseProxy(u)}
	f.mode.Store("ok")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch f.mode.Load() {
		case "refuse":
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
				return
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "hang":
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		default:
			f.proxy.ServeHTTP(w, r)
		}
	})}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	f.URL = "http://" + l.Addr().String()
	return f
}

// served is a `molt serve` process under test.
type served struct {
	t       *testing.T
	cmd     *exec.Cmd
	state   string
	listen  string
	routed  string // the router's address of the demo service
	logs    *syncBuffer
	exited  chan error
	secret  string
	counter atomic.Int64
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServe(t *testing.T, repoURL, state, poll string, extra ...string) *served {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &served{t: t, state: state, listen: "127.0.0.1:" + port, logs: &syncBuffer{}, exited: make(chan error, 1), secret: "s3cret"}
	// --branch main unless the test says otherwise ("--branch=" follows
	// the remote's default branch).
	args := append([]string{"serve", "--repo", repoURL, "--branch", "main", "--state-dir", state,
		"--listen", s.listen, "--poll", poll, "--log-level", "debug", "--log-format", "text"}, extra...)
	s.cmd = exec.Command("molt", args...)
	s.cmd.Env = append(os.Environ(), "MOLT_WEBHOOK_SECRET="+s.secret)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("molt serve output:\n%s", s.logs.String())
		}
	})
	targetstest.Eventually(t, 20*time.Second, "serve /healthz", func() bool {
		resp, err := http.Get("http://" + s.listen + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// metric sums the samples of a Prometheus counter family.
func (s *served) metric(name string) float64 {
	s.t.Helper()
	resp, err := http.Get("http://" + s.listen + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// deliver sends one signed GitHub push delivery for the branch head.
func (s *served) deliver(after string) int {
	// Ids unique to this serve: the state directory keeps the ids seen
	// across restarts.
	return s.deliverID(after, fmt.Sprintf("delivery-%s-%d", s.listen, s.counter.Add(1)))
}

// deliverID sends a signed push of after with the given delivery id.
func (s *served) deliverID(after, id string) int {
	raw, err := os.ReadFile("../../sources/github/testdata/push.json")
	if err != nil {
		s.t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		s.t.Fatal(err)
	}
	payload["ref"], payload["after"], payload["deleted"] = "refs/heads/main", after, false
	body, _ := json.Marshal(payload)
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.listen+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// answers waits until the router answers with want.
func answers(t *testing.T, addr, want string, within time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	last := ""
	deadline := time.Now().Add(within)
	for {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if last = string(b); strings.Contains(last, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router did not answer %q within %s; last: %s", want, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fleetRepo is a Git repository holding a one-service fleet of the demo
// app exposed on App, with its first commit (v1) published as the bare
// repository Root/fleet.git.
type fleetRepo struct {
	*gittest.Repo
	Root  string // serve it with gittest.ServeHTTP, git daemon or ServeSSH
	App   string // the router's address of the service
	First string // the v1 commit
	hello string
	port  string
}

func newFleetRepo(t *testing.T) *fleetRepo {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetRepo{Repo: gittest.NewRepo(t), Root: t.TempDir(), App: "127.0.0.1:" + port, hello: targetstest.Hello(t), port: port}
	f.WriteFile("fleet.cue", f.source("v1"))
	f.First = f.Commit("v1")
	f.Publish(f.Root, "fleet.git")
	return f
}

// source is the fleet with the demo app answering "hello from VERSION".
func (f *fleetRepo) source(version string) string {
	return fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "30s", keepPrevious: "10m"}
}
`, f.hello, version, f.port)
}

func stateDir(t *testing.T) string {
	t.Helper()
	state, err := os.MkdirTemp("", "mv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	t.Cleanup(func() { _ = exec.Command("molt", "down", "--yes", "--state-dir", state).Run() })
	return state
}

// TestServeFollowsTheBranch runs the molt serve binary against git
// http-backend: the fleet follows each push and a revert, an unchanged
// remote costs no pack, and remote faults (unreachable, hanging, force-push,
// corrupt cache) leave the fleet serving.
func TestServeFollowsTheBranch(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	root, app := repo.Root, repo.App
	gitSrv := gittest.ServeHTTP(t, root)
	front := newFaultyFront(t, gitSrv.URL)
	state := stateDir(t)

	s := startServe(t, front.URL+"/fleet.git", state, "@every 1s", "--fetch-timeout", "2s")
	answers(t, app, "hello from v1", 30*time.Second)
	load := targetstest.StartLoad(app, 2, 5*time.Millisecond)

	push := func(version string) {
		repo.WriteFile("fleet.cue", repo.source(version))
		repo.Commit(version)
		repo.Push()
	}

	t.Run("push", func(t *testing.T) {
		push("v2")
		answers(t, app, "hello from v2", 30*time.Second)
	})

	t.Run("unchanged remote transfers no pack", func(t *testing.T) {
		// v2 is served, so its objects came already: from now on every
		// poll finds the remote unchanged.
		gitSrv.Reset()
		targetstest.Eventually(t, 20*time.Second, "three polls", func() bool { return gitSrv.Count("GET", "/info/refs") >= 3 })
		if packs := gitSrv.Count("POST", "/git-upload-pack"); packs != 0 {
			t.Errorf("three polls of an unchanged remote made %d pack requests, want 0", packs)
		}
	})

	t.Run("revert", func(t *testing.T) {
		repo.Git("revert", "--no-edit", "HEAD")
		repo.Push()
		answers(t, app, "hello from v1", 30*time.Second)
	})

	t.Run("unreachable remote", func(t *testing.T) {
		before := s.metric("molt_fetch_errors_total")
		front.mode.Store("refuse")
		targetstest.Eventually(t, 15*time.Second, "fetch errors", func() bool { return s.metric("molt_fetch_errors_total") > before })
		answers(t, app, "hello from v1", time.Second)
		front.mode.Store("ok")
		push("v3")
		answers(t, app, "hello from v3", 40*time.Second)
	})

	t.Run("hanging remote", func(t *testing.T) {
		before := s.metric("molt_fetch_errors_total")
		front.mode.Store("hang")
		targetstest.Eventually(t, 20*time.Second, "fetch timeouts", func() bool { return s.metric("molt_fetch_errors_total") > before })
		answers(t, app, "hello from v3", time.Second)
		front.mode.Store("ok")
		push("v4")
		answers(t, app, "hello from v4", 40*time.Second)
	})

	t.Run("force-push", func(t *testing.T) {
		repo.Git("reset", "-q", "--hard", "HEAD~2")
		push("v5-rewritten")
		answers(t, app, "hello from v5-rewritten", 30*time.Second)
	})

	t.Run("corrupt cache", func(t *testing.T) {
		caches, _ := filepath.Glob(filepath.Join(state, "git", "*"))
		if len(caches) != 1 {
			t.Fatalf("caches: %v", caches)
		}
		for _, name := range []string{"HEAD", "config"} {
			if err := os.WriteFile(filepath.Join(caches[0], name), []byte("garbage\x00"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.RemoveAll(filepath.Join(caches[0], "objects"))
		push("v6")
		answers(t, app, "hello from v6", 40*time.Second)
	})

	t.Run("webhook burst coalesces", func(t *testing.T) {
		// Wait for quiet, then push and send 200 deliveries at once; with a
		// 1s poll the reconciles during the burst stay few.
		push("v7")
		before := s.metric("molt_reconciles_total")
		start := time.Now()
		var wg sync.WaitGroup
		codes := make([]int, 200)
		for i := range 200 {
			wg.Add(1)
			go func() { defer wg.Done(); codes[i] = s.deliver(repo.Head()) }()
		}
		wg.Wait()
		elapsed := time.Since(start)
		for i, c := range codes {
			if c != http.StatusAccepted {
				t.Fatalf("delivery %d answered %d", i, c)
			}
		}
		answers(t, app, "hello from v7", 30*time.Second)
		t.Logf("200 deliveries answered in %s; reconciles during the burst: %v", elapsed, s.metric("molt_reconciles_total")-before)
	})

	load.Finish(t)

	t.Run("SIGTERM leaves the fleet serving", func(t *testing.T) {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.exited:
			if err != nil {
				t.Errorf("serve exited with %v", err)
			}
			s.exited <- err // for the cleanup
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not exit on SIGTERM")
		}
		answers(t, app, "hello from v7", time.Second)
	})
}

// TestServeWebhookBurst: with polling out of the way, 200 push deliveries
// in about a second cause at most two reconciles, and the newest commit is
// deployed.
func TestServeWebhookBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	root, app := repo.Root, repo.App
	gitSrv := gittest.ServeHTTP(t, root)
	state := stateDir(t)
	s := startServe(t, gitSrv.RepoURL("fleet.git"), state, "@every 1h")
	answers(t, app, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 10*time.Second, "first reconcile", func() bool { return s.metric("molt_reconciles_total") >= 1 })

	for i := 2; i <= 6; i++ { // several commits land before the hooks do
		repo.WriteFile("fleet.cue", repo.source(fmt.Sprintf("v%d", i)))
		repo.Commit(fmt.Sprintf("v%d", i))
	}
	repo.Push()
	pushed := func() int { return strings.Count(s.logs.String(), "msg=reconciled reason=push ") }
	before := pushed()
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() { defer wg.Done(); s.deliver(repo.Head()) }()
	}
	wg.Wait()
	answers(t, app, "hello from v6", 30*time.Second)
	targetstest.Eventually(t, 10*time.Second, "the loop to go idle", func() bool {
		resp, err := http.Get("http://" + s.listen + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), repo.Head())
	})
	time.Sleep(500 * time.Millisecond)
	// Only the reconciles the deliveries triggered count: the rollout to
	// v6 runs others of its own (an instance turning healthy, a health
	// watch), more of them on a loaded machine.
	if n := pushed() - before; n > 2 || n < 1 {
		t.Errorf("200 deliveries caused %v reconciles; want 1 or 2", n)
	}
	if n := s.metric("molt_webhook_deliveries_total"); n != 200 {
		t.Errorf("deliveries counted: %v, want 200", n)
	}

	// A delivery signed with another secret is refused and counted.
	s.secret = "not-the-secret"
	if code := s.deliver(repo.Head()); code != http.StatusUnauthorized {
		t.Errorf("badly signed delivery: %d, want 401", code)
	}
	if n := s.metric("molt_webhook_deliveries_total"); n != 201 {
		t.Errorf("deliveries counted after a bad one: %v, want 201", n)
	}
}

// converged waits until serve's status says the fleet converged to
// revision (a router answering is not enough: under parallel tests,
// another test's instance may hold the listen port before the switch).
func (s *served) converged(t *testing.T, revision string) {
	t.Helper()
	targetstest.Eventually(t, 30*time.Second, "converged to "+revision, func() bool {
		var st apiStatus
		if getJSON(t, "http://"+s.listen+"/api/v1/status", &st) != http.StatusOK {
			return false
		}
		for _, f := range st.Fleets {
			if f.Revision == revision && f.LastResult == "converged" {
				return true
			}
		}
		return false
	})
}
