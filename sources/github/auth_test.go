package github

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

// syncBuffer is a log sink safe for the Client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTokenFileFixture is a test GitHub and a Client that reads its token
// from a file holding content.
func newTokenFileFixture(t *testing.T, content string) (*fixture, string, *syncBuffer) {
	t.Helper()
	clock := newFakeClock()
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now, Token: "ghp_right"})
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	c, err := NewClient(ClientOptions{TokenFile: path, APIURL: srv.URL, Owner: srv.Owner(), Repo: srv.Repo(), Clock: clock,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{clock: clock, srv: srv, client: c}, path, logs
}

// rewrite replaces the file's content with a newer modification time.
func rewrite(t *testing.T, path, content string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(age)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

func statusLines(srv *githubtest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		out = append(out, r.Method+" "+http.StatusText(r.Status))
	}
	return out
}

// TestTokenFileRotated: a token rotated in the file is used once the
// file is looked at again (a few seconds later), without a restart and
// without a refused request.
func TestTokenFileRotated(t *testing.T) {
	f, path, logs := newTokenFileFixture(t, "ghp_wrong\n")
	_, c1 := f.history()
	ctx := context.Background()
	err := f.client.SetStatus(ctx, c1, ContextPlan, StatePending, "", "")
	if !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("with the old token: %v, want 401", err)
	}
	rewrite(t, path, "ghp_right\n", time.Second) // same size, newer
	f.clock.Advance(TokenFileCheckInterval)
	before := len(f.srv.Requests())
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); err != nil {
		t.Fatal(err)
	}
	if got := statusLines(f.srv)[before:]; strings.Join(got, ",") != "POST Created" {
		t.Errorf("requests %v, want one, accepted", got)
	}
	if !strings.Contains(logs.String(), "github token file changed") {
		t.Errorf("no log of the change:\n%s", logs)
	}
	if strings.Contains(logs.String(), "ghp_") {
		t.Errorf("the log shows a token:\n%s", logs)
	}
}

// TestTokenFileRereadAfter401: a 401 makes the client read the file at
// once, and send the request again when the token there is another.
func TestTokenFileRereadAfter401(t *testing.T) {
	f, path, _ := newTokenFileFixture(t, "ghp_stale")
	_, c1 := f.history()
	rewrite(t, path, "ghp_right", 0) // within the check interval
	if err := f.client.SetStatus(context.Background(), c1, ContextPlan, StateSuccess, "", ""); err != nil {
		t.Fatal(err)
	}
	if got := statusLines(f.srv); strings.Join(got, ",") != "POST Unauthorized,POST Created" {
		t.Errorf("requests %v, want refused, then accepted", got)
	}
	if n := len(f.srv.Statuses(c1)); n != 1 {
		t.Errorf("%d statuses, want 1", n)
	}
}

// TestTokenFileGone: a token file that disappears (or is emptied) keeps
// the last token in use, and says so once.
func TestTokenFileGone(t *testing.T) {
	f, path, logs := newTokenFileFixture(t, "ghp_right")
	_, c1 := f.history()
	ctx := context.Background()
	for i, edit := range []func(){
		func() { rewrite(t, path, " \n", time.Second) },
		func() { os.Remove(path) },
	} {
		edit()
		for range 2 {
			f.clock.Advance(TokenFileCheckInterval)
			if err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); err != nil {
				t.Fatalf("edit %d: %v", i, err)
			}
		}
	}
	if n := strings.Count(logs.String(), "github token file cannot be read"); n != 2 {
		t.Errorf("%d warnings, want one per cause:\n%s", n, logs)
	}
}

func TestNewClientTokenFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tt := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{empty, "token is empty"},
	} {
		_, err := NewClient(ClientOptions{TokenFile: tt.path, Owner: "o", Repo: "r"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewClient(TokenFile: %s) = %v, want an error with %q", tt.path, err, tt.want)
		}
	}
}

// TestCredentialsStayOnTheAPIHost: a redirect to another host (or
// scheme, or port) is not followed with the token.
func TestCredentialsStayOnTheAPIHost(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	c, err := NewClient(ClientOptions{Token: []byte("ghp_secret"), APIURL: api.URL, Owner: "o", Repo: "r", Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetStatus(context.Background(), strings.Repeat("a", 40), ContextPlan, StateSuccess, "", "")
	if err == nil || !strings.Contains(err.Error(), "not sending credentials to http://"+strings.TrimPrefix(other.URL, "http://")) {
		t.Fatalf("err = %v, want the redirect refused", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

// TestRefusalsNamePermission: GitHub refusing a report for its
// credentials is an error that names the permission the report needs,
// counted by permission and answer, and the Queue's drop says it too.
func TestRefusalsNamePermission(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 7, func(a *githubtest.App) {
		a.Permissions = map[string]string{"issues": "write", "pull_requests": "write"} // no statuses, no contents
	})
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1, Commits: []string{c1}, State: "closed", Merged: true, MergeCommit: c1})
	ctx := context.Background()

	err := f.client.Deliver(ctx, Report{Status: &Status{SHA: c1, Context: ContextDeploy, State: StateFailure}})
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || re.Permission != PermStatuses || !Permanent(err) {
		t.Fatalf("err = %v, want a permanent 403 for statuses:write", err)
	}
	if !strings.Contains(err.Error(), "Resource not accessible by integration") || !strings.Contains(err.Error(), `"Commit statuses: Read and write"`) {
		t.Errorf("error %q does not say what to grant", err)
	}

	// A revert needs contents: refused, the outcome comment still goes.
	err = f.client.Deliver(ctx, Report{Outcome: &Outcome{SHA: c1, Kind: OutcomeFailure, Reason: "web: unhealthy", RevertBase: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := f.srv.Comments(pr)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, "GitHub refused it (403 Resource not accessible by integration)") {
		t.Errorf("comments %+v", cs)
	}

	want := map[Permission]map[int]int64{PermStatuses: {403: 1}, PermRevert: {403: 1}}
	for _, r := range f.client.Refusals() {
		if r.Count != want[r.Permission][r.Status] {
			t.Errorf("refusals of %s with %d: %d, want %d", r.Permission, r.Status, r.Count, want[r.Permission][r.Status])
		}
	}
	if n := len(f.client.Refusals()); n != 9 {
		t.Errorf("%d series, want 3 permissions × 3 answers", n)
	}

	// Through the Queue: the drop names the permission.
	logs := &syncBuffer{}
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, func(o *QueueOptions) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	startQueue(t, q)
	q.Enqueue(Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateSuccess}})
	waitFor(t, "the drop", func() bool { return q.Counts().DroppedRejected == 1 })
	if line := logs.String(); !strings.Contains(line, "github report dropped") || !strings.Contains(line, "needs=statuses:write") || !strings.Contains(line, "status=403") {
		t.Errorf("drop log line lacks the permission:\n%s", line)
	}
}

// TestRefused404: a token that cannot see the repository is answered
// 404; the error says it may be either.
func TestRefused404(t *testing.T) {
	clock := newFakeClock()
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now})
	c, err := NewClient(ClientOptions{Token: []byte(srv.Token()), APIURL: srv.URL, Owner: "someone-else", Repo: srv.Repo(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Deliver(context.Background(), Report{Reply: &Reply{PR: 1, Delivery: "d-1", Body: "hi"}})
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusNotFound || re.Permission != PermComments {
		t.Fatalf("err = %v, want a 404 for pull_requests:write", err)
	}
	if !strings.Contains(err.Error(), "cannot see the repository") {
		t.Errorf("error %q", err)
	}
}
