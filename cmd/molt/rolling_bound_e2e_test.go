package main

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestRollingNeverAboveReplicasPlusSurge samples the live processes of a
// rolling rollout of 4 replicas with maxSurge 1 every 100 ms (staged
// provisions included: any process running in an instance directory) and
// never sees more than 5, also across the rollout of a failing generation
// and its rollback. (Before, keepPrevious also applied to rolling and the
// same rollout peaked at 8.)
func TestRollingNeverAboveReplicasPlusSurge(t *testing.T) {
	f := newCoreFleet(t)
	fleet := func(version, extra string) string {
		return fmt.Sprintf(`services: web: {
	replicas: 4
	process: command: [%q]
	env: {VERSION: %q, %s}
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "200ms", progressDeadline: "20s"}
}
`, f.hello, version, extra, f.addr())
	}
	f.commit("v1", fleet("v1", ""))
	f.mustApply()

	dir := filepath.Join(f.state, "instances")
	var mu sync.Mutex
	peak, samples := 0, 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := processesUnder(t, dir)
			mu.Lock()
			peak, samples = max(peak, n), samples+1
			mu.Unlock()
		}
	}()
	f.commit("v2", fleet("v2", ""))
	f.mustApply()
	f.commit("v3 (broken)", fleet("v3", `FAIL_HEALTH: "1"`))
	if r := f.molt("apply", "--repo", f.repo, "--log-level", "warn"); r.code != 1 {
		t.Errorf("apply of the broken v3 exited %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
	}
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d samples, at most %d live processes", samples, peak)
	if samples < 10 {
		t.Fatalf("only %d samples", samples)
	}
	if peak > 5 {
		t.Errorf("%d processes lived at once; replicas 4 + maxSurge 1 allows 5", peak)
	}
	if n := len(f.running()); n != 4 {
		t.Errorf("%d instances run at the end, want 4", n)
	}
}
