package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeStartsOnCorruptStateFiles: every state file molt keeps is
// garbled (or emptied) while serve and the router are down; serve starts,
// moves each aside with a warning, rebuilds what it needs from the live
// fleet, and the service answers again and converges a new commit.
// Nothing crashes, nothing is stuck.
func TestServeStartsOnCorruptStateFiles(t *testing.T) {
	f := newCoreFleet(t)
	src := func(v string) string {
		return fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "20s", keepPrevious: "1m"}
}
`, f.hello, v, f.addr())
	}
	f.commit("v1", src("v1"))
	state, err := filepath.Abs(f.state)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, f.repo, state, "@every 1s")
	s.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	stopServe(t, s)
	if pid := routerPID(t, state); pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		targetstest.Eventually(t, 10*time.Second, "the router gone", func() bool { return routerPID(t, state) == 0 })
	}

	garbage := map[string]string{
		"router/routes.json":  "",
		"revisions.json":      "{not json",
		"decisions.json":      "\x00\x01garbage",
		"github-queue.json":   `{"version": 99}`,
		"notify-queue.json":   "[[[",
		"events.jsonl":        "{\"id\": 1, \"kind\": \"deploy\"\n{torn",
		"secret-key":          "short",
		"router/routes.json~": "leftover",
	}
	for name, content := range garbage {
		if err := os.WriteFile(filepath.Join(state, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s2 := startServe(t, f.repo, state, "@every 1s")
	answers(t, f.addr(), "hello from v1", 30*time.Second)
	f.commit("v2", src("v2"))
	s2.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	answers(t, f.addr(), "hello from v2", 10*time.Second)
	if n := len(f.running()); n != 4 { // v2, and v1 kept warm
		t.Errorf("%d instances run, want 2 of v2 and 2 of v1 kept warm", n)
	}
	logs := s2.logs.String()
	for _, want := range []string{"moved aside"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	for _, name := range []string{"router/routes.json", "revisions.json", "decisions.json", "github-queue.json"} { // notify-queue.json is read only with --notify-url
		aside, _ := filepath.Glob(filepath.Join(state, name) + ".*")
		if len(aside) == 0 {
			t.Errorf("%s was not moved aside", name)
		}
	}
	if strings.Contains(logs, "panic") {
		t.Errorf("serve panicked:\n%s", logs)
	}
}
