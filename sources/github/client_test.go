package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

func TestClientOptionsValidate(t *testing.T) {
	ok := ClientOptions{Token: []byte("s3cr3t\n"), Owner: "octo-org", Repo: "fleet"}
	tests := []struct {
		name string
		edit func(*ClientOptions)
		want string // "" for valid
	}{
		{"valid", func(*ClientOptions) {}, ""},
		{"ghe", func(o *ClientOptions) { o.APIURL = "https://ghe.example.com/api/v3" }, ""},
		{"no token", func(o *ClientOptions) { o.Token = nil }, "token is required"},
		{"blank token", func(o *ClientOptions) { o.Token = []byte(" \n") }, "token is required"},
		{"token with space", func(o *ClientOptions) { o.Token = []byte("s3cr3t s3cr3t") }, "white space"},
		{"no owner", func(o *ClientOptions) { o.Owner = "" }, "not owner/name"},
		{"bad repo", func(o *ClientOptions) { o.Repo = "a/b" }, "not owner/name"},
		{"bad api url", func(o *ClientOptions) { o.APIURL = "ftp://x/" }, "api url"},
		{"api url with query", func(o *ClientOptions) { o.APIURL = "https://x/?a=b" }, "api url"},
		{"negative interval", func(o *ClientOptions) { o.MinWriteInterval = -1 }, "negative"},
		{"http to another host", func(o *ClientOptions) { o.APIURL = "http://ghe.example.com/api/v3/" }, "clear text"},
		{"http to this machine", func(o *ClientOptions) { o.APIURL = "http://127.0.0.1:9999/" }, ""},
		{"token file", func(o *ClientOptions) { o.Token, o.TokenFile = nil, "/run/secrets/gh" }, ""},
		{"token and token file", func(o *ClientOptions) { o.TokenFile = "/run/secrets/gh" }, "one of"},
		{"token and app", func(o *ClientOptions) { o.App = &AppAuth{ID: 1, Key: testKeys()[0]} }, "one of"},
		{"app", func(o *ClientOptions) { o.Token, o.App = nil, &AppAuth{ID: 1, Key: testKeys()[0]} }, ""},
		{"app without key", func(o *ClientOptions) { o.Token, o.App = nil, &AppAuth{ID: 1} }, "private key is required"},
		{"app without id", func(o *ClientOptions) { o.Token, o.App = nil, &AppAuth{Key: testKeys()[0]} }, "app id is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			err := o.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func TestUpsertPlanCommentKeepsOneComment(t *testing.T) {
	tests := []struct {
		name    string
		before  int  // comments by others before molt's
		seeded  bool // molt's comment exists already
		after   int  // comments by others after it
		wantNew bool
	}{
		{"first comment on a quiet pull request", 0, false, 0, true},
		{"found among others on the second page", 120, true, 30, false},
		{"created past several pages", 230, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, c1 := f.history()
			pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
			for i := range tt.before {
				f.srv.AddComment(pr, "alice", fmt.Sprintf("comment %d", i))
			}
			// Quoting the marker is not having it at the top.
			f.srv.AddComment(pr, "bob", "> "+PlanMarker+"\n> old plan, quoted")
			var seededID int64
			if tt.seeded {
				seededID = f.srv.AddComment(pr, "molt-bot", PlanMarker+"\nold plan")
			}
			for i := range tt.after {
				f.srv.AddComment(pr, "carol", fmt.Sprintf("later %d", i))
			}
			total := len(f.srv.Comments(pr))
			if tt.wantNew {
				total++
			}

			var ids []int64
			for i := range 5 {
				body := PlanComment(PlanInput{PR: pr, SHA: c1, Repo: f.client.Repo(), Error: fmt.Sprintf("attempt %d", i)})
				got, err := f.client.UpsertPlanComment(context.Background(), pr, body)
				if err != nil {
					t.Fatalf("UpsertPlanComment #%d: %v", i, err)
				}
				want := CommentEdited
				if i == 0 && tt.wantNew {
					want = CommentCreated
				}
				if got.Action != want {
					t.Errorf("call %d: action %s, want %s", i, got.Action, want)
				}
				ids = append(ids, got.ID)
			}
			for _, id := range ids[1:] {
				if id != ids[0] {
					t.Fatalf("comment ids %v: want one comment", ids)
				}
			}
			if tt.seeded && ids[0] != seededID {
				t.Errorf("edited comment %d, want the existing %d", ids[0], seededID)
			}
			if total > 100 && !requested(f.srv, "page=2") {
				t.Error("the second page of comments was never read")
			}
			cs := f.srv.Comments(pr)
			if len(cs) != total {
				t.Errorf("%d comments, want %d", len(cs), total)
			}
			mine := withMarker(cs, PlanMarker)
			if len(mine) != 1 || !strings.Contains(mine[0].Body, "attempt 4") {
				t.Fatalf("plan comments %+v: want one, with the last body", mine)
			}

			// The same body again changes nothing.
			writes := len(f.srv.Writes())
			got, err := f.client.UpsertPlanComment(context.Background(), pr, mine[0].Body)
			if err != nil || got.Action != CommentUnchanged {
				t.Fatalf("same body: %+v, %v; want unchanged", got, err)
			}
			if n := len(f.srv.Writes()); n != writes {
				t.Errorf("same body wrote %d times", n-writes)
			}
		})
	}
}

func TestUpsertPlanCommentAddsMarker(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	for _, body := range []string{"plain body", "plain body, edited"} {
		if _, err := f.client.UpsertPlanComment(context.Background(), pr, body); err != nil {
			t.Fatal(err)
		}
	}
	cs := f.srv.Comments(pr)
	if len(cs) != 1 || cs[0].Body != PlanMarker+"\nplain body, edited" {
		t.Fatalf("comments %+v", cs)
	}
}

func TestSetStatusTransitions(t *testing.T) {
	tests := []struct {
		name  string
		final string
	}{
		{"pending then success", StateSuccess},
		{"pending then failure", StateFailure},
		{"pending then error", StateError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, c1 := f.history()
			ctx := context.Background()
			if err := f.client.SetStatus(ctx, c1, ContextDeploy, StatePending, "rolling out web", "https://molt.example/runs/1"); err != nil {
				t.Fatal(err)
			}
			if err := f.client.SetStatus(ctx, c1, ContextDeploy, tt.final, "done: "+tt.final, ""); err != nil {
				t.Fatal(err)
			}
			got := f.srv.Statuses(c1)
			if len(got) != 2 || got[0].State != StatePending || got[1].State != tt.final {
				t.Fatalf("statuses %+v: want pending, then %s", got, tt.final)
			}
			if got[0].Context != ContextDeploy || got[0].TargetURL != "https://molt.example/runs/1" || got[1].TargetURL != "" {
				t.Errorf("statuses %+v", got)
			}
		})
	}
}

func TestSetStatusCutsDescription(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	long := strings.Repeat("é", 200) // two bytes each: cut by characters
	if err := f.client.SetStatus(context.Background(), c1, ContextPlan, StateSuccess, long, ""); err != nil {
		t.Fatal(err)
	}
	d := f.srv.Statuses(c1)[0].Description
	if utf8.RuneCountInString(d) != 140 || !strings.HasSuffix(d, "…") {
		t.Fatalf("description %q (%d characters): want 140 ending in …", d, utf8.RuneCountInString(d))
	}
}

func TestSetStatusRefusesBadState(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	err := f.client.SetStatus(context.Background(), c1, ContextPlan, "done", "", "")
	if !Permanent(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if len(f.srv.Requests()) != 0 {
		t.Errorf("sent %d requests", len(f.srv.Requests()))
	}
}

func TestCommentOutcomeOncePerPullRequest(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	merged := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1, State: "closed", Merged: true, MergeCommit: c1})
	other := f.srv.AddPull(githubtest.PullSeed{Title: "also", Head: "also", Base: "release", Commits: []string{c1}})
	unrelated := f.srv.AddPull(githubtest.PullSeed{Title: "unrelated", Head: "x", Base: "main", HeadSHA: "f00"})
	f.srv.AddComment(merged, "alice", "LGTM")

	ctx := context.Background()
	body := OutcomeComment(Outcome{SHA: c1, Kind: OutcomeSuccess, Repo: f.client.Repo()})
	done, err := f.client.CommentOutcome(ctx, c1, body)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(done) != fmt.Sprint([]int{merged, other}) {
		t.Errorf("commented on %v, want %v", done, []int{merged, other})
	}
	again, err := f.client.CommentOutcome(ctx, c1, body)
	if err != nil || len(again) != 0 {
		t.Fatalf("second call commented on %v (%v), want none", again, err)
	}
	marker := OutcomeMarker(c1, OutcomeSuccess)
	for _, pr := range []int{merged, other} {
		if n := len(withMarker(f.srv.Comments(pr), marker)); n != 1 {
			t.Errorf("#%d has %d outcome comments, want 1", pr, n)
		}
	}
	if n := len(f.srv.Comments(unrelated)); n != 0 {
		t.Errorf("unrelated #%d got %d comments", unrelated, n)
	}

	// A failure of the same commit is another outcome: one more comment.
	failBody := OutcomeComment(Outcome{SHA: c1, Kind: OutcomeFailure, Reason: "health", Repo: f.client.Repo()})
	if done, err := f.client.CommentOutcome(ctx, c1, failBody); err != nil || len(done) != 2 {
		t.Fatalf("failure outcome: commented on %v (%v), want 2", done, err)
	}
}

func TestCommentOutcomeNeedsMarker(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	other := OutcomeComment(Outcome{SHA: strings.Repeat("a", 40), Kind: OutcomeSuccess})
	for _, body := range []string{"no marker", other} {
		if _, err := f.client.CommentOutcome(context.Background(), c1, body); !Permanent(err) {
			t.Errorf("CommentOutcome(%.20q) = %v, want a permanent error", body, err)
		}
	}
}

func TestClientWrongTokenIsPermanent(t *testing.T) {
	clock := newFakeClock()
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now})
	c, err := NewClient(ClientOptions{Token: []byte("wrong"), APIURL: srv.URL, Owner: srv.Owner(), Repo: srv.Repo(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	_, c1 := (&fixture{srv: srv}).history()
	err = c.SetStatus(context.Background(), c1, ContextPlan, StatePending, "", "")
	if !Permanent(err) || !isStatus(err, http.StatusUnauthorized) || !strings.Contains(err.Error(), "Bad credentials") {
		t.Fatalf("err = %v, want a permanent 401 Bad credentials", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q shows the token", err)
	}
}

func TestClientEnterpriseURL(t *testing.T) {
	clock := newFakeClock()
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now})
	c, err := NewClient(ClientOptions{Token: []byte(srv.Token()), APIURL: srv.URL + "api/v3", Owner: srv.Owner(), Repo: srv.Repo(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Repo().WebURL; got != srv.URL {
		t.Errorf("web URL %q, want %q", got, srv.URL)
	}
	_, c1 := (&fixture{srv: srv}).history()
	if err := c.SetStatus(context.Background(), c1, ContextPlan, StateSuccess, "", ""); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests(); len(r) != 1 || r[0].Path != "/repos/octo-org/fleet/statuses/"+c1 {
		t.Errorf("requests %+v", r)
	}
}

func TestPermanent(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	ctx := context.Background()
	tests := []struct {
		name   string
		fault  githubtest.Fault
		want   bool
		status int
	}{
		{"500", githubtest.ServerError(500), false, 500},
		{"502", githubtest.ServerError(502), false, 502},
		{"404", githubtest.ServerError(404), true, 404},
		{"409", githubtest.ServerError(409), false, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.srv.Inject(1, tt.fault)
			err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", "")
			if err == nil || Permanent(err) != tt.want || !isStatus(err, tt.status) {
				t.Fatalf("err = %v, Permanent = %v, want %v", err, Permanent(err), tt.want)
			}
		})
	}
	if Permanent(context.DeadlineExceeded) || Permanent(&LimitedError{}) || !Permanent(fmt.Errorf("x: %w", errInvalidReport)) {
		t.Error("Permanent misclassifies")
	}
	if Permanent(errors.New("connection refused")) {
		t.Error("a network error is not permanent")
	}
}

// requested reports whether a request's query had q in it.
func requested(srv *githubtest.Server, q string) bool {
	for _, r := range srv.Requests() {
		if strings.Contains(r.Query, q) {
			return true
		}
	}
	return false
}
