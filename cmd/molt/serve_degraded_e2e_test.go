package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeDegradedNeverConverged: under molt serve, a pinned service whose
// instances all die when its artifact can be had neither from the store nor
// from the file is reported degraded on every reconcile, never converged,
// and nothing is rolled back; once the executable is put back, the next
// poll brings the service back. (Before, serve logged result=converged
// while the router answered 503 forever.)
func TestServeDegradedNeverConverged(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hello := targetstest.Hello(t)
	good, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	app := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(app, good, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + port
	repo := gittest.NewRepo(t)
	repo.WriteFile("fleet.cue", fmt.Sprintf(`name: "pinned"
services: web: {
	replicas: 2
	process: {command: [%q], sha256: %q}
	env: VERSION: "v1"
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
}
`, app, hex.EncodeToString(sum[:]), addr))
	repo.Commit("v1")
	state := stateDir(t)
	s := startServe(t, repo.Dir, state, "@every 1s")
	answers(t, addr, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "the first rollout to converge", func() bool {
		return strings.Contains(s.logs.String(), "result=converged")
	})

	// The store copy goes, the file at the path is rebuilt, and every
	// instance dies.
	if err := os.RemoveAll(filepath.Join(state, "artifacts")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(app, append(good, "rebuilt"...), 0o755); err != nil {
		t.Fatal(err)
	}
	killed := len(s.logs.String())
	for _, pid := range servePIDs(t, state) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	targetstest.Eventually(t, 20*time.Second, "serve to report web degraded", func() bool {
		return strings.Contains(s.logs.String()[killed:], `msg="service degraded" fleet=pinned service=web`)
	})
	after := s.logs.String()[killed:]
	for _, bad := range []string{"result=converged", "rolled back", "rollout failed"} {
		if strings.Contains(after, bad) {
			t.Errorf("after the instances died, serve logged %q:\n%s", bad, after)
		}
	}

	// The executable back as pinned: the next poll heals the service.
	if err := os.WriteFile(app, good, 0o755); err != nil {
		t.Fatal(err)
	}
	answers(t, addr, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 10*time.Second, "a converged reconcile", func() bool {
		return strings.Contains(s.logs.String()[killed:], "result=converged")
	})
}

// servePIDs reads the pids of the process instances of a state directory.
func servePIDs(t *testing.T, state string) []int {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(state, "instances", "*", "instance.json"))
	var pids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var rec struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(b, &rec) == nil && rec.PID > 0 {
			pids = append(pids, rec.PID)
		}
	}
	if len(pids) == 0 {
		t.Fatal("no instance pids found")
	}
	return pids
}
