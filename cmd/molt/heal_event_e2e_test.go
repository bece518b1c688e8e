package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeHealsOnExit: with a poll an hour apart, an instance killed
// under serve is replaced on its exit, not at the next poll: a new
// instance is healthy and the killed one retired, with no request through
// the router failing meanwhile. Once for an instance this serve started,
// once for one that an earlier serve started (serve restarted in between,
// so the instance is not its child). The seconds each took are logged,
// not asserted.
func TestServeHealsOnExit(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", f.blueGreen("v1"))
	s := startServe(t, f.repo, f.state, "@every 1h")
	healed(t, s, f, "")
	answers(t, f.addr(), "hello from v1", 10*time.Second)

	killAndHeal := func(name string) {
		insts := f.running()
		if len(insts) != 2 {
			t.Fatalf("%s: %d instances run, want 2", name, len(insts))
		}
		victim := insts[0]
		load := targetstest.StartLoad(f.addr(), 2, 10*time.Millisecond)
		began := time.Now()
		f.kill(victim)
		healed(t, s, f, victim.ID)
		t.Logf("%s: instance %s killed, replaced and retired in %.2fs (poll @every 1h)", name, victim.ID, time.Since(began).Seconds())
		load.Finish(t)
		if !strings.Contains(s.logs.String(), "instance exited; reconciling") {
			t.Errorf("%s: the log does not say the exit triggered the reconcile", name)
		}
	}
	killAndHeal("started by this serve")

	// serve restarts: the instances it started are now an earlier serve's.
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM:\n%s", s.logs.String())
	}
	s = startServe(t, f.repo, f.state, "@every 1h")
	healed(t, s, f, "")
	answers(t, f.addr(), "hello from v1", 10*time.Second)
	killAndHeal("started by an earlier serve")
}

// healed waits until serve's status shows web with 2 healthy instances,
// none of them gone (its directory removed, i.e. retired), and two
// processes running.
func healed(t *testing.T, s *served, f *coreFleet, gone string) {
	t.Helper()
	targetstest.Eventually(t, 20*time.Second, "web 2/2 healthy, without "+gone, func() bool {
		var st apiStatus
		if getJSON(t, "http://"+s.listen+"/api/v1/status", &st) != http.StatusOK || len(st.Fleets) != 1 || len(st.Fleets[0].Services) != 1 {
			return false
		}
		web := st.Fleets[0].Services[0]
		if web.Healthy != 2 || len(web.Instances) != 2 {
			return false
		}
		for _, in := range web.Instances {
			if in.ID == gone || in.Health != "healthy" {
				return false
			}
		}
		return len(f.running()) == 2 && (gone == "" || !slices.Contains(f.instanceIDs(), gone))
	})
}

// TestServeReplacesAHungInstance: with a poll an hour apart, an instance
// that stays up but stops answering (SIGSTOP: its port still accepts, its
// health check times out) is replaced once its checks, probed between
// reconciles, turn it unhealthy; the hung one is retired (continued after
// its SIGTERM, so it ends gracefully).
func TestServeReplacesAHungInstance(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: "v1"
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {http: path: "/healthz", interval: "100ms", timeout: "200ms", grace: "1s"}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0}
}
`, f.hello, f.addr()))
	s := startServe(t, f.repo, f.state, "@every 1h")
	healed(t, s, f, "")
	answers(t, f.addr(), "hello from v1", 10*time.Second)

	victim := f.running()[0]
	began := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(victim.PID, syscall.SIGCONT) })
	healed(t, s, f, victim.ID)
	t.Logf("hung instance %s replaced and retired in %.2fs (poll @every 1h)", victim.ID, time.Since(began).Seconds())
	switch logs := s.logs.String(); {
	case strings.Contains(logs, "instance unhealthy; reconciling"):
	case strings.Contains(logs, "instance exited; reconciling"):
		// The Docker engine's die events of other tests' containers
		// trigger reconciles too; one came first and found the verdict.
		t.Logf("an exit event triggered the reconcile before the health watch did")
	default:
		t.Errorf("the log does not say the verdict triggered the reconcile:\n%s", logs)
	}
	if f.alive(victim) {
		t.Errorf("the hung process %d still runs", victim.PID)
	}
	answers(t, f.addr(), "hello from v1", 10*time.Second)
}
