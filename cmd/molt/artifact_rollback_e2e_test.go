package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRollbackRunsTheOldProgram: a rolling rollout of a rebuilt executable
// completes (every old instance retired), then fails its verification; the
// rollback provisions the old generation again from the artifact store,
// although the file at the path now holds the new program: every instance
// afterwards runs the old bytes.
func TestRollbackRunsTheOldProgram(t *testing.T) {
	f := newCoreFleet(t)
	app := filepath.Join(f.work, "app")
	coreCopy(t, f.hello, app, nil)
	oldDigest := coreSHA256(t, app)
	fleet := func(version, extra string) string {
		return fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: ["./app"]
	env: {VERSION: %q, %s}
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, progressDeadline: "20s", verifyFor: "8s", maxErrorRate: 0.05}
}
`, version, extra, f.addr())
	}
	f.commit("v1", fleet("v1", ""))
	f.mustApply()

	// v2: the executable rebuilt, and (through the env) failing every
	// request two seconds after it starts.
	coreCopy(t, f.hello, app, []byte("rebuilt"))
	f.commit("v2", fleet("v2", `FAIL_AFTER: "2s"`))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // bounded load, so that verification has requests to judge
		defer wg.Done()
		c := &http.Client{Timeout: 2 * time.Second}
		for i := 0; i < 3000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if resp, err := c.Get("http://" + f.addr() + "/"); err == nil {
				resp.Body.Close()
			}
		}
	}()
	r := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	close(stop)
	wg.Wait()
	if r.code != 1 || !strings.Contains(r.stdout, "rolled back web: verification:") {
		t.Fatalf("apply exited %d, want a failed verification rolled back:\n%s%s", r.code, r.stdout, r.stderr)
	}
	insts := f.running()
	if len(insts) != 2 {
		t.Fatalf("%d instances run after the rollback, want 2", len(insts))
	}
	for _, in := range insts {
		if got := coreExeDigest(t, in.PID); got != oldDigest {
			t.Errorf("instance %s runs sha256 %s after the rollback, want the old program %s", in.ID, got[:12], oldDigest[:12])
		}
	}
	if body, err := f.get("/"); err != nil || !strings.Contains(body, "hello from v1") {
		t.Errorf("the router answers %q, %v", body, err)
	}
}
