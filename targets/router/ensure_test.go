package router

import (
	"context"
	"errors"
	"net"
	"net/http"
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
)

// routerCommand is the command EnsureRunning starts in tests: this test
// binary in child mode.
func routerCommand(t *testing.T, dir string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "router", "--state-dir", dir}
}

// routerPID reads the pid of the router running on dir.
func routerPID(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "router", "router.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("router.pid holds %q", data)
	}
	return pid
}

// stopRouterProcess asks the router process of dir to exit at the end of
// the test, and kills it if it does not.
func stopRouterProcess(t *testing.T, dir string, pid int) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := NewClient(dir).Shutdown(ctx); err != nil {
			t.Errorf("shutdown router: %v", err)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func TestEnsureRunning(t *testing.T) {
	dir := shortDir(t)
	t.Setenv(childEnv, "1") // inherited by the router process
	cmd := routerCommand(t, dir)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// Three callers race to start the router: exactly one starts it.
	var mu sync.Mutex
	var starts int
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			started, err := EnsureRunning(ctx, dir, cmd, testLogger(t))
			if err != nil {
				t.Errorf("EnsureRunning: %v", err)
			}
			if started {
				mu.Lock()
				starts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	pid := routerPID(t, dir)
	stopRouterProcess(t, dir, pid)
	if starts != 1 {
		t.Errorf("%d racing EnsureRunning calls started the router, want 1", starts)
	}
	if pid == os.Getpid() {
		t.Fatal("the router runs in the test process")
	}
	if started, err := EnsureRunning(ctx, dir, cmd, testLogger(t)); err != nil || started {
		t.Errorf("EnsureRunning with the router up = %v, %v; want false, nil", started, err)
	}
	if _, sid := procStat(t, pid); sid != pid {
		t.Errorf("router session id = %d, want its own (%d)", sid, pid)
	}

	c := NewClient(dir)
	a := newBackend(t, "a1", "gena", nil)
	listen := freeAddr(t)
	mustSetWeb(t, c, listen, a.backend(0))
	if got := mustGet(t, newHTTPClient(t), "http://"+listen); got.body != "a1" {
		t.Errorf("through the router process: %+v", got)
	}

	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Ping after Shutdown = %v, want ErrNotRunning", err)
	}
	within(t, "router process exits", func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	})
	if !refused(listen) {
		t.Error("listen address still open after Shutdown")
	}
	log, err := os.ReadFile(filepath.Join(dir, "router", "router.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "router started") || !strings.Contains(string(log), "router stopped") {
		t.Errorf("router.log lacks the start and stop lines:\n%s", log)
	}

	// Started again, it serves the persisted table.
	if started, err := EnsureRunning(ctx, dir, cmd, testLogger(t)); err != nil || !started {
		t.Fatalf("EnsureRunning after Shutdown = %v, %v; want true, nil", started, err)
	}
	stopRouterProcess(t, dir, routerPID(t, dir))
	if got := mustGet(t, newHTTPClient(t), "http://"+listen); got.body != "a1" {
		t.Errorf("restarted router process: %+v", got)
	}
}

func TestEnsureRunningReportsEarlyExit(t *testing.T) {
	dir := shortDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := EnsureRunning(ctx, dir, []string{"/bin/sh", "-c", "echo no router here; exit 3"}, nil)
	if err == nil || !strings.Contains(err.Error(), "router.log") {
		t.Errorf("EnsureRunning of a command that exits = %v, want an error naming the log", err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "router", "router.log"))
	if !strings.Contains(string(log), "no router here") {
		t.Errorf("router.log = %q, want the command's output", log)
	}
}

// TestRouterOutlivesCaller starts the router from a short-lived process
// that exits at once: the router keeps serving without it.
func TestRouterOutlivesCaller(t *testing.T) {
	dir := shortDir(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	launcher := exec.Command(exe)
	launcher.Env = append(os.Environ(), launchEnv+"="+dir)
	if out, err := launcher.CombinedOutput(); err != nil {
		t.Fatalf("launcher: %v\n%s", err, out)
	}
	pid := routerPID(t, dir)
	stopRouterProcess(t, dir, pid)

	c := NewClient(dir)
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("router gone with its caller: %v", err)
	}
	if ppid, _ := procStat(t, pid); ppid == launcher.Process.Pid {
		t.Errorf("router's parent is still the launcher (%d)", ppid)
	}
	a := newBackend(t, "a1", "gena", nil)
	listen := freeAddr(t)
	mustSetWeb(t, c, listen, a.backend(0))
	if got := mustGet(t, newHTTPClient(t), "http://"+listen); got.body != "a1" {
		t.Errorf("through the orphaned router: %+v", got)
	}
}

// procStat reads a process's parent and session ids from /proc (Linux).
func procStat(t *testing.T, pid int) (ppid, sid int) {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ppid, err1 := strconv.Atoi(fields[1])
	sid, err2 := strconv.Atoi(fields[3])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("parse %s: %v", data, err)
	}
	return ppid, sid
}

// A router of an older molt (an admin protocol without fleets: its ping
// carries no protocol) is replaced by EnsureRunning, not used: the new
// client could not configure it.
func TestEnsureRunningReplacesOldProtocol(t *testing.T) {
	dir := shortDir(t)
	rdir, err := makeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The old router: it holds the pid lock, answers /ping the old way and
	// exits on /shutdown.
	pid, err := lockPID(rdir)
	if err != nil {
		t.Fatal(err)
	}
	sock, _ := socketPath(dir)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var stopped atomic.Bool
	old := &http.Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"pid": 1, "version": 7}`))
	})
	mux.HandleFunc("POST /shutdown", func(w http.ResponseWriter, r *http.Request) {
		// A whole answer (its length known, not chunked) is out with the
		// flush, before the server closes: chunked, its last chunk could
		// be cut off by the Close (an EOF in CI).
		w.Header().Set("Content-Length", "2")
		w.Write([]byte(`{}`))
		w.(http.Flusher).Flush()
		stopped.Store(true)
		go func() { old.Close(); pid.release() }()
	})
	old.Handler = mux
	go old.Serve(ln)
	t.Cleanup(func() { old.Close() })

	if err := NewClient(dir).Ping(t.Context()); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Ping of the old router = %v, want ErrProtocol", err)
	}
	t.Setenv(childEnv, "1")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	started, err := EnsureRunning(ctx, dir, routerCommand(t, dir), testLogger(t))
	if err != nil || !started {
		t.Fatalf("EnsureRunning = %v, %v; want a new router started", started, err)
	}
	stopRouterProcess(t, dir, routerPID(t, dir))
	if !stopped.Load() {
		t.Error("the old router was not asked to stop")
	}
	if err := NewClient(dir).Ping(t.Context()); err != nil {
		t.Fatalf("the new router does not answer: %v", err)
	}
}
