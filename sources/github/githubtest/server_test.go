package githubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gh "github.com/google/go-github/v60/github"
	"github.com/molt-dev/molt/sources/github/githubtest"
)

// client is go-github pointed at the server.
func client(t *testing.T, s *githubtest.Server, token string) *gh.Client {
	t.Helper()
	c := gh.NewClient(nil).WithAuthToken(token)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

func seed(s *githubtest.Server) (c0, c1 string, pr int) {
	c0 = s.AddCommit("initial", githubtest.TreeSHA("t0"))
	c1 = s.AddCommit("change", githubtest.TreeSHA("t1"), c0)
	s.SetRef("heads/main", c1)
	s.SetRef("heads/feature", c1)
	pr = s.AddPull(githubtest.PullSeed{Title: "feature", Head: "feature", Base: "main", HeadSHA: c1, Commits: []string{c1}})
	return c0, c1, pr
}

func TestAuthentication(t *testing.T) {
	s := githubtest.Start(t, githubtest.Options{Token: "right"})
	seed(s)
	tests := []struct {
		name, header string
		status       int
		message      string
	}{
		{"bearer", "Bearer right", 200, ""},
		{"token", "token right", 200, ""},
		{"wrong", "Bearer wrong", 401, "Bad credentials"},
		{"basic", "Basic cmlnaHQ=", 401, "Bad credentials"},
		{"missing", "", 401, "Requires authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.URL+"repos/octo-org/fleet/issues/1/comments", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 {
				return
			}
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body["message"] != tt.message || body["documentation_url"] == "" || body["status"] != "401" {
				t.Errorf("body %v", body)
			}
		})
	}
	// go-github reads it as GitHub's error.
	_, _, err := client(t, s, "wrong").Issues.ListComments(context.Background(), "octo-org", "fleet", 1, nil)
	var er *gh.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != 401 || er.Message != "Bad credentials" {
		t.Errorf("go-github: %v", err)
	}
}

func TestIssueComments(t *testing.T) {
	s := githubtest.Start(t, githubtest.Options{})
	_, _, pr := seed(s)
	c := client(t, s, s.Token())
	ctx := context.Background()
	for i := range 45 {
		s.AddComment(pr, "alice", fmt.Sprintf("c%d", i))
	}
	made, resp, err := c.Issues.CreateComment(ctx, "octo-org", "fleet", pr, &gh.IssueComment{Body: gh.String("hello")})
	if err != nil || resp.StatusCode != 201 {
		t.Fatal(err)
	}
	if made.GetBody() != "hello" || made.GetUser().GetLogin() != "molt-bot" || made.GetID() == 0 ||
		!strings.Contains(made.GetHTMLURL(), fmt.Sprintf("/pull/%d#issuecomment-%d", pr, made.GetID())) || made.GetCreatedAt().IsZero() {
		t.Errorf("created %+v", made)
	}
	edited, _, err := c.Issues.EditComment(ctx, "octo-org", "fleet", made.GetID(), &gh.IssueComment{Body: gh.String("bye")})
	if err != nil || edited.GetBody() != "bye" || edited.GetID() != made.GetID() {
		t.Fatalf("edited %+v, %v", edited, err)
	}

	// Paginated as GitHub does: 20 per page here, Link headers to follow.
	var all []*gh.IssueComment
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 20}}
	pages := 0
	for {
		list, resp, err := c.Issues.ListComments(ctx, "octo-org", "fleet", pr, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, list...)
		if resp.NextPage == 0 {
			if resp.LastPage != 0 || resp.PrevPage != pages-1 {
				t.Errorf("last page: %+v", resp)
			}
			break
		}
		opts.Page = resp.NextPage
	}
	if len(all) != 46 || pages != 3 || all[45].GetBody() != "bye" {
		t.Errorf("%d comments in %d pages", len(all), pages)
	}

	// GitHub's limits.
	_, _, err = c.Issues.CreateComment(ctx, "octo-org", "fleet", pr, &gh.IssueComment{Body: gh.String(strings.Repeat("x", 65537))})
	if er := (*gh.ErrorResponse)(nil); !errors.As(err, &er) || er.Response.StatusCode != 422 || !strings.Contains(er.Errors[0].Message, "too long") {
		t.Errorf("too long: %v", err)
	}
	_, _, err = c.Issues.CreateComment(ctx, "octo-org", "fleet", 99, &gh.IssueComment{Body: gh.String("x")})
	if er := (*gh.ErrorResponse)(nil); !errors.As(err, &er) || er.Response.StatusCode != 404 {
		t.Errorf("unknown pull request: %v", err)
	}
	_, _, err = c.Issues.ListComments(ctx, "someone", "else", pr, nil)
	if er := (*gh.ErrorResponse)(nil); !errors.As(err, &er) || er.Response.StatusCode != 404 {
		t.Errorf("another repository: %v", err)
	}
	if got := s.Comments(pr); len(got) != 46 || got[45].Body != "bye" {
		t.Errorf("state: %d comments", len(got))
	}
}

func TestStatuses(t *testing.T) {
	s := githubtest.Start(t, githubtest.Options{})
	_, c1, _ := seed(s)
	c := client(t, s, s.Token())
	ctx := context.Background()
	for _, st := range []string{"pending", "success"} {
		got, _, err := c.Repositories.CreateStatus(ctx, "octo-org", "fleet", c1, &gh.RepoStatus{
			State: gh.String(st), Context: gh.String("molt/deploy"), Description: gh.String("d " + st), TargetURL: gh.String("https://x/" + st)})
		if err != nil || got.GetState() != st || got.GetCreator().GetLogin() != "molt-bot" || got.GetID() == 0 {
			t.Fatalf("create %s: %+v, %v", st, got, err)
		}
	}
	list, _, err := c.Repositories.ListStatuses(ctx, "octo-org", "fleet", c1, nil)
	if err != nil || len(list) != 2 || list[0].GetState() != "success" || list[1].GetState() != "pending" {
		t.Fatalf("list (newest first): %+v, %v", list, err)
	}
	if byBranch, _, _ := c.Repositories.ListStatuses(ctx, "octo-org", "fleet", "main", nil); len(byBranch) != 2 {
		t.Errorf("by branch: %d", len(byBranch))
	}
	if got := s.Statuses(c1); got[0].State != "pending" || got[1].State != "success" || got[1].TargetURL != "https://x/success" {
		t.Errorf("state (oldest first): %+v", got)
	}
	bad := []*gh.RepoStatus{
		{State: gh.String("done")},
		{State: gh.String("success"), Description: gh.String(strings.Repeat("é", 141))},
	}
	for _, st := range bad {
		if _, _, err := c.Repositories.CreateStatus(ctx, "octo-org", "fleet", c1, st); err == nil {
			t.Errorf("%+v accepted", st)
		}
	}
	if _, _, err := c.Repositories.CreateStatus(ctx, "octo-org", "fleet", strings.Repeat("0", 40), &gh.RepoStatus{State: gh.String("success")}); err == nil {
		t.Error("status on an unknown commit accepted")
	}
}

func TestPullsAndGitData(t *testing.T) {
	s := githubtest.Start(t, githubtest.Options{})
	c0, c1, pr := seed(s)
	c := client(t, s, s.Token())
	ctx := context.Background()

	prs, _, err := c.PullRequests.ListPullRequestsWithCommit(ctx, "octo-org", "fleet", c1, nil)
	if err != nil || len(prs) != 1 || prs[0].GetNumber() != pr || prs[0].GetHead().GetSHA() != c1 || prs[0].GetBase().GetRef() != "main" {
		t.Fatalf("pulls with commit: %+v, %v", prs, err)
	}
	if prs, _, _ := c.PullRequests.ListPullRequestsWithCommit(ctx, "octo-org", "fleet", c0, nil); len(prs) != 0 {
		t.Errorf("pulls with %s: %d", c0, len(prs))
	}

	ref, _, err := c.Git.GetRef(ctx, "octo-org", "fleet", "heads/main")
	if err != nil || ref.GetRef() != "refs/heads/main" || ref.GetObject().GetSHA() != c1 || ref.GetObject().GetType() != "commit" {
		t.Fatalf("get ref: %+v, %v", ref, err)
	}
	if _, _, err := c.Git.GetRef(ctx, "octo-org", "fleet", "heads/nope"); err == nil {
		t.Error("missing ref found")
	}
	commit, _, err := c.Git.GetCommit(ctx, "octo-org", "fleet", c1)
	if err != nil || commit.GetTree().GetSHA() != githubtest.TreeSHA("t1") || len(commit.Parents) != 1 || commit.Parents[0].GetSHA() != c0 {
		t.Fatalf("get commit: %+v, %v", commit, err)
	}
	made, _, err := c.Git.CreateCommit(ctx, "octo-org", "fleet", &gh.Commit{
		Message: gh.String("revert"), Tree: &gh.Tree{SHA: gh.String(githubtest.TreeSHA("t0"))}, Parents: []*gh.Commit{{SHA: gh.String(c1)}}}, nil)
	if err != nil || made.GetSHA() == "" || made.GetMessage() != "revert" {
		t.Fatalf("create commit: %+v, %v", made, err)
	}
	if _, _, err := c.Git.CreateCommit(ctx, "octo-org", "fleet", &gh.Commit{
		Message: gh.String("x"), Tree: &gh.Tree{SHA: gh.String("feed")}}, nil); err == nil {
		t.Error("commit with an unknown tree accepted")
	}
	newRef := &gh.Reference{Ref: gh.String("refs/heads/revert"), Object: &gh.GitObject{SHA: made.SHA}}
	if _, _, err := c.Git.CreateRef(ctx, "octo-org", "fleet", newRef); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Git.CreateRef(ctx, "octo-org", "fleet", newRef)
	if er := (*gh.ErrorResponse)(nil); !errors.As(err, &er) || er.Response.StatusCode != 422 || er.Message != "Reference already exists" {
		t.Errorf("second ref: %v", err)
	}

	opened, _, err := c.PullRequests.Create(ctx, "octo-org", "fleet", &gh.NewPullRequest{
		Title: gh.String("Revert"), Head: gh.String("revert"), Base: gh.String("main"), Body: gh.String("because")})
	if err != nil || opened.GetNumber() != pr+1 || opened.GetState() != "open" || opened.GetHead().GetSHA() != made.GetSHA() ||
		opened.GetHTMLURL() != fmt.Sprintf("%socto-org/fleet/pull/%d", s.URL, pr+1) {
		t.Fatalf("create pull: %+v, %v", opened, err)
	}
	_, _, err = c.PullRequests.Create(ctx, "octo-org", "fleet", &gh.NewPullRequest{
		Title: gh.String("Again"), Head: gh.String("octo-org:revert"), Base: gh.String("main")})
	if er := (*gh.ErrorResponse)(nil); !errors.As(err, &er) || er.Response.StatusCode != 422 || !strings.Contains(er.Errors[0].Message, "already exists") {
		t.Errorf("second pull: %v", err)
	}
	list, _, err := c.PullRequests.List(ctx, "octo-org", "fleet", &gh.PullRequestListOptions{State: "all", Head: "octo-org:revert"})
	if err != nil || len(list) != 1 || list[0].GetNumber() != opened.GetNumber() {
		t.Errorf("list by head: %+v, %v", list, err)
	}
	if list, _, _ := c.PullRequests.List(ctx, "octo-org", "fleet", nil); len(list) != 2 {
		t.Errorf("open pulls: %d", len(list))
	}
}

func TestFaults(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock.Store(&start)
	s := githubtest.Start(t, githubtest.Options{Now: func() time.Time { return *clock.Load() }})
	_, c1, pr := seed(s)
	ctx := context.Background()
	list := func() error {
		// A fresh client each time: go-github remembers limits.
		_, _, err := client(t, s, s.Token()).Issues.ListComments(ctx, "octo-org", "fleet", pr, nil)
		return err
	}

	s.Inject(1, githubtest.SecondaryRateLimit(30*time.Second))
	var abuse *gh.AbuseRateLimitError
	if err := list(); !errors.As(err, &abuse) || abuse.RetryAfter == nil || *abuse.RetryAfter != 30*time.Second {
		t.Errorf("secondary: %v", err)
	}
	s.Inject(1, githubtest.SecondaryRateLimit(0))
	if err := list(); !errors.As(err, &abuse) || abuse.RetryAfter != nil && *abuse.RetryAfter > 0 {
		t.Errorf("secondary without Retry-After: %v", err)
	}
	s.Inject(1, githubtest.TooManyRequests(5*time.Second))
	var er *gh.ErrorResponse
	if err := list(); !errors.As(err, &er) || er.Response.StatusCode != 429 || er.Response.Header.Get("Retry-After") != "5" {
		t.Errorf("429: %v", err)
	}
	s.Inject(2, githubtest.ServerError(502))
	for range 2 {
		if err := list(); !errors.As(err, &er) || er.Response.StatusCode != 502 {
			t.Errorf("502: %v", err)
		}
	}
	if err := list(); err != nil {
		t.Errorf("after the faults: %v", err)
	}

	// Only POSTs, and Late: the comment lands although the answer is 500.
	s.Inject(1, githubtest.Fault{Status: 500, Late: true, Method: "POST"})
	if err := list(); err != nil {
		t.Errorf("a GET took a POST fault: %v", err)
	}
	_, _, err := client(t, s, s.Token()).Issues.CreateComment(ctx, "octo-org", "fleet", pr, &gh.IssueComment{Body: gh.String("late")})
	if !errors.As(err, &er) || er.Response.StatusCode != 500 || len(s.Comments(pr)) != 1 {
		t.Errorf("late fault: %v, %d comments", err, len(s.Comments(pr)))
	}

	reset := start.Add(10 * time.Minute)
	s.ExhaustRateLimit(reset)
	var rle *gh.RateLimitError
	if err := list(); !errors.As(err, &rle) || rle.Rate.Remaining != 0 || !rle.Rate.Reset.Time.Equal(reset) {
		t.Errorf("primary: %v", err)
	}
	clock.Store(&reset)
	if err := list(); err != nil {
		t.Errorf("after the reset: %v", err)
	}

	// Slow: the answer comes after the delay; a client that gives up is
	// let go at once.
	s.Inject(1, githubtest.Slow(time.Minute))
	ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _, err = client(t, s, s.Token()).Repositories.CreateStatus(ctx2, "octo-org", "fleet", c1, &gh.RepoStatus{State: gh.String("success")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow: %v", err)
	}

	reqs := s.Requests()
	if len(reqs) != 11 || !reqs[0].Time.Equal(start) || reqs[0].Status != 403 || !reqs[10].Time.Equal(reset) {
		t.Errorf("%d requests recorded; first %+v", len(reqs), reqs[0])
	}
	if w := s.Writes(); len(w) != 2 || w[0].Method != "POST" {
		t.Errorf("writes %+v", w)
	}
}

func TestEnterprisePrefixAndRateHeaders(t *testing.T) {
	s := githubtest.Start(t, githubtest.Options{})
	_, _, pr := seed(s)
	req, _ := http.NewRequest("GET", fmt.Sprintf("%sapi/v3/repos/octo-org/fleet/issues/%d/comments", s.URL, pr), nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "[]\n" {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Used", "X-GitHub-Request-Id"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if r := s.Requests(); r[0].Path != fmt.Sprintf("/repos/octo-org/fleet/issues/%d/comments", pr) {
		t.Errorf("recorded path %q", r[0].Path)
	}
}
