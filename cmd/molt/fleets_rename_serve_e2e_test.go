package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServePrunesRenamedFleet: when the watched repository renames its
// fleet, molt serve retires the old name's instances and serves the new
// one; a fleet that another repository deployed into the same state
// directory (with apply) is left alone.
func TestServePrunesRenamedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hello := targetstest.Hello(t)
	fleet := func(name, listen string) string {
		return fmt.Sprintf(`name: %q
services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "20s"}
}
`, name, hello, name, listen)
	}
	ports := make([]string, 2)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = "127.0.0.1:" + p
	}
	app, otherApp := ports[0], ports[1]
	state := stateDir(t)

	other := gittest.NewRepo(t)
	other.WriteFile("fleet.cue", fleet("other", otherApp))
	other.Commit("other")
	fleetsMolt(t, "apply", "--repo", other.Dir, "--state-dir", state, "--log-level", "warn")
	answers(t, otherApp, "hello from other", 10*time.Second)

	repo := gittest.NewRepo(t)
	repo.WriteFile("fleet.cue", fleet("shop", app))
	repo.Commit("shop")
	token := newFleetsHookToken(t)
	s := startServe(t, repo.Dir, state, "@every 1h", "--generic-token-file", token.file)
	answers(t, app, "hello from shop", 30*time.Second)
	live := fleetsLive(t, state)
	byFleet := func() map[string]int { return live(func(l targets.Labels) string { return l.Fleet }) }
	otherIDs := fleetsInstanceIDs(t, state, "other")
	if got := byFleet(); got["shop"] != 2 || got["other"] != 2 {
		t.Fatalf("before the rename: %v, want 2 of shop and 2 of other", got)
	}

	repo.WriteFile("fleet.cue", fleet("store", app))
	repo.Commit("rename shop to store")
	fleetsTrigger(t, s, token.value)
	answers(t, app, "hello from store", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "only store's instances of the renamed fleet", func() bool {
		got := byFleet()
		return got["shop"] == 0 && got["store"] == 2
	})
	pruned := regexp.MustCompile(`fleet renamed: pruning the old name's instances and routes" fleet=shop`)
	if !pruned.MatchString(s.logs.String()) {
		t.Errorf("serve did not log the pruning of shop")
	}
	if got := fleetsInstanceIDs(t, state, "other"); fmt.Sprint(got) != fmt.Sprint(otherIDs) {
		t.Errorf("other's instances changed across the rename: %v, then %v", otherIDs, got)
	}
	answers(t, otherApp, "hello from other", time.Second)
}

// fleetsMolt runs the molt binary and fails the test unless it exits 0.
func fleetsMolt(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("molt", args...).CombinedOutput(); err != nil {
		t.Fatalf("molt %v: %v\n%s", args, err, out)
	}
}

// fleetsInstanceIDs lists the ids of a fleet's process instances, sorted.
func fleetsInstanceIDs(t *testing.T, state, fleet string) []string {
	t.Helper()
	tgt, err := process.New(process.Options{Dir: filepath.Join(state, "instances")})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	insts, err := tgt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range insts {
		if in.Labels.Fleet == fleet {
			ids = append(ids, in.ID)
		}
	}
	slices.Sort(ids)
	return ids
}
