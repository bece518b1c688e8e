package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeHealsWhileTheRemoteIsGone: when the repository cannot be
// fetched, serve still converges the last revision it read, so a killed
// instance is replaced; the fetch error is logged and retried. (Was: the
// fetch error ended every reconcile, and the killed instance stayed dead.)
func TestServeHealsWhileTheRemoteIsGone(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", f.blueGreen("v1"))
	s := startServe(t, f.repo, f.state, "@every 1s")
	targetstest.Eventually(t, 30*time.Second, "two instances", func() bool { return len(f.running()) == 2 })
	answers(t, f.addr(), "hello from v1", 10*time.Second)

	// The remote goes away.
	gone := f.repo + ".gone"
	if err := os.Rename(f.repo, gone); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(gone, f.repo) }) // for molt down
	before := s.metric("molt_fetch_errors_total")
	targetstest.Eventually(t, 20*time.Second, "a failed fetch", func() bool { return s.metric("molt_fetch_errors_total") > before })

	insts := f.running()
	victim := insts[0]
	f.kill(victim)
	targetstest.Eventually(t, 30*time.Second, "the killed instance replaced while the remote is gone", func() bool {
		now := f.running()
		return len(now) == 2 && !slices.ContainsFunc(now, func(in coreInst) bool { return in.ID == victim.ID })
	})
	answers(t, f.addr(), "hello from v1", 10*time.Second)
	if !strings.Contains(s.logs.String(), "converging the last revision read") {
		t.Errorf("the log does not say the last revision is converged:\n%s", s.logs.String())
	}
}

// blueGreen is web: 2 replicas of hello answering "hello from VERSION",
// exposed on the fleet's port, blue-green.
func (f *coreFleet) blueGreen(version string) string {
	return fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "20s"}
}
`, f.hello, version, f.addr())
}
