package github

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

func newTestQueue(t *testing.T, dir string, rep Reporter, clock Clock, edit func(*QueueOptions)) *Queue {
	t.Helper()
	opts := QueueOptions{Dir: dir, Reporter: rep, Clock: clock}
	if edit != nil {
		edit(&opts)
	}
	q, err := NewQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func statusReport(sha, state string) Report {
	return Report{Status: &Status{SHA: sha, Context: ContextDeploy, State: state, Description: "deploy " + state}}
}

func planReport(pr int, sha, note string) Report {
	return Report{Plan: &PlanInput{PR: pr, SHA: sha, Notes: []string{note}}}
}

func TestQueueSurvivesRestart(t *testing.T) {
	clock := newFakeClock()
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now})
	f := &fixture{srv: srv}
	_, c1 := f.history()
	pr := srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	dir := t.TempDir()

	// The first molt: GitHub answers 500, and molt stops before a retry.
	srv.Inject(1000, githubtest.ServerError(500))
	stuck := newStuckClock()
	q1 := newTestQueue(t, dir, newTestClient(t, srv, stuck), stuck, nil)
	stop := startQueue(t, q1)
	q1.Enqueue(planReport(pr, c1, "first"))
	waitFor(t, "a failed attempt", func() bool { return q1.Counts().Retried == 1 })
	stop()
	if c := q1.Counts(); c.Delivered != 0 || c.Pending != 1 {
		t.Fatalf("first queue: %+v", c)
	}

	// The second molt, over the same directory, with GitHub healthy.
	srv.ClearFaults()
	client := newTestClient(t, srv, clock)
	q2 := newTestQueue(t, dir, client, clock, nil)
	if p := q2.Pending(); len(p) != 1 || p[0].Key() != "plan:1:"+c1 {
		t.Fatalf("pending after restart: %+v", p)
	}
	stop2 := startQueue(t, q2)
	waitFor(t, "delivery", func() bool { return q2.Counts().Delivered == 1 })
	stop2()
	if n := len(withMarker(srv.Comments(pr), PlanMarker)); n != 1 {
		t.Fatalf("%d plan comments, want 1", n)
	}

	// A third start finds nothing to do.
	q3 := newTestQueue(t, dir, client, clock, nil)
	if p := q3.Pending(); len(p) != 0 {
		t.Fatalf("pending after delivery: %+v", p)
	}
}

func TestQueueDeliversOnceWhenAWriteLandedButFailed(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	f.srv.Inject(1, githubtest.Fault{Status: 502, Late: true, Method: "POST"})
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	startQueue(t, q)
	q.Enqueue(planReport(pr, c1, "x"))
	sha2 := strings.Repeat("e", 40)
	q.Enqueue(Report{Outcome: &Outcome{SHA: sha2, Kind: OutcomeSuccess}}) // a commit of no pull request: nothing to post
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 2 })
	if c := q.Counts(); c.Retried != 1 {
		t.Errorf("counts %+v: want one retry", c)
	}
	if n := len(f.srv.Comments(pr)); n != 1 {
		t.Fatalf("%d comments, want 1", n)
	}
}

func TestQueueWriteRate(t *testing.T) {
	f := newFixture(t)
	var shas []string
	for i := range 6 {
		shas = append(shas, f.srv.AddCommit("c", githubtest.TreeSHA("t"+string(rune('a'+i)))))
	}
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	for _, sha := range shas {
		q.Enqueue(statusReport(sha, StatePending))
		q.Enqueue(Report{Status: &Status{SHA: sha, Context: ContextPlan, State: StateSuccess}})
	}
	startQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 12 })
	writes := f.srv.Writes()
	if len(writes) != 12 {
		t.Fatalf("%d writes, want 12", len(writes))
	}
	for i := 1; i < len(writes); i++ {
		if gap := writes[i].Time.Sub(writes[i-1].Time); gap < time.Second {
			t.Errorf("writes %d and %d %v apart, want at least 1s", i-1, i, gap)
		}
	}
}

func TestQueueRateLimits(t *testing.T) {
	tests := []struct {
		name  string
		fault func(s *githubtest.Server, now time.Time) time.Time // injects, returns the earliest next request
	}{
		{"secondary with Retry-After", func(s *githubtest.Server, now time.Time) time.Time {
			s.Inject(1, githubtest.SecondaryRateLimit(30*time.Second))
			return now.Add(30 * time.Second)
		}},
		{"secondary without Retry-After", func(s *githubtest.Server, now time.Time) time.Time {
			s.Inject(1, githubtest.SecondaryRateLimit(0))
			return now.Add(time.Minute)
		}},
		{"429 with Retry-After", func(s *githubtest.Server, now time.Time) time.Time {
			s.Inject(1, githubtest.TooManyRequests(7*time.Second))
			return now.Add(7 * time.Second)
		}},
		{"429 without Retry-After", func(s *githubtest.Server, now time.Time) time.Time {
			s.Inject(1, githubtest.TooManyRequests(0))
			return now.Add(time.Minute)
		}},
		{"primary", func(s *githubtest.Server, now time.Time) time.Time {
			reset := now.Add(17 * time.Minute)
			s.ExhaustRateLimit(reset)
			return reset
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, c1 := f.history()
			earliest := tt.fault(f.srv, f.clock.Now())
			q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
			q.Enqueue(statusReport(c1, StatePending))
			q.Enqueue(statusReport(strings.Repeat("0", 40), StateSuccess)) // waits out the same limit
			startQueue(t, q)
			waitFor(t, "delivery", func() bool { c := q.Counts(); return c.Delivered+c.Dropped == 2 })
			reqs := f.srv.Requests()
			if reqs[0].Status != 403 && reqs[0].Status != 429 {
				t.Fatalf("first answer %d, want a limit", reqs[0].Status)
			}
			for _, r := range reqs[1:] {
				if r.Time.Before(earliest) {
					t.Errorf("request at %v, before the limit lifted at %v", r.Time, earliest)
				}
			}
			if len(reqs) != 3 {
				t.Errorf("%d requests, want 3 (the refused one, then one per report)", len(reqs))
			}
			if c := q.Counts(); c.Limited != 1 || c.Retried != 0 || c.Delivered != 1 || c.DroppedRejected != 1 {
				t.Errorf("counts %+v: want one limited, one delivered, one refused (unknown commit)", c)
			}
			if n := len(f.srv.Statuses(c1)); n != 1 {
				t.Errorf("%d statuses, want 1", n)
			}
		})
	}
}

func TestQueueBackoff(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	f.srv.Inject(3, githubtest.ServerError(502))
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	q.Enqueue(statusReport(c1, StatePending))
	startQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 1 })
	reqs := f.srv.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if gap := reqs[i+1].Time.Sub(reqs[i].Time); gap < w {
			t.Errorf("attempt %d came %v after the one before, want at least %v", i+2, gap, w)
		}
	}
	if c := q.Counts(); c.Retried != 3 || c.Dropped != 0 {
		t.Errorf("counts %+v", c)
	}
}

func TestQueueDrops(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fixture, o *QueueOptions) Report
		requests int
		check    func(QueueCounts) bool
	}{
		{"after max attempts", func(f *fixture, o *QueueOptions) Report {
			o.MaxAttempts = 3
			f.srv.Inject(100, githubtest.ServerError(500))
			_, c1 := f.history()
			return statusReport(c1, StatePending)
		}, 3, func(c QueueCounts) bool { return c.DroppedAttempts == 1 && c.Retried == 3 }},
		{"too old", func(f *fixture, o *QueueOptions) Report {
			o.MaxAge = time.Hour
			_, c1 := f.history()
			return statusReport(c1, StatePending)
		}, 0, func(c QueueCounts) bool { return c.DroppedAge == 1 }},
		{"refused by GitHub", func(f *fixture, o *QueueOptions) Report {
			return statusReport(strings.Repeat("0", 40), StatePending) // no such commit: 422
		}, 1, func(c QueueCounts) bool { return c.DroppedRejected == 1 }},
		{"invalid", func(f *fixture, o *QueueOptions) Report {
			return statusReport("", "done")
		}, 0, func(c QueueCounts) bool { return c.DroppedRejected == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			var logs bytes.Buffer
			opts := QueueOptions{Dir: t.TempDir(), Reporter: f.client, Clock: f.clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			r := tt.setup(f, &opts)
			q, err := NewQueue(opts)
			if err != nil {
				t.Fatal(err)
			}
			q.Enqueue(r)
			if tt.name == "too old" {
				f.clock.Advance(2 * time.Hour)
			}
			startQueue(t, q)
			waitFor(t, "the drop", func() bool { return q.Counts().Dropped == 1 })
			c := q.Counts()
			if !tt.check(c) || c.Pending != 0 || c.Delivered != 0 {
				t.Errorf("counts %+v", c)
			}
			if n := len(f.srv.Requests()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
			if !strings.Contains(logs.String(), "github report dropped") {
				t.Errorf("drop not logged:\n%s", logs.String())
			}
		})
	}
}

func TestQueueSupersedesAndDeduplicates(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	q.Enqueue(planReport(pr, c1, "first push"))
	q.Enqueue(planReport(pr, c1, "second push"))
	q.Enqueue(planReport(pr, c1, "third push"))
	q.Enqueue(statusReport(c1, StatePending))
	q.Enqueue(statusReport(c1, StatePending)) // the same again
	q.Enqueue(statusReport(c1, StateSuccess)) // supersedes pending
	startQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Counts().Pending == 0 })
	c := q.Counts()
	if c.Enqueued != 6 || c.Superseded != 3 || c.Duplicate != 1 || c.Delivered != 2 {
		t.Errorf("counts %+v", c)
	}
	cs := f.srv.Comments(pr)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, "third push") {
		t.Errorf("comments %+v: want one, the third plan", cs)
	}
	if st := f.srv.Statuses(c1); len(st) != 1 || st[0].State != StateSuccess {
		t.Errorf("statuses %+v: want success only", st)
	}

	// What was delivered last in its slot is not sent again...
	before := len(f.srv.Requests())
	q.Enqueue(statusReport(c1, StateSuccess))
	if c := q.Counts(); c.Duplicate != 2 || c.Pending != 0 {
		t.Errorf("counts %+v", c)
	}
	// ...but a new state is, even one seen before (a retried deploy).
	q.Enqueue(statusReport(c1, StatePending))
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 3 })
	if n := len(f.srv.Requests()) - before; n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if c := q.Counts(); c.Enqueued != c.Delivered+c.Superseded+c.Duplicate+c.Dropped+int64(c.Pending) {
		t.Errorf("counts do not add up: %+v", c)
	}
}

func TestQueueEnqueueDoesNotWait(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	f.srv.Inject(1, githubtest.Slow(time.Minute))
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	startQueue(t, q)
	q.Enqueue(statusReport(c1, StatePending))
	waitFor(t, "the slow request", func() bool { return len(f.srv.Requests()) == 1 })
	// A delivery hangs; Enqueue still returns (the test would time out
	// otherwise) and the report waits its turn.
	for i := range 50 {
		q.Enqueue(statusReport(c1, []string{StateSuccess, StateFailure}[i%2]))
	}
	if c := q.Counts(); c.Pending != 1 || c.Enqueued != 51 {
		t.Errorf("counts %+v", c)
	}
}

func TestQueueAttemptTimeout(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	f.srv.Inject(1, githubtest.Slow(time.Minute))
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, func(o *QueueOptions) { o.AttemptTimeout = 50 * time.Millisecond })
	q.Enqueue(statusReport(c1, StatePending))
	startQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 1 })
	if c := q.Counts(); c.Retried != 1 {
		t.Errorf("counts %+v: want one retry after the timeout", c)
	}
}

func TestQueueOutcomeWithRevert(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1, State: "closed", Merged: true, MergeCommit: c1})
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	out := Outcome{SHA: c1, Kind: OutcomeFailure, Reason: "health checks failed", RevertBase: "main",
		Services: []ServiceOutcome{{Name: "web", Provisioned: 3, Retired: 3, Failed: "unhealthy", RolledBackTo: "sha256:1f3a9c0d2e7b6a55"}}}
	q.Enqueue(Report{Outcome: &out})
	q.Enqueue(Report{Outcome: &out}) // twice: still one revert, one comment
	startQueue(t, q)
	waitFor(t, "delivery", func() bool { return q.Counts().Pending == 0 })
	pulls := f.srv.Pulls()
	if len(pulls) != 2 {
		t.Fatalf("%d pull requests, want the merged one and the revert", len(pulls))
	}
	revert := pulls[1]
	cs := withMarker(f.srv.Comments(pr), OutcomeMarker(c1, OutcomeFailure))
	if len(cs) != 1 {
		t.Fatalf("%d outcome comments, want 1", len(cs))
	}
	if link := f.client.Repo().PullURL(revert.Number); !strings.Contains(cs[0].Body, link) {
		t.Errorf("outcome comment does not link the revert %s:\n%s", link, cs[0].Body)
	}
}

func TestQueueFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, QueueFile)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	q, err := NewQueue(QueueOptions{Dir: dir, Reporter: LogReporter{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".bad"); err != nil || !strings.Contains(logs.String(), "moved aside") {
		t.Errorf("unreadable file not moved aside: %v\n%s", err, logs.String())
	}
	q.Enqueue(statusReport("abc", StatePending))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file queueFile
	if err := json.Unmarshal(b, &file); err != nil || len(file.Pending) != 1 || file.Pending[0].Report.Status.SHA != "abc" {
		t.Fatalf("queue file %s: %v", b, err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestQueueOptionsValidate(t *testing.T) {
	tests := []QueueOptions{
		{Reporter: LogReporter{}},
		{Dir: "x"},
		{Dir: "x", Reporter: LogReporter{}, MaxAttempts: -1},
	}
	for _, o := range tests {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", o)
		}
	}
}

func TestQueueRunsOnce(t *testing.T) {
	q := newTestQueue(t, t.TempDir(), LogReporter{}, nil, nil)
	startQueue(t, q)
	waitFor(t, "Run", func() bool { return q.running.Load() })
	if err := q.Run(context.Background()); err == nil {
		t.Error("a second Run did not fail")
	}
}

func TestQueueOverflowDropsOldest(t *testing.T) {
	q := newTestQueue(t, t.TempDir(), LogReporter{}, nil, func(o *QueueOptions) { o.MaxPending = 2 })
	for _, sha := range []string{"a1", "b2", "c3"} {
		q.Enqueue(statusReport(sha, StatePending))
	}
	c := q.Counts()
	if c.DroppedOverflow != 1 || c.Pending != 2 {
		t.Fatalf("counts %+v", c)
	}
	if p := q.Pending(); p[0].Status.SHA != "b2" || p[1].Status.SHA != "c3" {
		t.Errorf("pending %v %v: want the two newest", p[0].Key(), p[1].Key())
	}
}
