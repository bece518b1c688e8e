package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeRetiresWarmGenerationOnTime: under molt serve, a blue-green
// service's previous generation is retired when its keepPrevious ends,
// by the clock alone: the poll is hourly and no webhook comes after the
// one that deployed v2.
func TestServeRetiresWarmGenerationOnTime(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const keep = 3 * time.Second
	hello := targetstest.Hello(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	app := "127.0.0.1:" + port
	repo := gittest.NewRepo(t)
	write := func(version string) {
		repo.WriteFile("fleet.cue", fmt.Sprintf(`name: "expiry"
services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "20s", keepPrevious: %q}
}
`, hello, version, app, keep.String()))
		repo.Commit(version)
	}
	write("v1")
	state := stateDir(t)
	token := newFleetsHookToken(t)
	s := startServe(t, repo.Dir, state, "@every 1h", "--generic-token-file", token.file)
	answers(t, app, "hello from v1", 30*time.Second)
	s.converged(t, "main@sha1:"+repo.Head())

	live := fleetsLive(t, state)
	versions := func() map[string]int {
		return live(func(l targets.Labels) string { return l.Revision })
	}
	v1 := repo.Head()
	rev1 := "main@sha1:" + v1

	write("v2")
	fleetsTrigger(t, s, token.value)
	answers(t, app, "hello from v2", 30*time.Second)
	switched := time.Now()
	if n := versions()[rev1]; n != 2 {
		t.Fatalf("right after the switch %d v1 instances run, want 2 kept warm (%v)", n, versions())
	}

	// Poll (no fixed sleep) until v1 is gone, bounded well past keepPrevious.
	var retired time.Time
	deadline := switched.Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if versions()[rev1] == 0 {
			retired = time.Now()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if retired.IsZero() {
		t.Fatalf("v1 still runs %s after the switch (keepPrevious %s): %v", time.Since(switched).Round(time.Millisecond), keep, versions())
	}
	took := retired.Sub(switched)
	t.Logf("warm v1 retired %s after the switch was seen (keepPrevious %s)", took.Round(time.Millisecond), keep)
	if took < keep-time.Second {
		t.Errorf("v1 retired %s after the switch, before keepPrevious (%s) ended", took, keep)
	}
	// How late after keepPrevious is a figure (logged above); that no poll
	// or hook did it is checked below.
	// The reconcile that retired it was the clock's, not a poll's or a
	// hook's. (Or one that an exit woke just before: serve follows the
	// deaths of every molt container on the engine, and the other tests
	// run docker fleets beside this one; such a reconcile retires v1 only
	// once keepPrevious has passed, as the clock's would.)
	woke := regexp.MustCompile(`msg=reconciled reason=(wake|exit) .*retired=2`)
	targetstest.Eventually(t, 5*time.Second, "a wake reconcile that retired 2 in the log", func() bool { return woke.MatchString(s.logs.String()) })
	if n := versions()["main@sha1:"+repo.Head()]; n != 2 {
		t.Errorf("%d v2 instances run, want 2 (%v)", n, versions())
	}
	answers(t, app, "hello from v2", time.Second)
}

// fleetsHookToken is a bearer token for /hooks/generic, in a file for
// --generic-token-file.
type fleetsHookToken struct{ value, file string }

func newFleetsHookToken(t *testing.T) fleetsHookToken {
	t.Helper()
	tok := fleetsHookToken{value: "generic-t0ken", file: filepath.Join(t.TempDir(), "token")}
	if err := os.WriteFile(tok.file, []byte(tok.value), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok
}

// fleetsTrigger asks serve for a reconcile through POST /hooks/generic.
func fleetsTrigger(t *testing.T, s *served, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.listen+"/hooks/generic", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("generic hook answered %s", resp.Status)
	}
}

// fleetsLive reads the process instances of a state directory (without
// changing anything) and counts the running ones by a key of their labels.
func fleetsLive(t *testing.T, state string) func(key func(targets.Labels) string) map[string]int {
	t.Helper()
	tgt, err := process.New(process.Options{Dir: filepath.Join(state, "instances")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	return func(key func(targets.Labels) string) map[string]int {
		insts, err := tgt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, in := range insts {
			if in.State == targets.Running {
				out[key(in.Labels)]++
			}
		}
		return out
	}
}
