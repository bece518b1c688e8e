package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// needMount skips a test that mounts file systems when this process may
// not (not root, or a container without CAP_SYS_ADMIN), unless
// MOLT_REQUIRE_ROOT=1 says it must run.
func needMount(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
			why = "mount is not permitted: " + strings.TrimSpace(string(out))
		} else {
			_ = exec.Command("umount", dir).Run()
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("MOLT_REQUIRE_ROOT") == "1" {
		t.Fatalf("MOLT_REQUIRE_ROOT=1 but %s", why)
	}
	t.Skipf("mounts a read-only or full state directory: %s (MOLT_REQUIRE_ROOT=1 makes this a failure)", why)
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// readyz returns /readyz's status and text.
func (s *served) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.listen + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// degradedUntilWritable checks what serve does while its state directory
// cannot be written (want names the cause /readyz must give), with load
// through the router, then lets heal make it writable again and checks
// that a new commit deploys.
func degradedUntilWritable(t *testing.T, f *coreFleet, s *served, want string, heal func()) {
	t.Helper()
	load := targetstest.StartLoad(f.addr(), 2, 10*time.Millisecond)
	var text string
	targetstest.Eventually(t, 20*time.Second, "/readyz says the state directory cannot be written", func() bool {
		_, text = s.readyz(t)
		return strings.Contains(text, "state: degraded") && strings.Contains(text, want)
	})
	if code, text := s.readyz(t); code != 200 {
		t.Errorf("/readyz answered %d while the state directory could not be written: serve is degraded, still serving:\n%s", code, text)
	}
	t.Logf("/readyz:\n%s", text)
	// Some reconciles (every second) and the router's supervision go on
	// meanwhile, all of them wanting to write.
	time.Sleep(4 * time.Second)
	if n := s.metric("molt_state_write_errors_total"); n == 0 {
		t.Error("molt_state_write_errors_total is 0 while the state directory cannot be written")
	}
	logs := s.logs.String()
	said := strings.Count(logs, "cannot write a state file")
	if said == 0 {
		t.Errorf("the log does not say that a state file cannot be written:\n%s", logs)
	}
	if said > 8 { // once per file at most, a handful of files
		t.Errorf("the log says %d times that a state file cannot be written: a flood, not once per file", said)
	}
	if code := s.deliver(strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD"))); code != http.StatusAccepted && code != http.StatusOK {
		t.Errorf("a webhook delivery answered %d while the state directory could not be written", code)
	}
	// Self-heal: a killed instance is replaced when the process target
	// can still provision; when it cannot, the error says why.
	insts := f.running()
	if len(insts) != 2 {
		t.Fatalf("%d instances running before the kill, want 2", len(insts))
	}
	f.kill(insts[0])
	healed := "replaced"
	deadline := time.Now().Add(15 * time.Second)
	for len(f.running()) != 2 {
		if time.Now().After(deadline) {
			healed = "not replaced"
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if healed != "replaced" {
		logs := s.logs.String()
		if !strings.Contains(logs, "read-only file system") && !strings.Contains(logs, "no space left on device") {
			t.Errorf("a killed instance was not replaced while the state directory could not be written, and the log does not say why:\n%s", logs)
		}
	}
	_, text = s.readyz(t)
	t.Logf("self-heal while the state directory could not be written: %s; /readyz:\n%s", healed, text)

	heal()
	targetstest.Eventually(t, 30*time.Second, "two instances of v1 again", func() bool { return len(f.running()) == 2 })
	targetstest.Eventually(t, 20*time.Second, "/readyz says nothing about the state directory", func() bool {
		_, text = s.readyz(t)
		return !strings.Contains(text, "state:")
	})
	f.commit("v2", f.blueGreen("v2"))
	v2 := "main@sha1:" + strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD"))
	s.deliver(strings.TrimPrefix(v2, "main@sha1:"))
	s.converged(t, v2)
	answers(t, f.addr(), "hello from v2", 10*time.Second)
	bodies := load.Finish(t) // 0 failed requests, from the first read-only moment to v2
	t.Logf("figures: %d requests through the router, 0 failed; answers %v; %d log lines about state writes", load.Total(), bodies, said)
	if !strings.Contains(s.logs.String(), "state file can be written again") && !strings.Contains(s.logs.String(), "state file written again") {
		t.Errorf("the log does not say the state directory can be written again")
	}
}

// TestServeOnAReadOnlyStateDir: the state directory turns read-only
// while serve serves (a read-only bind mount over it). The service keeps
// answering through the router (0 failed requests), serve logs once per
// file which file cannot be written and why, counts it, and /readyz
// reports it (still 200: degraded, serving from memory); once the
// directory is writable again, /readyz clears and a new commit deploys.
// (Was: each write failure was logged at every attempt, a reconcile
// failed on the first record it could not write, and /readyz said
// nothing.)
func TestServeOnAReadOnlyStateDir(t *testing.T) {
	needMount(t)
	f := newCoreFleet(t)
	f.commit("v1", f.blueGreen("v1"))
	state, err := filepath.Abs(f.state)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, f.repo, state, "@every 1s")
	s.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	answers(t, f.addr(), "hello from v1", 10*time.Second)

	// A read-only bind mount over the directory: what is open stays
	// open (the instances' logs), every new write fails with EROFS.
	mustRun(t, "mount", "--bind", "-o", "ro", state, state)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", "-l", state).Run()
		}
	})
	if err := os.WriteFile(filepath.Join(state, "probe"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("the state directory is not read-only: %v", err)
	}
	degradedUntilWritable(t, f, s, "read-only", func() {
		mustRun(t, "umount", "-l", state)
		mounted = false
	})
}

// TestServeOnAFullStateDir: the same with a state directory (a small
// tmpfs) that fills up while serve serves (ENOSPC).
func TestServeOnAFullStateDir(t *testing.T) {
	needMount(t)
	f := newCoreFleet(t)
	state, err := os.MkdirTemp("", "mf")
	if err != nil {
		t.Fatal(err)
	}
	// The hello binary's copy in the artifact store, the Git cache and
	// the logs fit in 64 MB.
	mustRun(t, "mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", state)
	orig := f.state
	f.state = state
	t.Cleanup(func() {
		f.molt("down", "--yes") // before the tmpfs goes, with what it records
		_ = exec.Command("umount", "-l", state).Run()
		os.Remove(state)
		f.state = orig // for newCoreFleet's own down
	})
	f.commit("v1", f.blueGreen("v1"))
	s := startServe(t, f.repo, state, "@every 1s")
	s.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	answers(t, f.addr(), "hello from v1", 10*time.Second)

	filler := filepath.Join(state, "filler")
	fill, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range 128 { // bounded: the tmpfs is 64 MB
		if _, err = fill.Write(chunk); err != nil {
			break
		}
	}
	fill.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the tmpfs did not fill up: %v", err)
	}
	degradedUntilWritable(t, f, s, "full", func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
}
