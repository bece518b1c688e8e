package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// routerPID finds the pid of the live molt router of a state directory
// (0 when none runs).
func routerPID(t *testing.T, state string) int {
	t.Helper()
	if pids := routerPIDs(t, state); len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// TestServeRestartsADeadRouter: kill -9 of the router under serve: serve
// starts it again within about a second, its table comes back, and the
// service answers again without a restart of serve; /readyz says so while
// it cannot. (Was: every request failed until serve was restarted, while
// /readyz said 200.)
func TestServeRestartsADeadRouter(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", f.blueGreen("v1"))
	state, err := filepath.Abs(f.state)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, f.repo, state, "@every 1h")
	s.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	answers(t, f.addr(), "hello from v1", 10*time.Second)

	for round := range 3 {
		pid := routerPID(t, state)
		if pid == 0 {
			t.Fatalf("round %d: no router process for %s", round, state)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		targetstest.Eventually(t, 15*time.Second, "a new router", func() bool {
			p := routerPID(t, state)
			return p != 0 && p != pid
		})
		answers(t, f.addr(), "hello from v1", 15*time.Second)
		t.Logf("round %d: router %d killed, answering again after %s", round, pid, time.Since(start).Round(time.Millisecond))

		load := targetstest.StartLoad(f.addr(), 2, 10*time.Millisecond)
		time.Sleep(time.Second)
		load.Finish(t) // no request fails once the router is back
	}
	if !strings.Contains(s.logs.String(), "starting it again") {
		t.Errorf("the log does not say the router was started again:\n%s", s.logs.String())
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

// TestServeRemembersDeliveriesAcrossRestarts: GitHub's redelivery of a
// push that a previous serve took is recognised after a restart (the ids
// are kept in the state directory), so it is answered, not acted on again.
func TestServeRemembersDeliveriesAcrossRestarts(t *testing.T) {
	repo := newFleetRepo(t)
	state := stateDir(t)
	s := startServe(t, repo.Root+"/fleet.git", state, "@every 1h")
	if code := s.deliverID(repo.First, "redelivered-1"); code != 202 {
		t.Fatalf("first delivery answered %d, want 202", code)
	}
	stopServe(t, s)
	s2 := startServe(t, repo.Root+"/fleet.git", state, "@every 1h")
	if code := s2.deliverID(repo.First, "redelivered-1"); code != 200 {
		t.Errorf("the redelivery after a restart answered %d, want 200 (duplicate)", code)
	}
	if code := s2.deliverID(repo.First, "new-1"); code != 202 {
		t.Errorf("a new delivery answered %d, want 202", code)
	}
}
