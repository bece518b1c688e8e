package github

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestLogReporter(t *testing.T) {
	var logs bytes.Buffer
	rep := LogReporter{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Repo: RepoRef{Owner: "octo-org", Name: "fleet"}}
	sha := strings.Repeat("ab", 20)
	reports := []struct {
		r    Report
		want []string
	}{
		{Report{Plan: &PlanInput{PR: 7, SHA: sha, Error: "target docker unreachable"}},
			[]string{"no token", "report=plan:7:" + sha, "pr=7", PlanMarker, "target docker unreachable", "https://github.com/octo-org/fleet/commit/" + sha}},
		{Report{Status: &Status{SHA: sha, Context: ContextDeploy, State: StateFailure, Description: "web failed"}},
			[]string{"context=molt/deploy", "state=failure", `description="web failed"`}},
		{Report{Outcome: &Outcome{SHA: sha, Kind: OutcomeFailure, Reason: "unhealthy", RevertBase: "main"}},
			[]string{"revert=molt/revert-" + sha[:12], "base=main", OutcomeMarker(sha, OutcomeFailure), "unhealthy"}},
	}
	for _, tt := range reports {
		logs.Reset()
		if err := rep.Deliver(context.Background(), tt.r); err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("%s: log lacks %q:\n%s", tt.r.Key(), w, logs.String())
			}
		}
	}

	// Through a Queue, as molt serve runs without a token.
	logs.Reset()
	q := newTestQueue(t, t.TempDir(), rep, nil, nil)
	startQueue(t, q)
	q.Enqueue(reports[1].r)
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 1 })
	if !strings.Contains(logs.String(), "state=failure") {
		t.Errorf("queue did not log the report:\n%s", logs.String())
	}
}

func TestReportKeys(t *testing.T) {
	sha := "abc"
	tests := []struct {
		r          Report
		slot, key  string
		validError bool
	}{
		{Report{Plan: &PlanInput{PR: 3, SHA: sha}}, "plan:3", "plan:3:abc", false},
		{Report{Status: &Status{SHA: sha, Context: ContextPlan, State: StateSuccess}}, "status:abc:molt/plan", "status:abc:molt/plan:success", false},
		{Report{Outcome: &Outcome{SHA: sha, Kind: OutcomeFailure}}, "outcome:abc:failure", "outcome:abc:failure", false},
		{Report{}, "", "", true},
		{Report{Plan: &PlanInput{PR: 3, SHA: sha}, Status: &Status{SHA: sha, Context: "c", State: StateSuccess}}, "plan:3", "plan:3:abc", true},
		{Report{Outcome: &Outcome{SHA: sha}}, "outcome:abc:", "outcome:abc:", true},
	}
	for _, tt := range tests {
		if tt.r.Slot() != tt.slot || tt.r.Key() != tt.key || (tt.r.Validate() != nil) != tt.validError {
			t.Errorf("%+v: slot %q key %q valid %v", tt.r, tt.r.Slot(), tt.r.Key(), tt.r.Validate())
		}
	}
}
