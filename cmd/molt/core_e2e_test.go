package main

// End-to-end tests of the rollout core through the CLI, for what a script
// cannot do: read /proc/PID/exe, stop a process with SIGSTOP, sample the
// router and the instance directories while an apply runs. Each test runs
// real processes of the hello demo app behind the router on 127.0.0.1 and
// ends with `molt down`. Helpers are prefixed "core" (other files of the
// package are written by others at the same time).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// TestCoreRebuiltExecutable: an executable rebuilt at the same path is a
// new generation. The plan shows the generation change, apply rolls it out
// health-gated with no failed request through the router, and every
// instance then runs the new bytes (its /proc/PID/exe hashes to the new
// file's digest) from the artifact store.
func TestCoreRebuiltExecutable(t *testing.T) {
	f := newCoreFleet(t)
	app := filepath.Join(f.work, "app")
	coreCopy(t, f.hello, app, nil)
	oldDigest := coreSHA256(t, app)
	f.commit("v1", fmt.Sprintf(`services: web: {
	replicas: 3
	process: command: ["./app"]
	env: VERSION: "v1"
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s"}
}
`, f.addr()))
	f.mustApply()
	for _, in := range f.running() {
		if got := coreExeDigest(t, in.PID); got != oldDigest {
			t.Fatalf("instance %s runs sha256 %s, want %s", in.ID, got, oldDigest)
		}
	}
	oldGen := f.running()[0].Labels.SpecHash

	// A different build at the same path (a copy with bytes appended runs
	// the same), replaced atomically as a build tool would.
	coreCopy(t, f.hello, app+".new", []byte("\nrebuilt\n"))
	if err := os.Rename(app+".new", app); err != nil {
		t.Fatal(err)
	}
	newDigest := coreSHA256(t, app)
	if newDigest == oldDigest {
		t.Fatal("the rebuilt file has the old digest")
	}

	plan := f.molt("plan", "--repo", f.repo)
	if plan.code != 2 {
		t.Fatalf("plan exited %d, want 2 (a change):\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	m := regexp.MustCompile(`generation ([0-9a-f]{8}) \([^)]*\) → ([0-9a-f]{8})`).FindStringSubmatch(plan.stdout)
	if m == nil || m[1] == m[2] {
		t.Fatalf("the plan shows no generation change:\n%s", plan.stdout)
	}
	if m[1] != oldGen[:8] {
		t.Errorf("the plan moves from generation %s, the instances are of %s", m[1], oldGen[:8])
	}
	if !strings.Contains(plan.stdout, "+ 1 new instance(s) of "+m[2]) {
		t.Errorf("the plan's first step is not one new instance of %s (maxSurge 1):\n%s", m[2], plan.stdout)
	}

	load := targetstest.StartLoad(f.addr(), 3, 5*time.Millisecond)
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	bodies := load.Finish(t)
	if res.code != 0 {
		t.Fatalf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "provisioned 3, retired 3") || strings.Contains(res.stdout, "rolled back") {
		t.Errorf("apply did not roll the new generation out:\n%s", res.stdout)
	}
	if bodies["hello from v1"] == 0 || len(bodies) != 1 {
		t.Errorf("answers through the router: %v, want only \"hello from v1\"", bodies)
	}

	insts := f.running()
	if len(insts) != 3 {
		t.Fatalf("%d running instances, want 3", len(insts))
	}
	for _, in := range insts {
		if in.Labels.SpecHash[:8] != m[2] {
			t.Errorf("instance %s is of generation %s, want %s", in.ID, in.Labels.SpecHash[:8], m[2])
		}
		if got := coreExeDigest(t, in.PID); got != newDigest {
			t.Errorf("instance %s (pid %d) runs sha256 %s, want the rebuilt file's %s", in.ID, in.PID, got, newDigest)
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", in.PID))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(f.state, "artifacts", "sha256", newDigest); exe != want {
			t.Errorf("instance %s runs %s, want the store's copy %s", in.ID, exe, want)
		}
	}
	// The old artifact stays in the store a while after its last instance
	// went: a rollback to it soon after runs the very same program.
	if _, err := os.Stat(filepath.Join(f.state, "artifacts", "sha256", oldDigest)); err != nil {
		t.Errorf("the old generation's artifact is gone already (%v)", err)
	}
	if p := f.molt("plan", "--repo", f.repo); p.code != 0 || !strings.Contains(p.stdout, "no change") {
		t.Errorf("after the rollout, plan exited %d:\n%s", p.code, p.stdout)
	}
}

// TestCoreHungInstanceReplacedFirst: an instance that hangs (SIGSTOP: its
// port still accepts connections, nothing answers) turns unhealthy, leaves
// traffic and is replaced before it is retired, so the outage through the
// router lasts about as long as it takes to see it unhealthy and start a
// new one, not that plus the stop grace of the hung one.
func TestCoreHungInstanceReplacedFirst(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", fmt.Sprintf(`services: web: {
	replicas: 1
	process: command: [%q]
	env: VERSION: "v1"
	ports: http: 0
	expose: {listen: %q, port: "http"}
	stopGrace: "3s"
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	rollout: {strategy: "rolling", progressDeadline: "60s"}
}
`, f.hello, f.addr()))
	f.mustApply()
	insts := f.running()
	if len(insts) != 1 {
		t.Fatalf("%d running instances, want 1", len(insts))
	}
	hung := insts[0]
	if err := syscall.Kill(hung.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Before the down of newCoreFleet (cleanups run last-in first-out):
	// a stopped process that survived gets going again and can be retired.
	t.Cleanup(func() {
		if f.alive(hung) {
			syscall.Kill(hung.PID, syscall.SIGCONT)
		}
	})

	// Sample the instance directories and the router while apply runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var (
		replacedWhileHung bool      // another instance existed while the hung one did
		goneFirst         bool      // the hung one went before any other appeared
		firstOK           time.Time // first answer through the router after the stop
		okBody            string
	)
	wg.Go(func() {
		for range 200000 { // bounded
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ids := f.instanceIDs()
			hasHung, other := false, false
			for _, id := range ids {
				if id == hung.ID {
					hasHung = true
				} else {
					other = true
				}
			}
			mu.Lock()
			if hasHung && other {
				replacedWhileHung = true
			}
			if !hasHung && !replacedWhileHung && !other {
				goneFirst = true
			}
			mu.Unlock()
		}
	})
	wg.Go(func() {
		client := &http.Client{Timeout: 500 * time.Millisecond}
		for range 200000 { // bounded
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := client.Get("http://" + f.addr() + "/")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				firstOK, okBody = time.Now(), string(b)
				mu.Unlock()
				return
			}
		}
	})

	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	applied := time.Since(stopped)
	if res.code == 0 {
		// The first answer may come only after apply is done: give it a moment.
		targetstest.Eventually(t, 10*time.Second, "an answer through the router", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return !firstOK.IsZero()
		})
	}
	close(stop)
	wg.Wait()
	if res.code != 0 {
		t.Fatalf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
	outage := firstOK.Sub(stopped)
	// The outage is a figure, logged, not asserted (timings flake here);
	// the order of replacement and retire is what this test checks.
	t.Logf("SIGSTOP to the first answer through the router: %s (apply took %s)", outage.Round(time.Millisecond), applied.Round(time.Millisecond))
	if !strings.Contains(okBody, "hello from v1") {
		t.Errorf("the router answered %q", okBody)
	}
	if goneFirst || !replacedWhileHung {
		t.Errorf("the hung instance was retired before its replacement existed (replaced while hung: %v)", replacedWhileHung)
	}
	if f.alive(hung) {
		t.Errorf("the hung instance %s (pid %d) still runs", hung.ID, hung.PID)
	}
	insts = f.running()
	if len(insts) != 1 || insts[0].ID == hung.ID {
		t.Fatalf("running instances after the apply: %v, want one new one", insts)
	}
	if insts[0].Labels.SpecHash != hung.Labels.SpecHash {
		t.Errorf("the replacement is of generation %s, the hung one was of %s", insts[0].Labels.SpecHash, hung.Labels.SpecHash)
	}
	body, err := f.get("/")
	if err != nil || !strings.Contains(body, "hello from v1") {
		t.Errorf("after the apply the router answers %q, %v", body, err)
	}
	// The hello app tells which instance answers.
	if id, err := f.get("/env?name=MOLT_INSTANCE"); err != nil || id != insts[0].ID {
		t.Errorf("the router's answer comes from %q (%v), want the replacement %s", id, err, insts[0].ID)
	}
}

// TestCoreDeferredSelfHeal: while a rollout waits for a deploy window, a
// dead instance of the serving generation is still replaced, by that
// generation; plan shows it as apply does it, and apply exits 3.
func TestCoreDeferredSelfHeal(t *testing.T) {
	f := newCoreFleet(t)
	fleet := func(version, extra string) string {
		return fmt.Sprintf(`%s
services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	rollout: {strategy: "rolling", progressDeadline: "60s"}
}
`, extra, f.hello, version, f.addr())
	}
	f.commit("v1", fleet("v1", ""))
	f.mustApply()
	v1 := f.running()
	if len(v1) != 2 {
		t.Fatalf("%d running instances, want 2", len(v1))
	}
	gen := v1[0].Labels.SpecHash

	f.commit("v2 inside a freeze", fleet("v2", `deployWindows: [{kind: "deny", schedule: "* * * * *", duration: "1h"}]`))
	f.kill(v1[0])

	plan := f.molt("plan", "--repo", f.repo)
	if plan.code != 2 {
		t.Errorf("plan exited %d, want 2", plan.code)
	}
	for _, want := range []string{
		"outside the deploy window: the rollout waits until ",
		"- " + v1[0].ID + " (",
		"+ 1 new instance(s) of " + gen[:8] + " (",
	} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("the plan does not say %q:\n%s", want, plan.stdout)
		}
	}

	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	if res.code != 3 {
		t.Errorf("apply exited %d, want 3 (waits for the window):\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "provisioned 1, retired 1") || !strings.Contains(res.stdout, "outside the deploy window") {
		t.Errorf("apply output:\n%s", res.stdout)
	}
	f.wantRunning(gen, 2)
	if body, err := f.get("/"); err != nil || !strings.Contains(body, "hello from v1") {
		t.Errorf("the router answers %q, %v", body, err)
	}
	// The plan agrees now too: nothing but the wait.
	plan = f.molt("plan", "--repo", f.repo)
	if !strings.Contains(plan.stdout, "outside the deploy window") || strings.Contains(plan.stdout, "new instance(s) of") {
		t.Errorf("the plan after the apply:\n%s", plan.stdout)
	}
}

// TestCoreDeferredAllUnhealthy: while a rollout waits for a deploy window,
// every instance of the serving generation hangs (SIGSTOP: the hello app
// has no switch to fail its health check at run time). The plan shows them
// replaced by the serving generation, and apply does exactly that and
// exits 3: the service serves again, the hung instances retired.
func TestCoreDeferredAllUnhealthy(t *testing.T) {
	f := newCoreFleet(t)
	fleet := func(version, extra string) string {
		return fmt.Sprintf(`%s
services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	stopGrace: "1s"
	health: {interval: "100ms", timeout: "300ms", grace: "1s", unhealthyThreshold: 1}
	rollout: {strategy: "rolling", progressDeadline: "60s"}
}
`, extra, f.hello, version, f.addr())
	}
	f.commit("v1", fleet("v1", ""))
	f.mustApply()
	v1 := f.running()
	if len(v1) != 2 {
		t.Fatalf("%d running instances, want 2", len(v1))
	}
	gen := v1[0].Labels.SpecHash

	f.commit("v2 inside a freeze", fleet("v2", `deployWindows: [{kind: "deny", schedule: "* * * * *", duration: "1h"}]`))
	f.hang(v1) // failed checks count once the start grace (1s) has passed

	plan := f.molt("plan", "--repo", f.repo)
	if plan.code != 2 {
		t.Errorf("plan exited %d, want 2", plan.code)
	}
	for _, want := range []string{
		"outside the deploy window: the rollout waits until ",
		// maxSurge 1: one replacement first, beside the two hung ones.
		"+ 1 new instance(s) of " + gen[:8] + " (",
	} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("the plan does not say %q:\n%s", want, plan.stdout)
		}
	}

	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	if res.code != 3 {
		t.Errorf("apply exited %d, want 3 (waits for the window):\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "provisioned 2, retired 2") {
		t.Errorf("apply output:\n%s", res.stdout)
	}
	for _, in := range v1 {
		if f.alive(in) {
			t.Errorf("hung instance %s still runs", in.ID)
		}
	}
	f.wantRunning(gen, 2)
	if body, err := f.get("/"); err != nil || !strings.Contains(body, "hello from v1") {
		t.Errorf("the router answers %q, %v", body, err)
	}
}

// coreFleet is one test's fleet: a Git repository in a work directory
// (where molt runs, so relative executables are found there), a short
// state directory, and the router's port.
type coreFleet struct {
	t     *testing.T
	hello string
	work  string
	repo  string
	state string
	port  string
}

func newCoreFleet(t *testing.T) *coreFleet {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	f := &coreFleet{t: t, hello: targetstest.Hello(t), work: t.TempDir()}
	state, err := os.MkdirTemp("", "mc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) }) // after the down below
	f.state = state
	f.repo = filepath.Join(f.work, "repo")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	f.port = port
	coreGit(t, "", "init", "-q", "-b", "main", f.repo)
	t.Cleanup(func() {
		if r := f.molt("down", "--yes"); r.code != 0 {
			t.Errorf("molt down exited %d: %s%s", r.code, r.stdout, r.stderr)
		}
	})
	return f
}

func (f *coreFleet) addr() string { return "127.0.0.1:" + f.port }

// commit writes fleet.cue and commits it.
func (f *coreFleet) commit(msg, src string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.repo, "fleet.cue"), []byte(src), 0o644); err != nil {
		f.t.Fatal(err)
	}
	coreGit(f.t, f.repo, "add", "-A")
	coreGit(f.t, f.repo, "commit", "-qm", msg)
}

type coreResult struct {
	stdout, stderr string
	code           int
}

// molt runs the CLI (on PATH: testscript.Main put it there) in the work
// directory against the state directory.
func (f *coreFleet) molt(args ...string) coreResult {
	f.t.Helper()
	return f.moltEnv(nil, args...)
}

// moltEnv is molt with extra environment.
func (f *coreFleet) moltEnv(env []string, args ...string) coreResult {
	f.t.Helper()
	var out, errb bytes.Buffer
	c := exec.Command("molt", append(args, "--state-dir", f.state)...)
	c.Dir = f.work
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		f.t.Fatalf("molt %v: %v", args, err)
	}
	return coreResult{out.String(), errb.String(), code}
}

func (f *coreFleet) mustApply() {
	f.t.Helper()
	r := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	if r.code != 0 || !strings.Contains(r.stdout, "converged to ") {
		f.t.Fatalf("apply exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// get fetches path through the router.
func (f *coreFleet) get(path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + f.addr() + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// coreInst is what a test reads of an instance.json.
type coreInst struct {
	ID     string `json:"id"`
	Labels struct {
		Service   string    `json:"service"`
		SpecHash  string    `json:"specHash"`
		Revision  string    `json:"revision"`
		CreatedAt time.Time `json:"createdAt"`
	} `json:"labels"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

func (c coreInst) String() string { return fmt.Sprintf("%s(pid %d)", c.ID, c.PID) }

// instanceIDs lists the instance directories (not hidden ones: staged or
// being removed).
func (f *coreFleet) instanceIDs() []string {
	entries, _ := os.ReadDir(filepath.Join(f.state, "instances"))
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// running returns the recorded instances whose process runs.
func (f *coreFleet) running() []coreInst {
	f.t.Helper()
	var out []coreInst
	for _, id := range f.instanceIDs() {
		b, err := os.ReadFile(filepath.Join(f.state, "instances", id, "instance.json"))
		if err != nil {
			continue // retired meanwhile
		}
		var in coreInst
		if err := json.Unmarshal(b, &in); err != nil {
			f.t.Fatalf("instance %s: %v", id, err)
		}
		if f.alive(in) {
			out = append(out, in)
		}
	}
	return out
}

// alive reports whether the instance's recorded process exists (same
// start time) and has not exited.
func (f *coreFleet) alive(in coreInst) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", in.PID))
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return false
	}
	start, _ := strconv.ParseUint(fields[19], 10, 64)
	return start == in.StartTime && fields[0] != "Z" && fields[0] != "X"
}

// hang stops the instances' processes with SIGSTOP once their start grace
// (1s in these fleets) has passed, so that their failed checks count; they
// get SIGCONT at the end of the test if they are still there.
func (f *coreFleet) hang(insts []coreInst) {
	f.t.Helper()
	targetstest.Eventually(f.t, 5*time.Second, "the start grace to pass", func() bool {
		for _, in := range insts {
			if time.Since(in.Labels.CreatedAt) < 1200*time.Millisecond {
				return false
			}
		}
		return true
	})
	for _, in := range insts {
		if err := syscall.Kill(in.PID, syscall.SIGSTOP); err != nil {
			f.t.Fatal(err)
		}
	}
	f.t.Cleanup(func() {
		for _, in := range insts {
			if f.alive(in) {
				syscall.Kill(in.PID, syscall.SIGCONT)
			}
		}
	})
}

// kill ends the instance's process with SIGKILL and waits until it has.
func (f *coreFleet) kill(in coreInst) {
	f.t.Helper()
	if err := syscall.Kill(in.PID, syscall.SIGKILL); err != nil {
		f.t.Fatal(err)
	}
	targetstest.Eventually(f.t, 10*time.Second, "the killed process to exit", func() bool { return !f.alive(in) })
}

// wantRunning checks that exactly n instances run, all of generation gen.
func (f *coreFleet) wantRunning(gen string, n int) {
	f.t.Helper()
	insts := f.running()
	ok := len(insts) == n
	for _, in := range insts {
		ok = ok && in.Labels.SpecHash == gen
	}
	if !ok {
		var desc []string
		for _, in := range insts {
			desc = append(desc, in.ID+" of "+in.Labels.Revision)
		}
		f.t.Errorf("running instances %v, want %d of generation %s", desc, n, gen[:8])
	}
}

// coreCopy copies the executable src to dst with extra bytes appended.
func coreCopy(t *testing.T, src, dst string, extra []byte) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, append(b, extra...), 0o755); err != nil {
		t.Fatal(err)
	}
}

func coreSHA256(t *testing.T, path string) string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// coreExeDigest hashes the executable a process runs (/proc/PID/exe).
func coreExeDigest(t *testing.T, pid int) string {
	t.Helper()
	return coreSHA256(t, fmt.Sprintf("/proc/%d/exe", pid))
}

func coreGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// With every instance hung and the default unhealthyThreshold (3), `molt
// plan` (which sees the fleet once) reaches the verdicts apply acts on: it
// shows the replacement that apply then makes, not "waiting".
func TestCorePlanSeesWhatApplySees(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: "v1"
	ports: http: 0
	expose: {listen: %q, port: "http"}
	stopGrace: "1s"
	health: {interval: "100ms", timeout: "300ms", grace: "1s"}
}
`, f.hello, f.addr()))
	f.mustApply()
	v1 := f.running()
	if len(v1) != 2 {
		t.Fatalf("%d running instances, want 2", len(v1))
	}
	gen := v1[0].Labels.SpecHash
	f.hang(v1)
	plan := f.molt("plan", "--repo", f.repo)
	if plan.code != 2 {
		t.Errorf("plan exited %d, want 2:\n%s", plan.code, plan.stdout)
	}
	if want := "+ 1 new instance(s) of " + gen[:8] + " (replacement)"; !strings.Contains(plan.stdout, want) {
		t.Errorf("the plan does not say %q:\n%s", want, plan.stdout)
	}
	if strings.Contains(plan.stdout, "waiting:") {
		t.Errorf("the plan waits where apply acts:\n%s", plan.stdout)
	}
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	if res.code != 0 || !strings.Contains(res.stdout, "provisioned 2, retired 2") {
		t.Errorf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
	f.wantRunning(gen, 2)
	if body, err := f.get("/"); err != nil || !strings.Contains(body, "hello from v1") {
		t.Errorf("the router answers %q, %v", body, err)
	}
}
