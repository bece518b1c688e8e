package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestApplyRestartsADeadRouter: kill -9 of the router while molt apply
// rolls out (no serve runs): apply starts it again at its next pass and
// converges, and the new generation answers through the new router. (Was:
// the next pass could not read the routes and apply failed, leaving the
// service down.)
func TestApplyRestartsADeadRouter(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", f.blueGreen("v1"))
	f.mustApply()
	state := f.state
	old := routerPID(t, state)
	if old == 0 {
		t.Fatal("no router after the first apply")
	}
	// v2 waits a while for its instances (minHealthyFor), so that apply is
	// mid-rollout when the router dies.
	f.commit("v2", strings.Replace(f.blueGreen("v2"), `minHealthyFor: "200ms"`, `minHealthyFor: "3s"`, 1))
	var out, errb bytes.Buffer
	apply := exec.Command("molt", "apply", "--repo", f.repo, "--state-dir", state, "--log-level", "info", "--log-format", "text")
	apply.Dir = f.work
	apply.Stdout, apply.Stderr = &out, &errb
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- apply.Wait() }()
	targetstest.Eventually(t, 20*time.Second, "v2 instances provisioned", func() bool { return len(f.running()) > 2 })
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "converged to ") {
			t.Fatalf("apply: %v\n%s%s", err, out.String(), errb.String())
		}
	case <-time.After(90 * time.Second):
		apply.Process.Kill()
		t.Fatalf("apply did not finish\n%s%s", out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "starting it again") {
		t.Errorf("apply's log does not say it started the router again:\n%s", errb.String())
	}
	pids := routerPIDs(t, state)
	if len(pids) != 1 || pids[0] == old {
		t.Errorf("router processes after apply: %v, want one new one (the old was %d)", pids, old)
	}
	answers(t, f.addr(), "hello from v2", 10*time.Second)
}

// externalRouter runs `molt router` as systemd would: its own process,
// started by the test, without the variable molt's EnsureRunning sets.
type externalRouter struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startExternalRouter(t *testing.T, state string) *externalRouter {
	t.Helper()
	c := exec.Command("molt", "router", "--state-dir", state, "--log-format", "text")
	c.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, router.EnvManaged+"=") }),
		"INVOCATION_ID=0123456789abcdef")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdout, c.Stderr = io.Discard, io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r := &externalRouter{cmd: c, exited: make(chan struct{})}
	go func() { c.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		syscall.Kill(c.Process.Pid, syscall.SIGCONT)
		c.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			c.Process.Kill()
		}
	})
	targetstest.Eventually(t, 10*time.Second, "the external router to answer", func() bool {
		return router.NewClient(state).Ping(t.Context()) == nil
	})
	return r
}

// readyz reads serve's /readyz as JSON.
func readyz(t *testing.T, s *served) (int, readyDoc) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.listen+"/readyz", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, readyDoc{}
	}
	defer resp.Body.Close()
	var d readyDoc
	_ = json.NewDecoder(resp.Body).Decode(&d)
	return resp.StatusCode, d
}

// TestExternalRouterIsNeverReplaced: a router that molt did not start (run
// as systemd would) is used as it is; stopped (SIGSTOP, then SIGTERM),
// molt neither kills nor replaces it, says so on /readyz and waits; run
// again, molt uses it.
func TestExternalRouterIsNeverReplaced(t *testing.T) {
	f := newCoreFleet(t)
	state := f.state
	ext := startExternalRouter(t, state)
	f.commit("v1", f.blueGreen("v1"))
	f.mustApply()
	if pids := routerPIDs(t, state); len(pids) != 1 || pids[0] != ext.cmd.Process.Pid {
		t.Fatalf("router processes: %v, want only the external %d", pids, ext.cmd.Process.Pid)
	}
	s := startServe(t, f.repo, state, "@every 1s")
	s.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	answers(t, f.addr(), "hello from v1", 10*time.Second)
	if code, d := readyz(t, s); code != http.StatusOK || d.Router.State != "up" {
		t.Errorf("/readyz with the external router up: %d %+v", code, d)
	}

	// Hung: molt waits past the grace in which it replaces a router of its
	// own, and does not touch it.
	if err := syscall.Kill(ext.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	targetstest.Eventually(t, 20*time.Second, "/readyz saying the external router does not answer", func() bool {
		code, d := readyz(t, s)
		return code == http.StatusServiceUnavailable && d.Router.State == "external-down"
	})
	time.Sleep(5 * time.Second) // more than the grace of a router molt started (3s)
	if pids := routerPIDs(t, state); len(pids) != 1 || pids[0] != ext.cmd.Process.Pid {
		t.Errorf("router processes while the external one hangs: %v, want only it", pids)
	}
	resp, err := http.Get("http://" + s.listen + "/readyz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "not started by molt") {
			t.Errorf("/readyz text does not say the router is not molt's:\n%s", b)
		}
	}
	syscall.Kill(ext.cmd.Process.Pid, syscall.SIGCONT)
	targetstest.Eventually(t, 20*time.Second, "/readyz with the external router back", func() bool {
		code, d := readyz(t, s)
		return code == http.StatusOK && d.Router.State == "up"
	})

	// Stopped, as systemctl stop does: molt starts no router of its own.
	ext.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ext.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the external router did not stop")
	}
	targetstest.Eventually(t, 20*time.Second, "/readyz saying the external router is not running", func() bool {
		code, d := readyz(t, s)
		return code == http.StatusServiceUnavailable && d.Router.State == "external-down"
	})
	time.Sleep(3 * time.Second)
	if pids := routerPIDs(t, state); len(pids) != 0 {
		t.Errorf("molt started a router of its own in place of the external one: %v", pids)
	}
	if !strings.Contains(s.logs.String(), "not molt's to start or replace") {
		t.Errorf("serve's log does not say it waits for the external router:\n%s", s.logs.String())
	}

	// Started again: molt uses it.
	again := startExternalRouter(t, state)
	targetstest.Eventually(t, 20*time.Second, "/readyz with the new external router", func() bool {
		code, d := readyz(t, s)
		return code == http.StatusOK && d.Router.State == "up"
	})
	answers(t, f.addr(), "hello from v1", 30*time.Second)
	if pids := routerPIDs(t, state); len(pids) != 1 || pids[0] != again.cmd.Process.Pid {
		t.Errorf("router processes: %v, want only the external %d", pids, again.cmd.Process.Pid)
	}
	stopServe(t, s) // before the external router stops, and before molt down
}
