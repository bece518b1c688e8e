package router

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// fakeRouter starts a process whose command line is `router --state-dir
// dir` (this test binary, sleeping: it does not answer) with extra
// environment, in workDir; it is killed at the end of the test.
func fakeRouter(t *testing.T, dir, workDir string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "router", "--state-dir", dir)
	cmd.Dir = workDir
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, EnvManaged+"=") || strings.HasPrefix(kv, childEnv+"=")
	}), append(env, sleepEnv+"=1")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	targetstest.Eventually(t, 5*time.Second, "the fake router's command line", func() bool {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cmdline"))
		d, ok := stateDirArg(splitNUL(b), nil)
		return ok && d == dir
	})
	return cmd
}

func pids(ps []Process) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

// FindRouters finds the routers of a state directory by command line (an
// absolute or a relative --state-dir) and by EnvManaged, tells those molt
// started from the others, and leaves out processes with "router" in their
// command line for another state directory.
func TestFindRouters(t *testing.T) {
	dir, other := shortDir(t), shortDir(t)
	managed := fakeRouter(t, dir, "/", EnvManaged+"="+dir)
	external := fakeRouter(t, dir, "/", "INVOCATION_ID=abc")
	relative := fakeRouter(t, filepath.Base(dir), filepath.Dir(dir))
	elsewhere := fakeRouter(t, other, "/")

	got, err := FindRouters(dir)
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]Process{}
	for _, p := range got {
		byPID[p.PID] = p
	}
	if len(got) != 3 {
		t.Errorf("FindRouters = %v, want the pids %d, %d and %d", pids(got), managed.Process.Pid, external.Process.Pid, relative.Process.Pid)
	}
	if p, ok := byPID[managed.Process.Pid]; !ok || !p.Managed {
		t.Errorf("the router with %s: %+v, found %v; want managed", EnvManaged, p, ok)
	}
	if p, ok := byPID[external.Process.Pid]; !ok || p.Managed || !p.Systemd {
		t.Errorf("the router under systemd: %+v, found %v; want external, systemd", p, ok)
	}
	if p, ok := byPID[relative.Process.Pid]; !ok || p.Managed {
		t.Errorf("the router with a relative --state-dir: %+v, found %v; want external", p, ok)
	}
	if _, ok := byPID[elsewhere.Process.Pid]; ok {
		t.Errorf("the router of another state directory was found")
	}
	if got, _ := FindRouters(other); len(got) != 1 || got[0].PID != elsewhere.Process.Pid {
		t.Errorf("FindRouters(other) = %v, want %d", pids(got), elsewhere.Process.Pid)
	}
}

// The first argument that is not a flag must be "router": "molt apply
// --repo router --state-dir DIR" is no router, and "router" in another
// program's arguments without --state-dir neither.
func TestStateDirArg(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
		ok   bool
	}{
		{[]string{"/usr/bin/molt", "router", "--state-dir", "/s"}, nil, "/s", true},
		{[]string{"molt", "router", "--log-level", "debug", "--state-dir=/s"}, nil, "/s", true},
		{[]string{"molt", "--log-format=json", "router", "--state-dir", "/s"}, nil, "/s", true},
		{[]string{"molt", "router"}, map[string]string{"MOLT_STATE_DIR": "/env"}, "/env", true},
		{[]string{"molt", "router"}, nil, ".molt", true},
		{[]string{"molt", "apply", "--repo", "router", "--state-dir", "/s"}, nil, "", false},
		{[]string{"vim", "router"}, nil, "", false},
		{[]string{"molt"}, nil, "", false},
	} {
		got, ok := stateDirArg(tc.args, tc.env)
		if got != tc.want || ok != tc.ok {
			t.Errorf("stateDirArg(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}

// A router molt did not start is never stopped: EnsureRunning says so
// (ErrExternal) and starts no other router. One molt started that does not
// answer is replaced (stopped, and a new router started); a router of
// another state directory is left alone throughout.
func TestEnsureRunningAdoptsOrReplaces(t *testing.T) {
	dir, other := shortDir(t), shortDir(t)
	t.Setenv(childEnv, "1")
	elsewhere := fakeRouter(t, other, "/", EnvManaged+"="+other)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	ext := fakeRouter(t, dir, "/")
	_, err := EnsureRunning(ctx, dir, routerCommand(t, dir), testLogger(t))
	if !errors.Is(err, ErrExternal) {
		t.Fatalf("EnsureRunning with an external router that does not answer = %v, want ErrExternal", err)
	}
	if err := syscall.Kill(ext.Process.Pid, 0); err != nil {
		t.Errorf("the external router was stopped: %v", err)
	}
	if got, _ := FindRouters(dir); len(got) != 1 {
		t.Errorf("routers of the directory: %v, want only the external one", pids(got))
	}
	ext.Process.Kill()
	targetstest.Eventually(t, 5*time.Second, "the external router gone", func() bool { got, _ := FindRouters(dir); return len(got) == 0 })

	hung := fakeRouter(t, dir, "/", EnvManaged+"="+dir)
	began := time.Now()
	started, err := EnsureRunning(ctx, dir, routerCommand(t, dir), testLogger(t))
	if err != nil || !started {
		t.Fatalf("EnsureRunning with a managed router that does not answer = %v, %v; want a new router", started, err)
	}
	if time.Since(began) < answerGrace {
		t.Errorf("the router that did not answer was replaced after %s, before the grace of %s", time.Since(began), answerGrace)
	}
	stopRouterProcess(t, dir, routerPID(t, dir))
	if err := syscall.Kill(hung.Process.Pid, 0); err == nil {
		if _, ok := routerOf(hung.Process.Pid, dir); ok {
			t.Errorf("the router that did not answer still runs")
		}
	}
	got, _ := FindRouters(dir)
	if len(got) != 1 || got[0].PID != routerPID(t, dir) || !got[0].Managed {
		t.Errorf("routers of the directory: %+v, want the new one only", got)
	}
	if _, ok := routerOf(elsewhere.Process.Pid, other); !ok {
		t.Errorf("the router of another state directory was stopped")
	}
}

// A router run without EnvManaged leaves STATE/router/external: while it
// is there, EnsureRunning starts no router of its own, even with none
// running (a supervisor restarts its own); without it, it does.
func TestEnsureRunningWaitsForAnExternalRouter(t *testing.T) {
	dir := shortDir(t)
	r := startRouter(t, dir) // in this process: no EnvManaged
	if _, ok := external(filepath.Join(dir, "router")); !ok {
		t.Fatal("a router run without EnvManaged wrote no external file")
	}
	r.stop()
	t.Setenv(childEnv, "1")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := EnsureRunning(ctx, dir, routerCommand(t, dir), testLogger(t)); !errors.Is(err, ErrExternal) {
		t.Fatalf("EnsureRunning with the external file and no router = %v, want ErrExternal", err)
	}
	if got, _ := FindRouters(dir); len(got) != 0 {
		t.Errorf("a router was started: %v", pids(got))
	}
	if err := os.Remove(filepath.Join(dir, "router", externalName)); err != nil {
		t.Fatal(err)
	}
	started, err := EnsureRunning(ctx, dir, routerCommand(t, dir), testLogger(t))
	if err != nil || !started {
		t.Fatalf("EnsureRunning without the external file = %v, %v; want a router started", started, err)
	}
	stopRouterProcess(t, dir, routerPID(t, dir))
	if _, ok := external(filepath.Join(dir, "router")); ok {
		t.Error("the router molt started wrote the external file")
	}
}

// ListenHolders finds the process that listens on an address, by its
// socket in /proc/net/tcp and its descriptors, and nothing for a free one.
func TestListenHolders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	free := freeAddr(t)
	got, err := ListenHolders([]string{ln.Addr().String(), free})
	if err != nil {
		t.Fatal(err)
	}
	if got[ln.Addr().String()] != os.Getpid() {
		t.Errorf("holder of %s = %d, want this process (%d)", ln.Addr(), got[ln.Addr().String()], os.Getpid())
	}
	if pid, ok := got[free]; ok {
		t.Errorf("holder of the free %s = %d", free, pid)
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0050":                         "0.0.0.0:80",
		"00000000000000000000000001000000:1F90": "[::1]:8080",
	} {
		ip, port, err := parseProcAddr(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := net.JoinHostPort(ip.String(), strconv.Itoa(port)); got != want {
			t.Errorf("parseProcAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
