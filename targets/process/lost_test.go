//go:build linux

package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/crash"
)

// crashChildDir, set in the environment of the test binary, makes it a
// child that provisions one hello instance on a Target over that Dir and
// dies at the crash point MOLT_CRASH_AT names (see crashProvision).
const (
	crashChildDir   = "MOLT_TEST_CRASH_DIR"
	crashChildHello = "MOLT_TEST_CRASH_HELLO"
)

func crashChild(dir string) int {
	tgt, err := New(Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	svc := &schema.Service{
		Name: "hello", Replicas: 1,
		Process:   &schema.Process{Command: []string{os.Getenv(crashChildHello)}},
		Ports:     map[string]int{"http": 0},
		StopGrace: 5 * time.Second,
	}
	inst, err := tgt.Provision(context.Background(), targets.Spec{Labels: labels("hello"), Service: svc})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(inst.ID)
	return 0
}

// crashProvision runs a provision on state/instances in a child process
// that dies (SIGKILL) at crash point point, and returns its stderr.
func crashProvision(t *testing.T, state, point string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashChildDir+"="+filepath.Join(state, "instances"),
		crashChildHello+"="+helloBin,
		crash.Env+"="+point)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the provision did not die at %s: %v\n%s", point, err, stderr.String())
	}
	if want := "molt: crash point " + point + " reached"; !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr %q does not say %q", stderr.String(), want)
	}
	return stderr.String()
}

// helloProcs returns the live processes that carry Dir of tgt in their
// environment (the instances and everything they started).
func helloProcs(t *testing.T, tgt *Target) []int {
	t.Helper()
	snap, err := scanProcs()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, ms := range tgt.byInstance(snap, nil) {
		for _, m := range ms {
			pids = append(pids, m.pid)
		}
	}
	return pids
}

// retireAll retires every instance tgt lists when the test ends.
func retireAll(t *testing.T, tgt *Target) {
	t.Cleanup(func() {
		insts, _ := tgt.List(context.Background())
		for _, in := range insts {
			tgt.Retire(context.Background(), in.ID)
		}
	})
}

func portFree(endpoint string) bool {
	ln, err := net.Listen("tcp", endpoint)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Every instance carries its labels, target directory, host, ports, stop
// grace and artifact in its environment.
func TestLabelsInEnvironment(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	svc := helloService(map[string]string{"MOLT_TARGET_DIR": "/spoofed", "MOLT_SPEC_HASH": "spoofed"})
	svc.Ports = map[string]int{"http": 0, "admin": 0}
	inst := provision(t, tgt, svc)
	rec := mustRecord(t, tgt, inst.ID)
	ep := inst.Endpoints["http"]
	waitGet(t, ep, "/healthz")
	want := map[string]string{
		"MOLT_INSTANCE":   inst.ID,
		"MOLT_TARGET_DIR": tgt.dir,
		"MOLT_SPEC_HASH":  "0123456789abcdef",
		"MOLT_CREATED_AT": rec.Labels.CreatedAt.UTC().Format(time.RFC3339Nano),
		"MOLT_HOST":       "127.0.0.1",
		"MOLT_PORTS":      fmt.Sprintf("admin=%d,http=%d", rec.Ports["admin"], rec.Ports["http"]),
		"MOLT_STOP_GRACE": "5s",
		"MOLT_ARTIFACT":   rec.Artifact,
	}
	for name, v := range want {
		if got, _ := httpGet(ep, "/env?name="+name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if !filepath.IsAbs(tgt.dir) || rec.Artifact == "" {
		t.Errorf("dir %q, artifact %q", tgt.dir, rec.Artifact)
	}
}

// Deleting Dir while instances run loses nothing: a new Target lists
// them all, running, with their labels and endpoints, writes their
// records back, and retires them.
func TestListRebuildsLostDir(t *testing.T) {
	state := t.TempDir()
	tgt := newTarget(t, state)
	svc := helloService(nil)
	svc.Ports = map[string]int{"http": 0, "admin": 0}
	var before []targets.Instance
	for range 3 {
		inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, inst)
	}
	recs := map[string]*record{}
	for _, in := range before {
		recs[in.ID] = mustRecord(t, tgt, in.ID)
		waitGet(t, in.Endpoints["http"], "/healthz")
	}
	want, err := tgt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(tgt.dir); err != nil {
		t.Fatal(err)
	}

	fresh := newTarget(t, state) // a restarted molt
	retireAll(t, fresh)
	got, err := fresh.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("List after the loss of Dir (-before +after):\n%s", diff)
	}
	for _, in := range got {
		rec := mustRecord(t, fresh, in.ID) // written back
		if old := recs[in.ID]; rec.PID != old.PID || rec.StartTime != old.StartTime || rec.Artifact != old.Artifact ||
			time.Duration(rec.StopGrace) != 5*time.Second {
			t.Errorf("record written back %+v, was %+v", rec, old)
		}
	}
	for _, in := range got {
		if err := fresh.Retire(t.Context(), in.ID); err != nil {
			t.Fatalf("Retire: %v", err)
		}
		if alive(recs[in.ID].PID) {
			t.Errorf("instance %s still runs after Retire", in.ID)
		}
	}
	if n := len(helloProcs(t, fresh)); n != 0 {
		t.Errorf("%d processes of the instances left", n)
	}

	// Records gone again, and Retire without a List first: found in /proc.
	inst, err := fresh.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	pid := mustRecord(t, fresh, inst.ID).PID
	os.RemoveAll(fresh.dir)
	if err := newTarget(t, state).Retire(t.Context(), inst.ID); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("instance %s, known only from /proc, still runs after Retire", inst.ID)
	}
}

// A record that cannot be written back leaves the instance listed, with a
// single warning.
func TestListCacheFailureWarnsOnce(t *testing.T) {
	state := t.TempDir()
	tgt := newTarget(t, state)
	inst := provision(t, tgt, helloService(nil))
	os.RemoveAll(tgt.dir)
	if err := os.MkdirAll(tgt.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	// A file where the instance's directory would go: MkdirAll fails.
	if err := os.WriteFile(filepath.Join(tgt.dir, inst.ID), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	fresh, err := New(Options{Dir: tgt.dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for range 2 {
		got, err := fresh.List(t.Context())
		if err != nil || len(got) != 1 || got[0].ID != inst.ID || got[0].State != targets.Running {
			t.Fatalf("List = %+v, %v; want %s running", got, err, inst.ID)
		}
	}
	if n := strings.Count(logs.String(), "cannot write back"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	os.Remove(filepath.Join(tgt.dir, inst.ID))
}

// A provision killed at each crash point leaves nothing the next Target
// does not finish: a started process is adopted (record written, directory
// moved into place with its log), a stage without one is removed.
func TestSweepAfterCrash(t *testing.T) {
	tests := []struct {
		point string
		want  int // instances listed afterwards
	}{
		{"provision.before-start", 0},
		{"provision.after-start", 1},
		{"provision.after-record", 1},
	}
	for _, tc := range tests {
		t.Run(tc.point, func(t *testing.T) {
			state := t.TempDir()
			crashProvision(t, state, tc.point)
			tgt := newTarget(t, state)
			retireAll(t, tgt)
			got, err := tgt.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("List = %+v, want %d instance(s)", got, tc.want)
			}
			entries, _ := os.ReadDir(tgt.dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), stagePrefix) {
					t.Errorf("staged directory %s left after List", e.Name())
				}
			}
			if tc.want == 0 {
				if n := len(helloProcs(t, tgt)); n != 0 {
					t.Errorf("%d processes left", n)
				}
				return
			}
			in := got[0]
			if in.State != targets.Running || in.Labels.Service != "hello" {
				t.Errorf("instance %+v, want hello running", in)
			}
			waitGet(t, in.Endpoints["http"], "/healthz")
			rec := mustRecord(t, tgt, in.ID)
			eventually(t, "the adopted instance's log in place", func() bool {
				return logHas(t, tgt.LogPath(in.ID), "listening")
			})
			if err := tgt.Retire(t.Context(), in.ID); err != nil {
				t.Fatal(err)
			}
			if alive(rec.PID) || len(helloProcs(t, tgt)) != 0 {
				t.Errorf("processes left after Retire")
			}
		})
	}
}

// A staged instance whose leader died while the rest of its group lives
// is no instance: the sweep kills the group and removes the stage.
func TestSweepKillsLeaderlessStage(t *testing.T) {
	state := t.TempDir()
	crashProvision(t, state, "provision.after-start")
	tgt := newTarget(t, state)
	retireAll(t, tgt)
	// Make it leaderless: give the hello process a sibling child in the
	// same group, then kill the leader. Here the leader is hello itself,
	// so start a member by hand: a process in its session carrying its id.
	snap, err := scanProcs()
	if err != nil {
		t.Fatal(err)
	}
	procs := tgt.byInstance(snap, nil)
	if len(procs) != 1 {
		t.Fatalf("processes by instance %v, want one instance", procs)
	}
	var leader member
	for _, ms := range procs {
		leader = ms[0]
	}
	var vars []string
	for k, v := range leader.vars {
		vars = append(vars, k+"="+v)
	}
	member := startMember(t, vars, false)
	syscall.Kill(leader.pid, syscall.SIGKILL)
	eventually(t, "the leader to exit", func() bool { return !alive(leader.pid) })

	got, err := tgt.List(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("List = %+v, %v; want nothing", got, err)
	}
	eventually(t, "the member to be killed", func() bool {
		st, err := readStat(member)
		return err != nil || st.exited()
	})
}

// startMember starts "sleep 60" with vars added to its environment, as a
// process an instance started would be: in a session of its own (made by
// a shell that does not carry vars), not leading it. The shell waits for
// it when leaderLives, and exits at once otherwise, leaving the session
// without its leader. It returns the pid of sleep, which is killed at the
// end of the test. (A process of the test's own session would not do: the
// session of a test run inside a container, by docker exec, is outside the
// pid namespace, 0 in /proc, and no instance's process is ever in one.)
func startMember(t *testing.T, vars []string, leaderLives bool) int {
	t.Helper()
	script := `env "$@" sleep 60 >/dev/null 2>&1 & echo $!`
	if leaderLives {
		script += "; wait"
	}
	sh := exec.Command("sh", append([]string{"-c", script, "sh"}, vars...)...)
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		sh.Process.Kill()
		sh.Wait()
		t.Fatalf("start a member: read its pid %q: %v %v", line, err, perr)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		sh.Process.Kill()
		sh.Wait()
	})
	if !leaderLives {
		sh.Wait()
	}
	// $! is the pid of a copy of the shell, which runs env, which runs
	// sleep: only then does the environment hold vars.
	eventually(t, "the member to run sleep", func() bool {
		argv := readArgv(pid)
		return len(argv) > 0 && argv[0] == "sleep"
	})
	return pid
}

// When an instance's leader dies, the rest of its process group is not
// left behind: the instance is listed dead, and Retire kills the group,
// whether its record is there or not.
func TestRetireGroupAfterLeaderDied(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(fmt.Sprintf("record lost %v", lost), func(t *testing.T) {
			state := t.TempDir()
			tgt := newTarget(t, state)
			svc := &schema.Service{
				Name:      "hello",
				Process:   &schema.Process{Command: []string{"sh", "-c", strconv.Quote(helloBin) + " & wait"}},
				Ports:     map[string]int{"http": 0},
				StopGrace: time.Second,
			}
			inst := provision(t, tgt, svc)
			ep := inst.Endpoints["http"]
			waitGet(t, ep, "/healthz")
			rec := mustRecord(t, tgt, inst.ID)
			if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil { // sh alone
				t.Fatal(err)
			}
			eventually(t, "sh to exit", func() bool { return !alive(rec.PID) })
			if _, ok := httpGet(ep, "/healthz"); !ok {
				t.Fatal("hello died with its leader: nothing to test")
			}
			if lost {
				os.RemoveAll(tgt.dir)
				tgt = newTarget(t, state)
			}
			got, err := tgt.List(t.Context())
			if err != nil || len(got) != 1 || got[0].ID != inst.ID || got[0].State != targets.Dead ||
				!strings.Contains(got[0].Detail, "of its group still run") {
				t.Fatalf("List = %+v, %v; want %s dead, its group still running", got, err, inst.ID)
			}
			if lost && (got[0].Labels.Service != "hello" || got[0].Endpoints["http"] != ep) {
				t.Errorf("labels %+v, endpoints %v, want hello at %s", got[0].Labels, got[0].Endpoints, ep)
			}
			if err := tgt.Retire(t.Context(), inst.ID); err != nil {
				t.Fatal(err)
			}
			if n := len(helloProcs(t, tgt)); n != 0 {
				t.Errorf("%d processes of the group left after Retire", n)
			}
			eventually(t, "the port to be free", func() bool { return portFree(ep) })
			if got, _ := tgt.List(t.Context()); len(got) != 0 {
				t.Errorf("List after Retire = %+v", got)
			}
		})
	}
}

// Processes that are not this Target's instances are never listed nor
// signalled: one carrying another Dir, one that is not a session leader,
// and an instance id reused by a process of another state directory.
func TestForeignProcessesIgnored(t *testing.T) {
	state := t.TempDir()
	tgt := newTarget(t, state)
	inst := provision(t, tgt, helloService(nil))
	rec := mustRecord(t, tgt, inst.ID)
	vars := func(dir string) []string {
		return append(os.Environ(), "MOLT_INSTANCE="+inst.ID, "MOLT_TARGET_DIR="+dir,
			"MOLT_FLEET=test", "MOLT_SERVICE=hello", "MOLT_SPEC_HASH=0123456789abcdef",
			"MOLT_CREATED_AT=2024-01-01T00:00:00Z", "MOLT_HOST=127.0.0.1", "MOLT_STOP_GRACE=1s")
	}
	start := func(env []string) *exec.Cmd {
		c := exec.Command("sleep", "60")
		c.Env = env
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	other := start(vars(filepath.Join(t.TempDir(), "instances"))) // another state directory
	otherID := start(append(vars(filepath.Join(t.TempDir(), "instances")), "MOLT_INSTANCE=hello-0000-000000"))
	// in a session of its own whose leader lives, not leading it
	child := startMember(t, vars(tgt.dir)[len(os.Environ()):], true)

	os.RemoveAll(tgt.dir) // so that /proc is all List has
	got, err := tgt.List(t.Context())
	if err != nil || len(got) != 1 || got[0].ID != inst.ID || got[0].Detail != fmt.Sprintf("pid %d", rec.PID) {
		t.Fatalf("List = %+v, %v; want only %s (pid %d)", got, err, inst.ID, rec.PID)
	}
	if err := tgt.Retire(t.Context(), "hello-0000-000000"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{other, otherID} {
		if !alive(c.Process.Pid) {
			t.Errorf("process %d of another state directory was signalled", c.Process.Pid)
		}
	}
	// Retiring the instance ends it and the process that carries its id
	// in this Dir (a child of it, as far as the environment tells), and
	// nothing of the other state directory.
	if err := tgt.Retire(t.Context(), inst.ID); err != nil {
		t.Fatal(err)
	}
	if alive(rec.PID) {
		t.Errorf("the instance still runs")
	}
	if !alive(other.Process.Pid) {
		t.Errorf("the process of another state directory with the same id was signalled")
	}
	eventually(t, "the process carrying the instance's id to end", func() bool {
		st, err := readStat(child)
		return err != nil || st.exited()
	})
}
