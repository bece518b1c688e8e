package main

// End-to-end tests of progressive delivery through the CLI: canary
// analysis (rollout.canary) and post-rollout verification
// (rollout.verifyFor), with real processes of the hello demo app behind
// the router on 127.0.0.1 and load through it. The load here records every
// answer with its time, status and the generation that gave it (the
// router's X-Molt-Generation header), because the tests measure what share
// of the traffic a canary got and which generation failed which request.
// Helpers are prefixed "prog" (other files of the package are written by
// others at the same time); the fleet itself is core_e2e_test.go's.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/targetstest"
)

// progFleetName names the fleets of this file (the router's counts and
// routes are read by fleet).
const progFleetName = "prog"

// progRolling is v1's rollout in the canary tests: a plain rolling one.
const progRolling = `{strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s"}`

// progCanary is a canary rollout with canary fields added (count, weight,
// duration...).
func progCanary(canary string) string {
	return `{strategy: "canary", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s", canary: {` + canary + `}}`
}

// progSource is a fleet of one service, web, of 3 replicas of the hello
// app answering "hello from VERSION", with env added to its environment
// (`, ERROR_RATE: "0.5"`) and the given rollout.
func progSource(f *coreFleet, version, env, rollout string) string {
	return fmt.Sprintf(`name: %q
services: web: {
	replicas: 3
	process: command: [%q]
	env: {VERSION: %q%s}
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	stopGrace: "2s"
	rollout: %s
}
`, progFleetName, f.hello, version, env, f.addr(), rollout)
}

// TestProgressiveBadCanaryRollsBack: a canary that answers half of its
// requests with 500 gets its weight (20%) of the requests through the
// router for canary.duration, is judged worse than the old generation by
// its error rate, and is rolled back: apply exits 1, the three v1
// instances of before keep serving (they never failed a request), and no
// request failed at the connection level.
func TestProgressiveBadCanaryRollsBack(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", progSource(f, "v1", "", progRolling))
	f.mustApply()
	v1 := f.running()
	if len(v1) != 3 {
		t.Fatalf("%d running instances, want 3", len(v1))
	}
	gen1 := v1[0].Labels.SpecHash

	f.commit("v2, a bad canary", progSource(f, "v2", `, ERROR_RATE: "0.5"`,
		progCanary(`count: 1, weight: 20, duration: "4s", minRequests: 20`)))
	load := progStartLoad(f.addr(), 4, 10*time.Millisecond)
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	answers := load.finish(t)
	t.Logf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	progWant(t, res, 1, "rolled back", "judged web: Rollback (ErrorRate): ", "rolled back web: canary: ")

	// Which requests failed, and whose.
	w := progCanaryWindow(t, answers, gen1)
	tl := progCount(w, gen1)
	t.Logf("canary window %s: %d requests, v1 %d, v2 ok %d, 500 %d (of v2: %d); v2 share by body %.1f%%, by generation %.1f%%",
		progSpan(w), tl.total, tl.v1, tl.v2, tl.s500, tl.s500Canary, 100*tl.bodyShare(), 100*tl.genShare())
	if d := tl.bodyShare() - 0.20; d < -0.07 || d > 0.07 {
		t.Errorf("the canary answered %.1f%% of the requests of its window, want 20%% ± 7", 100*tl.bodyShare())
	}
	all := progCount(answers, gen1)
	t.Logf("whole load: %d requests, %d failed with 500 (all the canary's: %v), %d otherwise", all.total, all.s500, all.s500 == all.s500Canary, all.other)
	if all.other > 0 {
		t.Errorf("%d request(s) failed otherwise than with the canary's 500 (connection errors, proxy errors, a failing v1), first: %s", all.other, all.firstOther)
	}
	if all.s500 != all.s500Canary {
		t.Errorf("%d of the %d answers 500 came from another generation than the canary's", all.s500-all.s500Canary, all.s500)
	}
	if all.s500 == 0 {
		t.Error("the load saw no 500: the canary got no traffic")
	}

	// v1, the same three instances, serves alone.
	f.wantRunning(gen1, 3)
	if got := progIDs(f.running()); !slices.Equal(got, progIDs(v1)) {
		t.Errorf("instances after the rollback %v, want v1's %v untouched", got, progIDs(v1))
	}
	progOnly(t, f, "hello from v1")
}

// TestProgressiveGoodCanaryPromotes: a healthy canary is promoted and the
// rollout goes on as rolling: three v2 instances at the end (the canary one
// of them), no failed request under load.
func TestProgressiveGoodCanaryPromotes(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", progSource(f, "v1", "", progRolling))
	f.mustApply()
	gen1 := f.running()[0].Labels.SpecHash

	f.commit("v2, a good canary", progSource(f, "v2", "",
		progCanary(`count: 1, weight: 20, duration: "4s", minRequests: 20, then: "rolling"`)))
	load := progStartLoad(f.addr(), 4, 10*time.Millisecond)
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	answers := load.finish(t)
	t.Logf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	if res.code != 0 || !strings.Contains(res.stdout, "converged to ") {
		t.Errorf("apply exited %d, want 0 (converged)", res.code)
	}
	if !strings.Contains(res.stdout, "judged web: Promote (Healthy): ") {
		t.Error("apply does not say the canary was promoted (judged web: Promote (Healthy))")
	}
	all := progCount(answers, gen1)
	t.Logf("whole load: %d requests, v1 %d, v2 %d, failed %d", all.total, all.v1, all.v2, all.s500+all.other)
	if n := all.s500 + all.other; n > 0 {
		t.Errorf("%d request(s) failed, first: %s", n, all.firstOther)
	}
	w := progCanaryWindow(t, answers, gen1)
	if c := progCount(w, gen1); c.v2 == 0 {
		t.Error("the canary answered nothing")
	}

	insts := f.running()
	if len(insts) != 3 {
		t.Fatalf("%d running instances, want 3", len(insts))
	}
	gen2 := insts[0].Labels.SpecHash
	if gen2 == gen1 {
		t.Fatal("v1 still runs")
	}
	f.wantRunning(gen2, 3)
	// The canary was kept: the oldest v2 instance is older than the others
	// by about the canary's duration.
	slices.SortFunc(insts, func(a, b coreInst) int { return a.Labels.CreatedAt.Compare(b.Labels.CreatedAt) })
	if d := insts[1].Labels.CreatedAt.Sub(insts[0].Labels.CreatedAt); d < 3*time.Second {
		t.Errorf("the oldest v2 instance is only %s older than the next: the canary was not kept", d.Round(time.Millisecond))
	}
	progOnly(t, f, "hello from v2")
}

// TestProgressiveSlowCanaryRollsBack: a canary whose p99 is far above the
// old generation's (LATENCY 150ms against none) is rolled back for its
// latency, with maxLatencyRatio 2.
func TestProgressiveSlowCanaryRollsBack(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", progSource(f, "v1", "", progRolling))
	f.mustApply()
	v1 := f.running()
	gen1 := v1[0].Labels.SpecHash

	f.commit("v2, a slow canary", progSource(f, "v2", `, LATENCY: "150ms"`,
		progCanary(`count: 1, weight: 20, duration: "4s", minRequests: 20, maxLatencyRatio: 2`)))
	load := progStartLoad(f.addr(), 6, 10*time.Millisecond)
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	answers := load.finish(t)
	t.Logf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	progWant(t, res, 1, "rolled back", "judged web: Rollback (Latency): ", "rolled back web: canary: canary p99 ")
	all := progCount(answers, gen1)
	t.Logf("whole load: %d requests, v1 %d, v2 %d, failed %d", all.total, all.v1, all.v2, all.s500+all.other)
	if n := all.s500 + all.other; n > 0 {
		t.Errorf("%d request(s) failed, first: %s", n, all.firstOther)
	}
	f.wantRunning(gen1, 3)
	progOnly(t, f, "hello from v1")
}

// TestProgressiveCanaryAcrossKilledApply: the canary's window is in the
// traffic record: an apply killed (SIGKILL) during it, and the next apply
// judges the same canary instance at the same end, not a window of its own.
func TestProgressiveCanaryAcrossKilledApply(t *testing.T) {
	const duration = 6 * time.Second
	f := newCoreFleet(t)
	f.commit("v1", progSource(f, "v1", "", progRolling))
	f.mustApply()
	gen1 := f.running()[0].Labels.SpecHash
	f.commit("v2, a bad canary", progSource(f, "v2", `, ERROR_RATE: "0.5"`,
		progCanary(fmt.Sprintf(`count: 1, weight: 20, duration: %q, minRequests: 20`, duration))))
	load := progStartLoad(f.addr(), 4, 10*time.Millisecond)
	defer load.stopNow()
	record := progRecord(t, f.state)

	first := exec.Command("molt", "apply", "--repo", f.repo, "--log-level", "warn", "--state-dir", f.state)
	first.Dir = f.work
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	var tr reconciler.Traffic
	targetstest.Eventually(t, 30*time.Second, "the canary in traffic", func() bool {
		tr = record()
		return tr.Canary != nil
	})
	canaryIDs := progIDs(progNotOf(f.running(), gen1))
	for time.Since(tr.Canary.Since) < time.Second { // a second into the window
		time.Sleep(20 * time.Millisecond)
	}
	first.Process.Kill()
	first.Wait()
	into := time.Since(tr.Canary.Since)
	end := tr.Canary.Since.Add(duration)

	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	late := time.Since(end)
	answers := load.finish(t)
	t.Logf("apply killed %s into the canary window; the next one ended %s after the window's end:\n%s%s",
		into.Round(time.Millisecond), late.Round(time.Millisecond), res.stdout, res.stderr)
	if res.code != 1 || !strings.Contains(res.stdout, "judged web: Rollback (ErrorRate): ") {
		t.Errorf("the second apply exited %d, want 1 with the canary judged Rollback (ErrorRate)", res.code)
	}
	if !strings.Contains(res.stdout, "provisioned 0,") {
		t.Error("the second apply provisioned: the canary of the first was not judged")
	}
	t.Logf("judged %s after the end of the window of the record", late.Round(time.Millisecond))
	if late < -200*time.Millisecond {
		t.Errorf("the canary was judged %s before the end of the window of the record", (-late).Round(time.Millisecond))
	}
	if len(canaryIDs) != 1 {
		t.Errorf("canary instances %v, want 1", canaryIDs)
	}
	if all := progCount(answers, gen1); all.other > 0 || all.s500 != all.s500Canary {
		t.Errorf("requests failed otherwise than with the canary's 500: %+v", all)
	}
	f.wantRunning(gen1, 3)
	progOnly(t, f, "hello from v1")
}

// TestProgressiveCanaryLongerThanProgressDeadline: a canary observed for
// longer than progressDeadline makes no progress (no instance made or
// turning healthy) while it is observed. Either the schema refuses such a
// fleet, or the canary is judged at the end of its window; it must not
// fail for "no progress" before it was judged.
func TestProgressiveCanaryLongerThanProgressDeadline(t *testing.T) {
	f := newCoreFleet(t)
	f.commit("v1", progSource(f, "v1", "", progRolling))
	f.mustApply()
	f.commit("v2, a good canary observed 6s with a deadline of 3s", progSource(f, "v2", "",
		`{strategy: "canary", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "3s", canary: {count: 1, weight: 20, duration: "6s", minRequests: 20}}`))
	if v := f.molt("validate", "--repo", f.repo); v.code != 0 {
		t.Logf("validate refuses the fleet (exit %d):\n%s%s", v.code, v.stdout, v.stderr)
		return
	}
	load := progStartLoad(f.addr(), 4, 10*time.Millisecond)
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	load.finish(t)
	t.Logf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	if !strings.Contains(res.stdout, "judged web: Promote (Healthy): ") || res.code != 0 {
		t.Errorf("a healthy canary with duration 6s > progressDeadline 3s was not judged and promoted (exit %d); the fleet validates", res.code)
	}
}

// TestProgressiveVerifySwitchesBack: a blue-green v2 that passes its health
// checks but starts failing every request 2s after it started is caught by
// verifyFor: apply switches back to the warm v1 inside the window, to the
// very instances that served before (nothing provisioned), and exits 1.
func TestProgressiveVerifySwitchesBack(t *testing.T) {
	const verifyFor = 8 * time.Second
	f := newCoreFleet(t)
	rollout := fmt.Sprintf(`{strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "60s", keepPrevious: "1m", verifyFor: %q}`, verifyFor.String())
	f.commit("v1", progSource(f, "v1", "", rollout))
	f.mustApply()
	v1 := f.running()
	if len(v1) != 3 {
		t.Fatalf("%d running instances, want 3", len(v1))
	}
	gen1 := v1[0].Labels.SpecHash

	f.commit("v2, fails after 2s", progSource(f, "v2", `, FAIL_AFTER: "2s"`, rollout))
	load := progStartLoad(f.addr(), 4, 10*time.Millisecond)
	start := time.Now()
	res := f.molt("apply", "--repo", f.repo, "--log-level", "warn")
	took := time.Since(start)
	answers := load.finish(t)
	t.Logf("apply exited %d after %s:\n%s%s", res.code, took.Round(time.Millisecond), res.stdout, res.stderr)
	progWant(t, res, 1, "rolled back", "judged web: Fail (ErrorRate): ", "rolled back web: verification: error rate ")
	if !strings.Contains(res.stdout, "provisioned 3,") {
		t.Errorf("apply provisioned other than v2's 3 instances (a switch back provisions nothing)")
	}

	tm := progSwitches(answers, gen1)
	t.Logf("v2 served from %s, failed from %s, v1 back at %s: switch back %s after the first 500, %s after the switch (verifyFor %s); %d answers 500",
		progAt(start, tm.switched), progAt(start, tm.failed), progAt(start, tm.back),
		tm.back.Sub(tm.failed).Round(time.Millisecond), tm.back.Sub(tm.switched).Round(time.Millisecond), verifyFor, tm.s500)
	switch {
	case tm.switched.IsZero():
		t.Error("v2 never answered: no switch")
	case tm.failed.IsZero():
		t.Error("v2 never failed a request under load")
	case tm.back.IsZero():
		t.Error("v1 never answered again after v2 failed")
	case tm.back.Sub(tm.switched) > verifyFor:
		t.Errorf("v1 answered again %s after the switch, after verifyFor (%s)", tm.back.Sub(tm.switched), verifyFor)
	}
	if tm.v2After > 0 {
		t.Errorf("%d answer(s) from v2 after v1 was back", tm.v2After)
	}
	if all := progCount(answers, gen1); all.other > 0 {
		t.Errorf("%d request(s) failed otherwise than with v2's 500, first: %s", all.other, all.firstOther)
	}

	// The same v1 instances, processes untouched.
	after := f.running()
	var back []coreInst
	for _, in := range after {
		if in.Labels.SpecHash == gen1 {
			back = append(back, in)
		}
	}
	if got := progIDs(back); !slices.Equal(got, progIDs(v1)) {
		t.Errorf("v1 instances after the switch back %v, want the ones of before %v", got, progIDs(v1))
	}
	for _, in := range v1 {
		if !f.alive(in) {
			t.Errorf("v1 instance %s (pid %d) no longer runs", in.ID, in.PID)
		}
	}
	progOnly(t, f, "hello from v1")
	// The design: a failed rollout's new instances are retired.
	if n := len(after) - len(back); n > 0 {
		t.Errorf("after the rollback %d instance(s) of the failed v2 still run (kept warm as the previous generation?)", n)
	}
}

// TestProgressiveVerifyAcrossServeRestart: under molt serve, a blue-green
// v2 that starts failing 6s after it started is under verification when
// serve is killed (SIGKILL) right after the switch; a new serve carries on
// with the window of the traffic record and still switches back to the
// warm v1 inside it.
func TestProgressiveVerifyAcrossServeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const verifyFor = 20 * time.Second
	hello := targetstest.Hello(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	app := "127.0.0.1:" + port
	repo := gittest.NewRepo(t)
	write := func(version, env string) {
		repo.WriteFile("fleet.cue", fmt.Sprintf(`name: %q
services: web: {
	replicas: 3
	process: command: [%q]
	env: {VERSION: %q%s}
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	stopGrace: "2s"
	rollout: {strategy: "blue-green", minHealthyFor: "200ms", progressDeadline: "60s", keepPrevious: "1m", verifyFor: %q}
}
`, progFleetName, hello, version, env, app, verifyFor.String()))
		repo.Commit(version)
	}
	write("v1", "")
	state := stateDir(t)
	look := &coreFleet{t: t, state: state} // reads the instances only
	s1 := startServe(t, repo.Dir, state, "@every 1s")
	answers(t, app, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "v1 to converge", func() bool {
		return strings.Contains(s1.logs.String(), "result=converged") && len(look.running()) == 3
	})
	v1 := look.running()
	gen1 := v1[0].Labels.SpecHash
	record := progRecord(t, state)

	load := progStartLoad(app, 4, 10*time.Millisecond)
	defer load.stopNow()
	write("v2", `, FAIL_AFTER: "6s"`)
	start := time.Now()
	var tr reconciler.Traffic
	targetstest.Eventually(t, 30*time.Second, "serve to switch to v2 under verification", func() bool {
		tr = record()
		return tr.Active != "" && tr.Active != gen1 && tr.Verify != nil
	})
	if err := s1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s1.exited <- <-s1.exited // (put back for its cleanup)
	killed := time.Now()
	since := tr.Verify.Since
	end := since.Add(verifyFor)
	t.Logf("switched to %s at %s (verify until %s); serve killed %s later",
		tr.Active[:8], since.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), killed.Sub(since).Round(time.Millisecond))
	var v2 []coreInst
	for _, in := range look.running() {
		if in.Labels.SpecHash == tr.Active {
			v2 = append(v2, in)
		}
	}
	if len(v2) == 0 {
		t.Fatal("no v2 instance runs")
	}
	failFrom := v2[0].Labels.CreatedAt.Add(6 * time.Second)
	if !killed.Before(failFrom) {
		t.Fatalf("serve was killed %s after v2 started failing: too late for this test", killed.Sub(failFrom))
	}

	s2 := startServe(t, repo.Dir, state, "@every 1s")
	restarted := time.Now()
	if restarted.After(failFrom) {
		t.Logf("note: serve is back only %s after v2 started failing", restarted.Sub(failFrom).Round(time.Millisecond))
	}
	// While v2 still answers, the window is the record's (not one the new
	// serve opened).
	if now := record(); now.Active == tr.Active && now.Verify != nil && !now.Verify.Since.Equal(since) {
		t.Errorf("after the restart the verification window starts at %s, the record said %s", now.Verify.Since, since)
	}
	answers(t, app, "hello from v1", time.Until(end)+5*time.Second)
	back := time.Now()
	answersSeen := load.finish(t)
	tm := progSwitches(answersSeen, gen1)
	t.Logf("serve restarted %s after the kill; v2 failed from %s (first 500 seen %s), v1 back %s after the first 500, %s after the switch (verifyFor %s); %d answers 500",
		restarted.Sub(killed).Round(time.Millisecond), progAt(start, failFrom), progAt(start, tm.failed),
		tm.back.Sub(tm.failed).Round(time.Millisecond), tm.back.Sub(since).Round(time.Millisecond), verifyFor, tm.s500)
	if back.After(end) {
		t.Errorf("v1 answered again at %s, after the verification window ended (%s)", back.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	if tm.v2After > 0 {
		t.Errorf("%d answer(s) from v2 after v1 was back", tm.v2After)
	}
	if all := progCount(answersSeen, gen1); all.other > 0 {
		t.Errorf("%d request(s) failed otherwise than with v2's 500, first: %s", all.other, all.firstOther)
	}
	rolledBack := regexp.MustCompile(`rollout failed; rolling back.*reason="?verification: error rate`)
	targetstest.Eventually(t, 10*time.Second, "the restarted serve to log the verification failure", func() bool {
		return rolledBack.MatchString(s2.logs.String())
	})
	var again []coreInst
	for _, in := range look.running() {
		if in.Labels.SpecHash == gen1 {
			again = append(again, in)
		}
	}
	if got := progIDs(again); !slices.Equal(got, progIDs(v1)) {
		t.Errorf("v1 instances after the switch back %v, want the ones of before %v", got, progIDs(v1))
	}
}

// progAnswer is one request of the load: when it was sent and what came
// back.
type progAnswer struct {
	at     time.Time
	status int    // 0: no response
	body   string // trimmed
	gen    string // the router's X-Molt-Generation
	err    string
}

// progLoad sends GET / through the router from a few workers, each a
// request every pause, and keeps every answer. It is bounded in requests
// and in each request's time.
type progLoad struct {
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	answers []progAnswer
}

func progStartLoad(addr string, workers int, pause time.Duration) *progLoad {
	l := &progLoad{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range 20000 { // bounded
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				a := progAnswer{at: time.Now()}
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					a.err = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					a.status, a.body, a.gen = resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get(router.GenerationHeader)
				}
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); client.CloseIdleConnections(); close(l.done) }()
	return l
}

func (l *progLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}

func (l *progLoad) stopNow() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// finish keeps the load on for 40 more requests (to see what follows a
// change), stops it and returns every answer in the order sent.
func (l *progLoad) finish(t *testing.T) []progAnswer {
	t.Helper()
	more := l.count() + 40
	targetstest.Eventually(t, 10*time.Second, "more requests", func() bool { return l.count() >= more })
	l.stopNow()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.answers)
	slices.SortStableFunc(out, func(a, b progAnswer) int { return a.at.Compare(b.at) })
	return out
}

// progTally counts answers: v1 and v2 are the 200s by body, s500 the
// hello app's 500s (s500Canary those from a generation other than v1's),
// other every other failure.
type progTally struct {
	total, v1, v2, s500, s500Canary, other int
	v2Gen                                  int // answers from another generation than v1's
	firstOther                             string
}

func progCount(answers []progAnswer, gen1 string) progTally {
	var c progTally
	for _, a := range answers {
		c.total++
		if a.gen != "" && a.gen != gen1 {
			c.v2Gen++
		}
		switch {
		case a.status == http.StatusOK && a.body == "hello from v1":
			c.v1++
		case a.status == http.StatusOK && a.body == "hello from v2":
			c.v2++
		case a.status == http.StatusInternalServerError && strings.Contains(a.body, "failing as asked"):
			c.s500++
			if a.gen != gen1 {
				c.s500Canary++
			}
		default:
			c.other++
			if c.firstOther == "" {
				c.firstOther = fmt.Sprintf("%d %q %s (generation %.8s)", a.status, a.body, a.err, a.gen)
			}
		}
	}
	return c
}

// bodyShare is the share of the answers that came from v2 by their body:
// its greetings and the 500s, against v1's greetings.
func (c progTally) bodyShare() float64 {
	if n := c.v1 + c.v2 + c.s500; n > 0 {
		return float64(c.v2+c.s500) / float64(n)
	}
	return 0
}

// genShare is the share of the answers that came from a generation other
// than v1's by the router's header.
func (c progTally) genShare() float64 {
	if c.total > 0 {
		return float64(c.v2Gen) / float64(c.total)
	}
	return 0
}

// progCanaryWindow returns the answers sent from the first to the last
// answer of a generation other than gen1's: the canary's time in traffic.
func progCanaryWindow(t *testing.T, answers []progAnswer, gen1 string) []progAnswer {
	t.Helper()
	first, last := -1, -1
	for i, a := range answers {
		if a.gen != "" && a.gen != gen1 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		t.Error("no answer came from the canary")
		return nil
	}
	return answers[first : last+1]
}

func progSpan(w []progAnswer) time.Duration {
	if len(w) == 0 {
		return 0
	}
	return w[len(w)-1].at.Sub(w[0].at).Round(time.Millisecond)
}

// progTimes are the moments of a switch to v2 and back, as the load saw
// them.
type progTimes struct {
	switched, failed, back time.Time // first v2 answer, first 500, first v1 answer after it
	s500, v2After          int       // 500s; v2 answers after back
}

func progSwitches(answers []progAnswer, gen1 string) progTimes {
	var tm progTimes
	for _, a := range answers {
		v2 := a.gen != "" && a.gen != gen1
		if v2 && tm.switched.IsZero() {
			tm.switched = a.at
		}
		if a.status == http.StatusInternalServerError {
			tm.s500++
			if tm.failed.IsZero() {
				tm.failed = a.at
			}
		}
		if !tm.failed.IsZero() && tm.back.IsZero() && a.gen == gen1 && a.status == http.StatusOK {
			tm.back = a.at
		}
		if !tm.back.IsZero() && v2 && a.at.After(tm.back.Add(time.Second)) {
			tm.v2After++ // (requests sent just before the switch may answer after it)
		}
	}
	return tm
}

// progAt formats t relative to start.
func progAt(start, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return "+" + t.Sub(start).Round(time.Millisecond).String()
}

// progRecord returns a reader of the reconciler's traffic record of web,
// as kept in the router's routes.
func progRecord(t *testing.T, state string) func() reconciler.Traffic {
	rc := router.NewClient(state)
	return func() reconciler.Traffic {
		t.Helper()
		routes, err := rc.Routes(context.Background(), progFleetName)
		if err != nil {
			t.Fatal(err)
		}
		return reconciler.TrafficOf(routes)["web"]
	}
}

// progNotOf returns the instances of another generation than gen.
func progNotOf(insts []coreInst, gen string) []coreInst {
	var out []coreInst
	for _, in := range insts {
		if in.Labels.SpecHash != gen {
			out = append(out, in)
		}
	}
	return out
}

func progIDs(insts []coreInst) []string {
	var ids []string
	for _, in := range insts {
		ids = append(ids, in.ID)
	}
	slices.Sort(ids)
	return ids
}

// progOnly checks that 20 requests through the router all answer want.
func progOnly(t *testing.T, f *coreFleet, want string) {
	t.Helper()
	for range 20 {
		body, err := f.get("/")
		if err != nil || strings.TrimSpace(body) != want {
			t.Errorf("the router answers %q, %v; want %q", body, err, want)
			return
		}
	}
}

// progWant checks apply's exit status (why says what it means) and that
// its output says each of wants.
func progWant(t *testing.T, res coreResult, code int, why string, wants ...string) {
	t.Helper()
	if res.code != code {
		t.Errorf("apply exited %d, want %d (%s)", res.code, code, why)
	}
	for _, want := range wants {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("apply does not say %q", want)
		}
	}
}
