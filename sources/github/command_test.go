package github

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		body string
		want Command
		ok   bool
	}{
		{"/molt promote web", Command{Action: CommandPromote, Service: "web"}, true},
		{"/molt abort web", Command{Action: CommandAbort, Service: "web"}, true},
		{"/molt promote", Command{Action: CommandPromote}, true},
		{"/molt abort", Command{Action: CommandAbort}, true},
		{"  /molt   promote\tapi-2  \r\nLooks good to me.", Command{Action: CommandPromote, Service: "api-2"}, true},
		{"\r\n\n/molt promote web\n", Command{Action: CommandPromote, Service: "web"}, true},

		{"", Command{}, false},
		{"/molt", Command{}, false},
		{"/molt promote web now", Command{}, false},
		{"/molt Promote web", Command{}, false},
		{"/MOLT promote web", Command{}, false},
		{"/molt promotes web", Command{}, false},
		{"/molt retry web", Command{}, false},
		{"/moltpromote web", Command{}, false},
		{"molt promote web", Command{}, false},
		{"please /molt promote web", Command{}, false},
		{"LGTM\n/molt promote web", Command{}, false},
		{"> /molt promote web", Command{}, false},
		{"`/molt promote web`", Command{}, false},
		{"/molt promote WEB", Command{}, false},
		{"/molt promote web;rm", Command{}, false},
		{"/molt promote @alice", Command{}, false},
		{"/molt promote " + strings.Repeat("a", 64), Command{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseCommand(tt.body)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseCommand(%q) = %+v, %t; want %+v, %t", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCommandString(t *testing.T) {
	if got := (Command{Action: CommandPromote, Service: "web"}).String(); got != "/molt promote web" {
		t.Errorf("String() = %q", got)
	}
	if got := (Command{Action: CommandAbort}).String(); got != "/molt abort" {
		t.Errorf("String() = %q", got)
	}
}

// prComment is the real issue_comment payload moved onto pull request 1
// (GitHub sets issue.pull_request for a comment on a pull request's
// conversation), with the body and author given.
func prComment(t *testing.T, body, login string, edit func(p map[string]any)) []byte {
	t.Helper()
	return edited(t, "issue_comment.created.json", func(p map[string]any) {
		issue := p["issue"].(map[string]any)
		issue["pull_request"] = map[string]any{
			"url":       "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
			"html_url":  "https://github.com/Codertocat/Hello-World/pull/1",
			"diff_url":  "https://github.com/Codertocat/Hello-World/pull/1.diff",
			"patch_url": "https://github.com/Codertocat/Hello-World/pull/1.patch",
			"merged_at": nil,
		}
		cm := p["comment"].(map[string]any)
		cm["body"] = body
		cm["user"].(map[string]any)["login"] = login
		if edit != nil {
			edit(p)
		}
	})
}

func TestReceiverComments(t *testing.T) {
	const commentID = 492700400 // issue_comment.created.json
	promote := Event{Kind: KindComment, Name: "issue_comment", Delivery: testDelivery, Repo: "Codertocat/Hello-World",
		PRNumber: 1, CommentAction: "created", CommentID: commentID, CommentBody: "/molt promote web", Author: "alice",
		Command: Command{Action: CommandPromote, Service: "web"}}

	tests := []struct {
		name       string
		opts       func(o *ReceiverOptions)
		body       []byte
		header     map[string]string
		wantStatus int
		wantBody   string
		wantCounts Counts
		want       []Event
	}{
		{
			name:       "promote on a pull request",
			body:       prComment(t, "/molt promote web", "alice", nil),
			wantStatus: http.StatusAccepted, wantBody: "accepted: /molt promote web on pull request #1 by alice",
			wantCounts: only(outAccepted, 1), want: []Event{promote},
		},
		{
			name:       "abort without a service, with more lines",
			body:       prComment(t, "/molt abort\r\n\r\nThe canary looks wrong.", "bob", nil),
			wantStatus: http.StatusAccepted, wantBody: "accepted: /molt abort on pull request #1 by bob",
			wantCounts: only(outAccepted, 1),
			want: []Event{func() Event {
				e := promote
				e.CommentBody, e.Author, e.Command = "/molt abort\r\n\r\nThe canary looks wrong.", "bob", Command{Action: CommandAbort}
				return e
			}()},
		},
		{
			name:       "repository compared without case",
			opts:       func(o *ReceiverOptions) { o.Repo = "codertocat/hello-world" },
			body:       prComment(t, "/molt promote web", "alice", nil),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), want: []Event{promote},
		},
		{
			name:       "pull request into another branch: comments are not scoped by branch",
			opts:       func(o *ReceiverOptions) { o.Branch = "main" },
			body:       prComment(t, "/molt promote web", "alice", nil),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), want: []Event{promote},
		},
		{
			name:       "the real payload: a comment on a plain issue",
			body:       payload(t, "issue_comment.created.json"),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 on an issue, not a pull request",
			wantCounts: only(outIgnored, 1),
		},
		{
			name: "a command on a plain issue",
			body: edited(t, "issue_comment.created.json", func(p map[string]any) {
				p["comment"].(map[string]any)["body"] = "/molt promote web"
			}),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 on an issue", wantCounts: only(outIgnored, 1),
		},
		{
			name: "pull_request null",
			body: edited(t, "issue_comment.created.json", func(p map[string]any) {
				p["issue"].(map[string]any)["pull_request"] = nil
				p["comment"].(map[string]any)["body"] = "/molt promote web"
			}),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 on an issue", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "a comment that is no command",
			body:       prComment(t, "LGTM, /molt promote web", "alice", nil),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 on pull request #1 is no /molt command",
			wantCounts: only(outIgnored, 1),
		},
		{
			name:       "an unknown command word",
			body:       prComment(t, "/molt deploy web", "alice", nil),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 on pull request #1 is no /molt command",
			wantCounts: only(outIgnored, 1),
		},
		{
			name: "an edited comment",
			body: prComment(t, "/molt promote web", "alice", func(p map[string]any) {
				p["action"] = "edited"
				p["changes"] = map[string]any{"body": map[string]any{"from": "/molt abort web"}}
			}),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 edited", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "a deleted comment",
			body:       prComment(t, "/molt promote web", "alice", func(p map[string]any) { p["action"] = "deleted" }),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 deleted", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "another repository",
			opts:       func(o *ReceiverOptions) { o.Repo = "molt-dev/fleet" },
			body:       prComment(t, "/molt promote web", "alice", nil),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment in repository Codertocat/Hello-World, serving molt-dev/fleet",
			wantCounts: only(outIgnored, 1),
		},
		{
			name:       "nil callback",
			opts:       func(o *ReceiverOptions) { o.OnComment = nil },
			body:       prComment(t, "/molt promote web", "alice", nil),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1),
		},

		// Malformed and refused deliveries.
		{
			name: "no author",
			body: prComment(t, "/molt promote web", "alice", func(p map[string]any) {
				delete(p["comment"].(map[string]any), "user")
			}),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: issue_comment needs", wantCounts: only(outMalformed, 1),
		},
		{
			name: "no comment id",
			body: prComment(t, "/molt promote web", "alice", func(p map[string]any) {
				delete(p["comment"].(map[string]any), "id")
			}),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: issue_comment needs", wantCounts: only(outMalformed, 1),
		},
		{
			name: "no issue number",
			body: prComment(t, "/molt promote web", "alice", func(p map[string]any) {
				delete(p["issue"].(map[string]any), "number")
			}),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: issue_comment needs", wantCounts: only(outMalformed, 1),
		},
		{
			name: "no action",
			body: prComment(t, "/molt promote web", "alice", func(p map[string]any) {
				delete(p, "action")
			}),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: issue_comment needs", wantCounts: only(outMalformed, 1),
		},
		{
			name: "comment of the wrong type",
			body: prComment(t, "/molt promote web", "alice", func(p map[string]any) {
				p["comment"] = "/molt promote web"
			}),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "truncated JSON",
			body:       func() []byte { b := prComment(t, "/molt promote web", "alice", nil); return b[:len(b)/2] }(),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "a push payload sent as a comment",
			body:       payload(t, "push.json"),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: issue_comment needs", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "body over MaxBody",
			opts:       func(o *ReceiverOptions) { o.MaxBody = 1000 },
			body:       prComment(t, "/molt promote web", "alice", nil),
			wantStatus: http.StatusRequestEntityTooLarge, wantCounts: only(outTooLarge, 1),
		},
		{
			name:       "wrong signature",
			body:       prComment(t, "/molt promote web", "alice", nil),
			header:     map[string]string{"X-Hub-Signature-256": sign([]byte("another secret"), prComment(t, "/molt promote web", "alice", nil))},
			wantStatus: http.StatusUnauthorized, wantCounts: only(outBadSignature, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c calls
			opts := testOptions(&c)
			opts.OnComment = c.onComment
			if tt.opts != nil {
				tt.opts(&opts)
			}
			r := newTestReceiver(t, opts)
			rec := serve(r, delivery{event: "issue_comment", body: tt.body, header: tt.header}.request())
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body)
			}
			if !strings.HasPrefix(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want it to start with %q", rec.Body, tt.wantBody)
			}
			if diff := cmp.Diff(tt.wantCounts, r.Counts()); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, c.getComments()); diff != "" {
				t.Errorf("OnComment calls (-want +got):\n%s", diff)
			}
			if push, pulls := c.get(); len(push)+len(pulls) > 0 {
				t.Errorf("OnPush or OnPullRequest called for a comment: %v %v", push, pulls)
			}
		})
	}
}

func TestReceiverCommentRedelivery(t *testing.T) {
	var c calls
	opts := testOptions(&c)
	opts.OnComment = c.onComment
	r := newTestReceiver(t, opts)
	body := prComment(t, "/molt promote web", "alice", nil)
	for range 3 {
		serve(r, delivery{event: "issue_comment", id: "c0ffee00-0000-11f0-8000-000000000001", body: body}.request())
	}
	if got := c.getComments(); len(got) != 1 {
		t.Errorf("OnComment called %d times for one delivery sent three times, want 1", len(got))
	}
	if want := (Counts{Accepted: 1, Duplicate: 2}); r.Counts() != want {
		t.Errorf("counts = %+v, want %+v", r.Counts(), want)
	}
	// Another delivery of the same comment (a new webhook, say) is new.
	serve(r, delivery{event: "issue_comment", id: "c0ffee00-0000-11f0-8000-000000000002", body: body}.request())
	if got := c.getComments(); len(got) != 2 {
		t.Errorf("OnComment called %d times, want 2", len(got))
	}
}
