package main

// End-to-end tests of the process target reading its instances back from
// the machine (issue 13, defects 5 and 6 and the instance half of 7):
// a provision killed half-way leaks nothing, the rest of a process group
// whose leader died is not left running, and deleting STATE/instances
// loses no instance. Helpers are prefixed "lost".

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// lostProcs returns the live processes whose environment names the state
// directory's instances as their MOLT_TARGET_DIR: every process of every
// instance, recorded or not.
func lostProcs(t *testing.T, state string) []int {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(state, "instances"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("\x00MOLT_TARGET_DIR=" + abs + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && bytes.Contains(append([]byte{0}, env...), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// lostRecord is what these tests read of an instance.json.
type lostRecord struct {
	ID    string         `json:"id"`
	PID   int            `json:"pid"`
	Ports map[string]int `json:"ports"`
}

func lostRecords(f *coreFleet) []lostRecord {
	f.t.Helper()
	var out []lostRecord
	for _, id := range f.instanceIDs() {
		b, err := os.ReadFile(filepath.Join(f.state, "instances", id, "instance.json"))
		if err != nil {
			continue
		}
		var r lostRecord
		if err := json.Unmarshal(b, &r); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func lostFleet(f *coreFleet, replicas int, command string) {
	f.commit("v1", fmt.Sprintf(`services: web: {
	replicas: %d
	process: command: %s
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "200ms", progressDeadline: "60s"}
}
`, replicas, command, f.addr()))
}

// Defect 5: `molt apply` killed right after it started an instance, before
// that instance had a record, leaks nothing: the next apply adopts the
// instance (exactly replicas processes run afterwards), and `molt down`
// after such a crash leaves no process either.
func TestProcessLostProvisionCrash(t *testing.T) {
	f := newCoreFleet(t)
	lostFleet(f, 2, fmt.Sprintf("[%q]", f.hello))
	crashAt := []string{"MOLT_CRASH_AT=provision.after-start"}

	r := f.moltEnv(crashAt, "apply", "--repo", f.repo, "--log-level", "warn")
	if r.code == 0 || !strings.Contains(r.stderr, "molt: crash point provision.after-start reached") {
		t.Fatalf("apply exited %d, want a crash at provision.after-start:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The first provisions run side by side: one or both had started.
	if n := len(lostProcs(t, f.state)); n < 1 || n > 2 {
		t.Fatalf("%d instance processes after the crash, want 1 or 2", n)
	}
	f.mustApply()
	targetstest.Eventually(t, 10*time.Second, "2 instance processes (no leak)", func() bool {
		return len(lostProcs(t, f.state)) == 2
	})
	if got := len(f.running()); got != 2 {
		t.Errorf("%d recorded running instances, want 2", got)
	}
	if body, err := f.get("/"); err != nil || !strings.Contains(body, "hello") {
		t.Errorf("the router answers %q, %v", body, err)
	}

	// Crash again on a new generation's first provision, then down.
	lostFleet(f, 3, fmt.Sprintf("[%q]", f.hello))
	r = f.moltEnv(crashAt, "apply", "--repo", f.repo, "--log-level", "warn")
	if !strings.Contains(r.stderr, "molt: crash point provision.after-start reached") {
		t.Fatalf("apply exited %d, want a crash at provision.after-start:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := f.molt("down", "--yes"); r.code != 0 {
		t.Fatalf("down exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if pids := lostProcs(t, f.state); len(pids) != 0 {
		t.Errorf("processes %v left after molt down", pids)
	}
}

// Defect 6: an instance whose command is `sh -c "hello & wait"` loses its
// leader (sh) three times in turn. Each time the reconcile replaces it and
// retires the rest of its group; after `molt down` no process of the
// fleet remains and every port is free.
func TestProcessLostGroupLeader(t *testing.T) {
	f := newCoreFleet(t)
	lostFleet(f, 3, fmt.Sprintf(`["sh", "-c", %q]`, f.hello+" & wait"))
	f.mustApply()
	first := lostRecords(f)
	if len(first) != 3 {
		t.Fatalf("instances %+v, want 3", first)
	}
	var ports []int
	for _, rec := range first {
		ports = append(ports, rec.Ports["http"])
		sh := coreInst{ID: rec.ID, PID: rec.PID, StartTime: startOf(rec.PID)}
		if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil { // sh alone
			t.Fatal(err)
		}
		targetstest.Eventually(t, 10*time.Second, "sh to exit", func() bool { return !f.alive(sh) })
		f.mustApply()
		ids := f.instanceIDs()
		if slices.Contains(ids, rec.ID) {
			t.Errorf("instance %s, whose leader died, is still there: %v", rec.ID, ids)
		}
		// Each instance is sh plus hello: two processes each, no more (a
		// leaked hello still has its deleted instance directory as cwd).
		targetstest.Eventually(t, 10*time.Second, "6 processes of 3 instances", func() bool {
			return processesUnder(t, filepath.Join(f.state, "instances")) == 6
		})
	}
	for _, rec := range lostRecords(f) {
		ports = append(ports, rec.Ports["http"])
	}
	if r := f.molt("down", "--yes"); r.code != 0 {
		t.Fatalf("down exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if pids := lostProcs(t, f.state); len(pids) != 0 {
		t.Errorf("processes %v left after molt down", pids)
	}
	if n := processesUnder(t, filepath.Join(f.state, "instances")); n != 0 {
		t.Errorf("%d processes of the fleet left after molt down", n)
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d still held after molt down: %v", p, err)
			continue
		}
		ln.Close()
	}
}

// startOf is the start time of pid (0 when it is gone).
func startOf(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(fields[19], 10, 64)
	return n
}

// The instance half of defect 7: deleting STATE/instances between two
// applies loses nothing. The second apply sees the same instances (it
// provisions none), their records are back, and down retires them all.
func TestProcessLostInstancesDir(t *testing.T) {
	f := newCoreFleet(t)
	lostFleet(f, 2, fmt.Sprintf("[%q]", f.hello))
	f.mustApply()
	before := f.instanceIDs()
	if len(before) != 2 {
		t.Fatalf("instances %v, want 2", before)
	}
	if err := os.RemoveAll(filepath.Join(f.state, "instances")); err != nil {
		t.Fatal(err)
	}

	r := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	if r.code != 0 || !strings.Contains(r.stdout, "provisioned 0, retired 0") || !strings.Contains(r.stdout, "converged to ") {
		t.Fatalf("apply after the loss of STATE/instances exited %d, want nothing to do:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := f.instanceIDs(); !slices.Equal(after, before) {
		t.Errorf("instances %v after the loss, want %v", after, before)
	}
	if n := len(lostProcs(t, f.state)); n != 2 {
		t.Errorf("%d instance processes, want 2", n)
	}
	if body, err := f.get("/"); err != nil || !strings.Contains(body, "hello") {
		t.Errorf("the router answers %q, %v", body, err)
	}

	if err := os.RemoveAll(filepath.Join(f.state, "instances")); err != nil {
		t.Fatal(err)
	}
	r = f.molt("down", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "retired 2 instance(s)") {
		t.Fatalf("down exited %d, want 2 retired:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if pids := lostProcs(t, f.state); len(pids) != 0 {
		t.Errorf("processes %v left after molt down", pids)
	}
}
