package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/github"
)

const commentRevision = "main@sha1:0123456789abcdef0123456789abcdef01234567"

func commentEvent(pr int, author, action, service string) github.Event {
	return github.Event{Kind: github.KindComment, Name: "issue_comment", Delivery: "d-1", Repo: "acme/fleet",
		PRNumber: pr, CommentAction: "created", CommentID: 7, Author: author,
		Command: github.Command{Action: action, Service: service}}
}

func TestCommentDecide(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	paused := pausedRollout{fleet: "shop", revision: commentRevision, paused: map[string]string{"web": "hweb", "api": "hapi"}}
	decision := func(service, hash string, action reconciler.Action) reconciler.Decision {
		return reconciler.Decision{Fleet: "shop", Service: service, Action: action, Hash: hash, By: "github:alice", At: now.UTC()}
	}
	tests := []struct {
		name   string
		in     commentInput
		record []reconciler.Decision
		reply  string
	}{
		{
			name:  "author not allowed",
			in:    commentInput{ev: commentEvent(4, "mallory", "promote", "web"), last: paused, checked: true, prs: []int{4}},
			reply: "@mallory is not allowed to /molt promote here (ask someone named by --github-allow)",
		},
		{
			name:  "author not allowed to abort",
			in:    commentInput{ev: commentEvent(4, "mallory", "abort", ""), last: paused},
			reply: "@mallory is not allowed to /molt abort here (ask someone named by --github-allow)",
		},
		{
			name:  "nothing paused",
			in:    commentInput{ev: commentEvent(4, "alice", "promote", "web"), allowed: true, last: pausedRollout{fleet: "shop", revision: commentRevision}},
			reply: "@alice: there is no paused rollout from this pull request (nothing is paused)",
		},
		{
			name:  "no outcome yet",
			in:    commentInput{ev: commentEvent(4, "alice", "promote", "web"), allowed: true},
			reply: "@alice: there is no paused rollout from this pull request (nothing is paused)",
		},
		{
			name:  "another pull request",
			in:    commentInput{ev: commentEvent(5, "alice", "promote", "web"), allowed: true, last: paused, checked: true, prs: []int{4}},
			reply: "@alice: there is no paused rollout from this pull request (the paused rollout is of main@sha1:0123456789ab, from #4)",
		},
		{
			name:  "a revision of no pull request",
			in:    commentInput{ev: commentEvent(5, "alice", "abort", ""), allowed: true, last: paused, checked: true},
			reply: "@alice: there is no paused rollout from this pull request (the paused rollout is of main@sha1:0123456789ab, from no pull request)",
		},
		{
			name:  "pull requests unknown",
			in:    commentInput{ev: commentEvent(4, "alice", "promote", "web"), allowed: true, last: paused, checked: true, prsErr: errors.New("502")},
			reply: "@alice: molt could not read which pull request the paused rollout came from (GitHub answered with an error); nothing was recorded, try again",
		},
		{
			name:  "pull requests not checked",
			in:    commentInput{ev: commentEvent(4, "alice", "promote", "web"), allowed: true, last: paused},
			reply: "@alice: molt cannot tell which pull request the paused rollout came from (it has no GitHub token); nothing was recorded",
		},
		{
			name:  "a service that is not paused",
			in:    commentInput{ev: commentEvent(4, "alice", "promote", "worker"), allowed: true, last: paused, checked: true, prs: []int{3, 4}},
			reply: "@alice: worker has no rollout paused from this pull request (paused: api, web)",
		},
		{
			name:   "promote one service",
			in:     commentInput{ev: commentEvent(4, "alice", "promote", "web"), allowed: true, last: paused, checked: true, prs: []int{3, 4}},
			record: []reconciler.Decision{decision("web", "hweb", reconciler.ActionPromote)},
			reply:  "promoted web (by @alice): molt goes on with the rollout",
		},
		{
			name: "abort a rollout under way",
			in: commentInput{ev: commentEvent(4, "alice", "abort", "web"), allowed: true, checked: true, prs: []int{4},
				last: pausedRollout{fleet: "shop", revision: commentRevision, rolling: map[string]string{"web": "h2"}}},
			record: []reconciler.Decision{decision("web", "h2", reconciler.ActionAbort)},
			reply:  "aborting web (by @alice): molt rolls the rollout back",
		},
		{
			name: "promote does not act on a rollout under way",
			in: commentInput{ev: commentEvent(4, "alice", "promote", "web"), allowed: true, checked: true, prs: []int{4},
				last: pausedRollout{fleet: "shop", revision: commentRevision, rolling: map[string]string{"web": "h2"}}},
			reply: "@alice: there is no paused rollout from this pull request (nothing is paused)",
		},
		{
			name: "abort every paused service",
			in:   commentInput{ev: commentEvent(4, "alice", "abort", ""), allowed: true, last: paused, checked: true, prs: []int{4}},
			record: []reconciler.Decision{decision("api", "hapi", reconciler.ActionAbort),
				decision("web", "hweb", reconciler.ActionAbort)},
			reply: "aborting api, web (by @alice): molt rolls the rollout back",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideComment(tt.in, now)
			if diff := cmp.Diff(tt.record, d.record); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			if d.reply != tt.reply {
				t.Errorf("reply:\n got %q\nwant %q", d.reply, tt.reply)
			}
		})
	}
}

func TestCommentAllowList(t *testing.T) {
	got, err := parseAllowList([]string{"Alice, bob", "@carol", "dependabot[bot]", ""})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Alice", "bob", "carol", "dependabot[bot]"}, got); diff != "" {
		t.Errorf("logins (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"al ice", "-alice", "alice-", "al--ice", "a/b", strings.Repeat("a", 40)} {
		if _, err := parseAllowList([]string{bad}); err == nil {
			t.Errorf("parseAllowList(%q) accepted it", bad)
		}
	}
}

// commentFakes stand for GitHub and the loop around a commentHandler.
type commentFakes struct {
	mu       sync.Mutex
	reports  []github.Report
	triggers []string
	asked    []string
	prs      []int
	err      error
}

func (f *commentFakes) Enqueue(r github.Report) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, r)
}

func (f *commentFakes) PullsOf(_ context.Context, sha string) ([]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, sha)
	return f.prs, f.err
}

func (f *commentFakes) trigger(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.triggers = append(f.triggers, reason)
}

func TestCommentHandler(t *testing.T) {
	state := t.TempDir()
	decisions := reconciler.NewDecisions(state, nil)
	f := &commentFakes{prs: []int{4}}
	h := newCommentHandler([]string{"Alice"}, decisions, f, f, f.trigger, slog.New(slog.DiscardHandler))
	ctx := context.Background()

	// Before any outcome nothing is paused; GitHub is not even asked.
	h.handle(ctx, commentEvent(4, "ALICE", "promote", "web"))
	if rec, _ := decisions.For("shop"); len(rec) != 0 || len(f.asked) != 0 || len(f.triggers) != 0 {
		t.Fatalf("nothing paused, yet: recorded %v, asked %v, triggered %v", rec, f.asked, f.triggers)
	}

	h.onResult(reconciler.Outcome{Fleet: "shop", Revision: commentRevision,
		Result: reconciler.Result{Paused: []reconciler.ServicePlan{{Service: "web", To: "hweb"}}}})
	// A refused author records nothing and does not make GitHub be asked.
	h.handle(ctx, commentEvent(4, "mallory", "promote", "web"))
	if rec, _ := decisions.For("shop"); len(rec) != 0 || len(f.asked) != 0 || len(f.triggers) != 0 {
		t.Fatalf("refused, yet: recorded %v, asked %v, triggered %v", rec, f.asked, f.triggers)
	}
	// The allowed author, in another case.
	h.handle(ctx, commentEvent(4, "alice", "promote", ""))
	rec, err := decisions.For("shop")
	if err != nil {
		t.Fatal(err)
	}
	if d := rec["web"]; d.Action != reconciler.ActionPromote || d.Hash != "hweb" || d.By != "github:alice" {
		t.Errorf("recorded %+v, want a promotion of web's hweb by github:alice", rec)
	}
	if diff := cmp.Diff([]string{"comment"}, f.triggers); diff != "" {
		t.Errorf("triggers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0123456789abcdef0123456789abcdef01234567"}, f.asked); diff != "" {
		t.Errorf("asked GitHub for (-want +got):\n%s", diff)
	}
	var replies []string
	for _, r := range f.reports {
		if r.Reply == nil || r.Reply.PR != 4 || r.Reply.Delivery != "d-1" {
			t.Errorf("report %+v is not a reply on #4 to d-1", r)
			continue
		}
		replies = append(replies, r.Reply.Body)
	}
	want := []string{
		"@ALICE: there is no paused rollout from this pull request (nothing is paused)",
		"@mallory is not allowed to /molt promote here (ask someone named by --github-allow)",
		"promoted web (by @alice): molt goes on with the rollout",
	}
	if diff := cmp.Diff(want, replies); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}

	// A failed reconcile says nothing sure: what was paused stays paused;
	// a preempted one means a newer commit takes over.
	h.onResult(reconciler.Outcome{Fleet: "shop", Revision: commentRevision, Err: errors.New("fetch")})
	if len(h.last.paused) != 1 {
		t.Errorf("an error forgot the paused rollout: %+v", h.last)
	}
	h.onResult(reconciler.Outcome{Fleet: "shop", Revision: commentRevision,
		Result: reconciler.Result{Preempted: true, Paused: []reconciler.ServicePlan{{Service: "web", To: "hweb"}}}})
	if len(h.last.paused) != 0 {
		t.Errorf("a preempted reconcile left %+v paused", h.last.paused)
	}
}

func TestCommentHandlerNeverBlocks(t *testing.T) {
	f := &commentFakes{}
	h := newCommentHandler(nil, reconciler.NewDecisions(t.TempDir(), nil), nil, f, f.trigger, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() {
		for range commentBacklog + 10 {
			h.onComment(commentEvent(4, "alice", "promote", "web"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("onComment blocked with nobody running the handler")
	}
	// Run handles what was queued, and stops with its context.
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { h.run(ctx); close(stopped) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.reports)
		f.mu.Unlock()
		if n == commentBacklog {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replies queued, want %d", n, commentBacklog)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop with its context")
	}
}

// TestCommentServeFlags: --github-allow is refused, before anything
// starts, when it cannot work.
func TestCommentServeFlags(t *testing.T) {
	tokenFile := t.TempDir() + "/token"
	if err := os.WriteFile(tokenFile, []byte("ghs_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		stderr string
	}{
		{"no webhook secret", map[string]string{"MOLT_GITHUB_TOKEN": "ghs_x"},
			[]string{"--github-allow", "alice"}, "--github-allow needs the webhook secret"},
		{"no token", map[string]string{"MOLT_WEBHOOK_SECRET": "s3cret"},
			[]string{"--github-allow", "alice"}, "--github-allow needs GitHub credentials"},
		{"not a login", map[string]string{"MOLT_WEBHOOK_SECRET": "s3cret"},
			[]string{"--github-allow", "alice,not a login", "--github-token-file", tokenFile}, `"not a login" is not a GitHub login`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MOLT_WEBHOOK_SECRET", "")
			t.Setenv("MOLT_GITHUB_TOKEN", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			state := t.TempDir()
			var stdout, stderr strings.Builder
			args := append([]string{"serve", "--repo", t.TempDir(), "--state-dir", state, "--listen", "127.0.0.1:0"}, tt.args...)
			if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 64 {
				t.Errorf("exit %d, want 64 (usage); stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
			if strings.Contains(stderr.String(), "ghs_x") || strings.Contains(stderr.String(), "s3cret") {
				t.Errorf("stderr repeats a secret:\n%s", stderr.String())
			}
			if entries, _ := os.ReadDir(state); len(entries) != 0 {
				t.Errorf("the state directory was touched: %v", entries)
			}
		})
	}
}
