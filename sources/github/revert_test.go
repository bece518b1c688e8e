package github

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

func TestOpenRevertPROnce(t *testing.T) {
	f := newFixture(t)
	c0, c1 := f.history()
	ctx := context.Background()

	first, err := f.client.OpenRevertPR(ctx, c1, "main", "web: 2 new instances failed their health checks")
	if err != nil {
		t.Fatal(err)
	}
	if first.Number == 0 || first.Existing || first.Skipped != "" || first.Branch != "molt/revert-"+c1[:12] {
		t.Fatalf("first call: %+v", first)
	}
	second, err := f.client.OpenRevertPR(ctx, c1, "main", "again")
	if err != nil {
		t.Fatal(err)
	}
	if second.Number != first.Number || !second.Existing {
		t.Fatalf("second call: %+v, want the existing #%d", second, first.Number)
	}
	pulls := f.srv.Pulls()
	if len(pulls) != 1 {
		t.Fatalf("%d pull requests, want 1", len(pulls))
	}
	p := pulls[0]
	if p.Title != "Revert "+c1[:12]+": rollout failed" || p.Head != first.Branch || p.Base != "main" {
		t.Errorf("pull request %+v", p)
	}
	if !strings.Contains(p.Body, f.client.Repo().CommitURL(c1)) || !strings.Contains(p.Body, "failed their health checks") {
		t.Errorf("body does not link the failed commit or say why:\n%s", p.Body)
	}

	// The revert commit: the parent's tree on top of the failed commit.
	head, ok := f.srv.Ref("heads/" + first.Branch)
	if !ok {
		t.Fatal("no revert branch")
	}
	rc, _ := f.srv.Commit(head)
	parent, _ := f.srv.Commit(c0)
	if rc.Tree != parent.Tree || len(rc.Parents) != 1 || rc.Parents[0] != c1 {
		t.Errorf("revert commit %+v: want tree %s and parent %s", rc, parent.Tree, c1)
	}
	if !strings.HasPrefix(rc.Message, "Revert "+c1[:12]) || !strings.Contains(rc.Message, "This reverts commit "+c1) {
		t.Errorf("revert commit message %q", rc.Message)
	}
	if main, _ := f.srv.Ref("heads/main"); main != c1 {
		t.Errorf("main moved to %s: molt must not push to it", main)
	}
}

func TestOpenRevertPRSkipsWhenBaseMovedOn(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	c2 := f.srv.AddCommit("docs", githubtest.TreeSHA("t2"), c1)
	f.srv.SetRef("heads/main", c2)

	got, err := f.client.OpenRevertPR(context.Background(), c1, "main", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Number != 0 || !strings.Contains(got.Skipped, "moved on to "+c2[:12]) {
		t.Fatalf("got %+v, want skipped because main moved on", got)
	}
	if _, ok := f.srv.Ref("heads/" + got.Branch); ok || len(f.srv.Pulls()) != 0 {
		t.Error("a branch or pull request was made")
	}
	if n := len(f.srv.Writes()); n != 0 {
		t.Errorf("%d writes, want none", n)
	}
}

func TestOpenRevertPRSkips(t *testing.T) {
	f := newFixture(t)
	c0, _ := f.history()
	f.srv.SetRef("heads/first", c0)
	tests := []struct {
		name, sha, base, want string
	}{
		{"root commit", c0, "first", "first commit"},
		{"no base", c0, "gone", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.client.OpenRevertPR(context.Background(), tt.sha, tt.base, "")
			if err != nil || !strings.Contains(got.Skipped, tt.want) {
				t.Fatalf("got %+v, %v; want skipped: %s", got, err, tt.want)
			}
		})
	}
}

func TestOpenRevertPRFinishesInterruptedCall(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	// An earlier call made the branch, then molt stopped.
	branch := RevertBranch(c1)
	f.srv.SetRef("heads/"+branch, c1)
	c2 := f.srv.AddCommit("docs", githubtest.TreeSHA("t2"), c1)
	f.srv.SetRef("heads/main", c2) // and main moved on since: the branch is still the revert

	got, err := f.client.OpenRevertPR(context.Background(), c1, "main", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Number == 0 || got.Existing {
		t.Fatalf("got %+v, want a pull request from the existing branch", got)
	}
	if len(f.srv.Pulls()) != 1 {
		t.Fatalf("%d pull requests", len(f.srv.Pulls()))
	}
}

func TestOpenRevertPRClosedIsNotReopened(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	n := f.srv.AddPull(githubtest.PullSeed{Title: "Revert", Head: RevertBranch(c1), Base: "main", HeadSHA: c1, State: "closed"})
	got, err := f.client.OpenRevertPR(context.Background(), c1, "main", "")
	if err != nil || got.Number != n || !got.Existing {
		t.Fatalf("got %+v, %v; want the closed #%d", got, err, n)
	}
}

func TestOpenRevertPRConcurrent(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	var wg sync.WaitGroup
	got := make([]Revert, 4)
	for i := range got {
		wg.Go(func() {
			r, err := f.client.OpenRevertPR(context.Background(), c1, "main", "")
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
	}
	wg.Wait()
	if n := len(f.srv.Pulls()); n != 1 {
		t.Fatalf("%d pull requests, want 1", n)
	}
	for _, r := range got {
		if r.Number != got[0].Number {
			t.Errorf("answers %+v: want one pull request", got)
		}
	}
}
