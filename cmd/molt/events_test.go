package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/github"
)

// TestEventStoreIDsTornLinesAndRestart: ids increase and go on after a
// reopen; a torn last line (a crash mid-write) and a garbled line are
// skipped, never fatal, and the next append starts on a line of its own.
func TestEventStoreIDsTornLinesAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := openEvents(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var heard []int64
	s.subscribe(func(ev apiEvent) { heard = append(heard, ev.ID) })
	for i := 0; i < 3; i++ {
		s.append(apiEvent{Kind: "deploy", Fleet: "f", Service: "web"})
	}
	if len(heard) != 3 || heard[0] != 1 || heard[2] != 3 {
		t.Fatalf("subscriber heard %v, want [1 2 3]", heard)
	}
	if got := s.recent(2); len(got) != 2 || got[0].ID != 3 || got[1].ID != 2 {
		t.Fatalf("recent(2) = %+v, want ids 3, 2", got)
	}
	path := filepath.Join(dir, eventsFile)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n{\"id\":4,\"kind\":\"dep") // a garbled line, then a torn one
	f.Close()

	// A reader skips both, and changes nothing.
	evs, err := readEvents(dir, 0)
	if err != nil || len(evs) != 3 || evs[0].ID != 3 {
		t.Fatalf("readEvents = %+v, %v; want 3 events, newest 3", evs, err)
	}
	s2, err := openEvents(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := s2.append(apiEvent{Kind: "rollback", Fleet: "f", Service: "web"}); ev.ID != 4 {
		t.Errorf("id after a reopen: %d, want 4", ev.ID)
	}
	evs, err = readEvents(dir, 0)
	if err != nil || len(evs) != 4 || evs[0].Kind != "rollback" || evs[0].ID != 4 {
		t.Fatalf("after the reopen: %+v, %v", evs, err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), `"dep{`) || !strings.HasSuffix(string(raw), "\n") {
		t.Errorf("the torn line was not cut off:\n%s", raw)
	}
}

// TestEventStoreBounded: the file never holds more than the bound; the
// newest events are kept, and ids keep increasing over compactions.
func TestEventStoreBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := openEvents(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 2000)
	for i := 0; i < 3*maxEvents; i++ {
		s.append(apiEvent{Kind: "selfheal", Fleet: "f", Message: long})
	}
	st, err := os.Stat(filepath.Join(dir, eventsFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > maxEventBytes+4096 {
		t.Errorf("events file is %d bytes, more than the bound %d", st.Size(), maxEventBytes)
	}
	evs, err := readEvents(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || len(evs) > maxEvents+maxEvents/2 || evs[0].ID != 3*maxEvents {
		t.Fatalf("%d events kept, newest %d; want at most %d, newest %d", len(evs), evs[0].ID, maxEvents+maxEvents/2, 3*maxEvents)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].ID != evs[i-1].ID-1 {
			t.Fatalf("ids not consecutive: %d then %d", evs[i-1].ID, evs[i].ID)
		}
	}
	s2, _ := openEvents(dir, nil)
	if ev := s2.append(apiEvent{Kind: "deploy", Fleet: "f"}); ev.ID != 3*maxEvents+1 {
		t.Errorf("id after compaction and reopen: %d", ev.ID)
	}
}

// recorderFor returns a recorder over a fresh store, with a commit lookup
// that knows one author and pull request.
func recorderFor(t *testing.T, dir string) (*eventRecorder, *eventStore) {
	t.Helper()
	s, err := openEvents(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newEventRecorder(s, github.RepoRef{Owner: "o", Name: "r"}, func(rev string) (git.Commit, bool) {
		return git.Commit{Hash: sha(rev), Author: "Ada <ada@example.com>", Message: "Faster pages (#12)\n\nbody"}, true
	})
	return r, s
}

const (
	revA = "main@sha1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	revB = "main@sha1:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func kinds(evs []apiEvent) string {
	var k []string
	for i := len(evs) - 1; i >= 0; i-- {
		k = append(k, evs[i].Kind)
	}
	return strings.Join(k, " ")
}

// TestRecorderDeployAndRollback: a rollout that converges is one deploy
// (from, to, commit link, author, pull request, duration), recorded once
// however many passes and reconciles see it, and again neither after a
// restart; a failed rollout is one rollback with its reason and figures.
func TestRecorderDeployAndRollback(t *testing.T) {
	dir := t.TempDir()
	r, s := recorderFor(t, dir)
	rolling := reconciler.Plan{Fleet: "f", Revision: revB, Services: []reconciler.ServicePlan{{Service: "web", From: "old11111", To: "new22222", ToRevision: revB,
		Replicas: 2, Provision: 2, Step: reconciler.Step{Provision: []reconciler.Provision{{Reason: reconciler.ReasonRollout}}}}}}
	done := reconciler.Plan{Fleet: "f", Revision: revB, Services: []reconciler.ServicePlan{{Service: "web", From: "new22222", To: "new22222", ToRevision: revB, Replicas: 2, Healthy: 2}}}
	r.onPass(rolling)
	r.onPass(rolling)
	r.onPass(done)
	out := reconciler.Outcome{Fleet: "f", Revision: revB, Result: reconciler.Result{Plan: done, Converged: true,
		PerService: map[string]reconciler.Counts{"web": {Provisioned: 2, Retired: 2}}}}
	r.onResult(out)
	r.onResult(reconciler.Outcome{Fleet: "f", Revision: revB, Result: reconciler.Result{Plan: done, Converged: true}})
	evs := s.recent(0)
	if kinds(evs) != "deploy" {
		t.Fatalf("events %q, want one deploy", kinds(evs))
	}
	d := evs[0]
	if d.From != "old11111" || d.To != "new22222" || d.Author != "Ada" || d.PullRequest != 12 ||
		d.PullRequestURL != "https://github.com/o/r/pull/12" || d.CommitURL != "https://github.com/o/r/commit/"+sha(revB) || d.Revision != revB {
		t.Errorf("deploy %+v", d)
	}

	// After a restart, the same converged service is no new deploy.
	r2, s2 := recorderFor(t, dir)
	r2.onPass(done)
	r2.onResult(out)
	if kinds(s2.recent(0)) != "deploy" {
		t.Errorf("after a restart: %q", kinds(s2.recent(0)))
	}

	// A failed rollout: one rollback with its figures.
	failing := reconciler.Plan{Fleet: "f", Revision: revA, Services: []reconciler.ServicePlan{{Service: "web", From: "new22222", To: "bad33333", ToRevision: revA, Replicas: 2}}}
	back := reconciler.Plan{Fleet: "f", Revision: revA, Services: []reconciler.ServicePlan{{Service: "web", From: "new22222", To: "new22222", Rollback: true, Replicas: 2, Healthy: 2}}}
	r2.onPass(failing)
	r2.onPass(back)
	j := reconciler.Judgement{Verdict: reconciler.Rollback, Finding: reconciler.FindingErrorRate, Requests: 200, ErrorRate: 0.25, P99: 30 * time.Millisecond}
	r2.onResult(reconciler.Outcome{Fleet: "f", Revision: revA, Result: reconciler.Result{Plan: back, Converged: true,
		Failures:   []reconciler.Failure{{Fleet: "f", Service: "web", Revision: revA, Hash: "bad33333", Reason: "canary: too many errors", At: time.Now()}},
		Judgements: map[string]reconciler.Judgement{"web": j}}})
	evs = s2.recent(0)
	if kinds(evs) != "deploy rollback" {
		t.Fatalf("events %q, want deploy rollback", kinds(evs))
	}
	rb := evs[0]
	if rb.From != "bad33333" || rb.To != "new22222" || rb.Reason != "canary: too many errors" ||
		rb.Figures["requests"] != 200 || rb.Figures["errorRate"] != 0.25 || rb.Figures["p99Seconds"] != 0.03 {
		t.Errorf("rollback %+v", rb)
	}
}

// TestRecorderLastingStates: degraded, paused and a fault are recorded
// once while they last; a promotion after a pause, an abort, and the
// retires of self-heal, drift and recycle are recorded once each.
func TestRecorderLastingStates(t *testing.T) {
	r, s := recorderFor(t, t.TempDir())
	degraded := reconciler.Plan{Fleet: "f", Revision: revA, Services: []reconciler.ServicePlan{{Service: "web", From: "h1", To: "h1", Replicas: 2, Healthy: 1,
		Degraded: "the artifact cannot be had", DegradedReason: reconciler.DegradedStalled}}}
	r.onPass(degraded)
	r.onPass(degraded)
	paused := reconciler.Plan{Fleet: "f", Revision: revB, Services: []reconciler.ServicePlan{{Service: "web", From: "h1", To: "h2", Replicas: 2, Paused: "paused after the canary"}}}
	r.onPass(paused)
	r.onPass(paused)
	going := reconciler.Plan{Fleet: "f", Revision: revB, Services: []reconciler.ServicePlan{{Service: "web", From: "h1", To: "h2", Replicas: 2}}}
	r.onPass(going)
	aborted := reconciler.Plan{Fleet: "f", Revision: revB, Services: []reconciler.ServicePlan{{Service: "web", From: "h1", To: "h2", Failed: "aborted by ada (molt abort)"}}}
	r.onPass(aborted)
	r.onPass(aborted)
	heal := reconciler.Plan{Fleet: "f", Revision: revA, Services: []reconciler.ServicePlan{{Service: "web", From: "h1", To: "h1", Step: reconciler.Step{Retire: []reconciler.Retire{
		{Instance: "web-1", SpecHash: "h1", Reason: reconciler.ReasonExited},
		{Instance: "web-2", SpecHash: "h1", Reason: reconciler.ReasonDrift, Detail: "binary changed"},
		{Instance: "web-3", SpecHash: "h1", Reason: reconciler.ReasonRecycle},
		{Instance: "web-4", SpecHash: "h0", Reason: reconciler.ReasonSuperseded},
	}}}}}
	r.onPass(heal)
	r.onPass(heal)
	for i := 0; i < 3; i++ {
		r.onResult(reconciler.Outcome{Fleet: "f", Err: errors.New("fetch origin: connection refused")})
	}
	r.onResult(reconciler.Outcome{Fleet: "f", Revision: revA})
	r.onResult(reconciler.Outcome{Fleet: "f", Err: errors.New("fetch origin: connection refused")})
	want := "degraded paused promote abort drift recycle selfheal failure failure"
	if got := kinds(s.recent(0)); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	for _, ev := range s.recent(0) {
		if ev.Message == "" || ev.Fleet != "f" {
			t.Errorf("event without a message or fleet: %+v", ev)
		}
		if ev.Kind == "drift" && (len(ev.Instances) != 1 || ev.Instances[0] != "web-2" || !strings.Contains(ev.Message, "binary changed")) {
			t.Errorf("drift %+v", ev)
		}
	}
}
