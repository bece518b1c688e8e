package github

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

// commentURL is the html_url githubtest gives a comment.
func commentURL(srv *githubtest.Server, pr int, id int64) string {
	return fmt.Sprintf("%s%s/%s/pull/%d#issuecomment-%d", srv.URL, srv.Owner(), srv.Repo(), pr, id)
}

// TestStatusLinks: a status's target_url is the web address of the
// comment it names, found when it is delivered; an explicit TargetURL
// wins; a comment that is not there leaves the status without a link.
func TestStatusLinks(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1, Commits: []string{c1}})
	f.srv.AddComment(pr, "alice", "looks good")
	ctx := context.Background()
	deliver := func(r Report) {
		t.Helper()
		if err := f.client.Deliver(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	last := func() githubtest.Status {
		t.Helper()
		st := f.srv.Statuses(c1)
		return st[len(st)-1]
	}

	// Before its comment exists: no link.
	deliver(Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StatePending, LinkPlan: pr}})
	if got := last().TargetURL; got != "" {
		t.Errorf("target_url %q before the plan comment exists, want none", got)
	}

	deliver(Report{Plan: &PlanInput{PR: pr, SHA: c1}})
	deliver(Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateSuccess, LinkPlan: pr}})
	plan := withMarker(f.srv.Comments(pr), PlanMarker)
	if len(plan) != 1 {
		t.Fatalf("plan comments %+v", plan)
	}
	if got, want := last().TargetURL, commentURL(f.srv, pr, plan[0].ID); got != want {
		t.Errorf("molt/plan target_url %q, want the plan comment %q", got, want)
	}

	deliver(Report{Outcome: &Outcome{SHA: c1, Kind: OutcomeSuccess}})
	deliver(Report{Status: &Status{SHA: c1, Context: ContextDeploy, State: StateSuccess, LinkOutcome: OutcomeSuccess}})
	outcome := withMarker(f.srv.Comments(pr), OutcomeMarker(c1, OutcomeSuccess))
	if len(outcome) != 1 {
		t.Fatalf("outcome comments %+v", outcome)
	}
	if got, want := last().TargetURL, commentURL(f.srv, pr, outcome[0].ID); got != want {
		t.Errorf("molt/deploy target_url %q, want the outcome comment %q", got, want)
	}

	// No failure comment: no link.
	deliver(Report{Status: &Status{SHA: c1, Context: ContextDeploy, State: StateFailure, LinkOutcome: OutcomeFailure}})
	if got := last().TargetURL; got != "" {
		t.Errorf("target_url %q without a failure comment, want none", got)
	}

	deliver(Report{Status: &Status{SHA: c1, Context: ContextDeploy, State: StateSuccess, TargetURL: "https://molt.example/", LinkOutcome: OutcomeSuccess}})
	if got := last().TargetURL; got != "https://molt.example/" {
		t.Errorf("target_url %q, want the one given", got)
	}
}

// TestStatusLinkUnreadable: when the comments cannot be read (GitHub
// refuses), the status is set without a link rather than not at all.
func TestStatusLinkUnreadable(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 7, func(a *githubtest.App) {
		a.Permissions = map[string]string{"statuses": "write"}
	})
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	if err := f.client.Deliver(context.Background(), Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateSuccess, LinkPlan: pr}}); err != nil {
		t.Fatal(err)
	}
	if st := f.srv.Statuses(c1); len(st) != 1 || st[0].TargetURL != "" {
		t.Errorf("statuses %+v, want one without a link", st)
	}
}

func TestLogReporterSaysWhy(t *testing.T) {
	var logs bytes.Buffer
	rep := LogReporter{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Why: "reporting is off"}
	sha := strings.Repeat("cd", 20)
	if err := rep.Deliver(context.Background(), Report{Status: &Status{SHA: sha, Context: ContextPlan, State: StateSuccess, LinkPlan: 4}}); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); !strings.Contains(s, `msg="github report not sent: reporting is off"`) || !strings.Contains(s, `target="the plan comment of #4"`) {
		t.Errorf("log:\n%s", s)
	}
}
