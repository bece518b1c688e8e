package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// routerPIDs lists every router process of a state directory (by its
// command line, as routerPID finds one).
func routerPIDs(t *testing.T, state string) []int {
	t.Helper()
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 4 && args[1] == "router" && args[2] == "--state-dir" && args[3] == state && !zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// stateProcesses lists the live processes that belong to a state
// directory: its routers, and every process whose executable or working
// directory is (or was, before a removal) under it: the instances run from
// their content-addressed copies there.
func stateProcesses(t *testing.T, state string) []string {
	t.Helper()
	var out []string
	for _, pid := range routerPIDs(t, state) {
		out = append(out, "router "+strconv.Itoa(pid))
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || zombie(pid) {
			continue
		}
		for _, link := range []string{"exe", "cwd"} {
			p, err := os.Readlink(filepath.Join("/proc", e.Name(), link))
			if err == nil && strings.HasPrefix(p, state+"/") {
				out = append(out, e.Name()+" "+link+" "+p)
				break
			}
		}
	}
	return out
}

// TestServeSurvivesLosingTheStateDirectory is defect 7: the whole state
// directory is removed (rm -rf) under serve, with traffic flowing through
// the router; then v2 is committed. The router makes its files again (or
// is found by its process and adopted), v2 deploys, exactly one router
// serves the state directory, no request fails, and molt down leaves no
// process behind. (Was: the instances and the old router were unknown to
// molt afterwards, a new router could not bind the port, and v2 never
// deployed.)
func TestServeSurvivesLosingTheStateDirectory(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", f.blueGreen("v1"))
	state, err := filepath.Abs(f.state)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, f.repo, state, "@every 1s")
	s.converged(t, "main@sha1:"+strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD")))
	answers(t, f.addr(), "hello from v1", 10*time.Second)
	before := routerPIDs(t, state)
	if len(before) != 1 {
		t.Fatalf("router processes before: %v, want one", before)
	}

	load := targetstest.StartLoad(f.addr(), 2, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	f.commit("v2", f.blueGreen("v2"))
	v2 := "main@sha1:" + strings.TrimSpace(gitOut(t, f.repo, "rev-parse", "HEAD"))
	targetstest.Eventually(t, 90*time.Second, "v2 through the router", func() bool {
		body, err := f.get("/")
		return err == nil && strings.Contains(body, "hello from v2")
	})
	s.converged(t, v2)
	t.Logf("v2 serves %s after the state directory was removed", time.Since(removed).Round(time.Millisecond))
	bodies := load.Finish(t) // fails the test for any failed request
	n, first := load.Failures()
	t.Logf("requests while the state directory was lost and v2 deployed: %d, failed: %d %s (answers %v)", load.Total(), n, first, bodies)

	after := routerPIDs(t, state)
	if len(after) != 1 {
		t.Errorf("router processes after: %v, want exactly one", after)
	}
	if len(after) == 1 && after[0] != before[0] {
		t.Logf("the router was replaced: %d, then %d", before[0], after[0])
	}
	if _, err := os.Stat(filepath.Join(state, "router", "admin.sock")); err != nil {
		t.Errorf("the router's socket was not made again: %v", err)
	}

	stopServe(t, s)
	if r := f.molt("down", "--yes"); r.code != 0 {
		t.Fatalf("molt down exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	var left []string
	targetstest.Eventually(t, 15*time.Second, "no process of the state directory after molt down", func() bool {
		left = stateProcesses(t, state)
		return len(left) == 0
	})
	if len(left) > 0 {
		t.Errorf("orphans after molt down: %v", left)
	}
}
