package github

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testDelivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

func TestReceiver(t *testing.T) {
	pushNew := payload(t, "push.with-new-branch.json")
	opened := payload(t, "pull_request.opened.json")

	// The event the tracked-branch push of push.with-new-branch.json gives.
	newBranchPush := Event{Kind: KindPush, Name: "push", Delivery: testDelivery, Repo: "Codertocat/Hello-World", DefaultBranch: "master",
		Ref: "refs/heads/master", Before: zeroSHA, After: newBranchAfter}
	pull := func(action string) Event {
		return Event{Kind: KindPullRequest, Name: "pull_request", Delivery: testDelivery, Repo: "Codertocat/Hello-World", DefaultBranch: "master",
			PRNumber: 2, PRAction: action, HeadSHA: prHeadSHA, HeadRef: "changes", HeadRepo: "Codertocat/Hello-World", BaseRef: "master"}
	}

	tests := []struct {
		name       string
		opts       func(o *ReceiverOptions) // changes testOptions
		req        *http.Request
		wantStatus int
		wantBody   string // prefix of the answer
		wantCounts Counts
		wantPush   []Event
		wantPulls  []Event
	}{
		// Events.
		{
			name:       "ping",
			req:        delivery{event: "ping", body: payload(t, "ping.json")}.request(),
			wantStatus: http.StatusOK, wantBody: "pong", wantCounts: only(outAccepted, 1),
		},
		{
			name:       "push creating the tracked branch",
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantBody: "accepted: push to refs/heads/master at " + newBranchAfter,
			wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name: "push moving the tracked branch",
			req: delivery{event: "push", body: edited(t, "push.json", func(p map[string]any) {
				p["ref"], p["before"], p["after"], p["deleted"] = "refs/heads/master", newBranchAfter, prHeadSHA, false
			})}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1),
			wantPush: []Event{{Kind: KindPush, Name: "push", Delivery: testDelivery, Repo: "Codertocat/Hello-World", DefaultBranch: "master",
				Ref: "refs/heads/master", Before: newBranchAfter, After: prHeadSHA}},
		},
		{
			name:       "push to the default branch, following it",
			opts:       func(o *ReceiverOptions) { o.Branch = "" },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantBody: "accepted: push to refs/heads/master at " + newBranchAfter,
			wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name: "push to another branch than the default, following it",
			opts: func(o *ReceiverOptions) { o.Branch = "" },
			req: delivery{event: "push", body: edited(t, "push.with-new-branch.json", func(p map[string]any) {
				p["repository"].(map[string]any)["default_branch"] = "main"
			})}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: push to refs/heads/master, tracking refs/heads/main",
			wantCounts: only(outIgnored, 1),
		},
		{
			name:       "pull request into the default branch, following it",
			opts:       func(o *ReceiverOptions) { o.Branch = "" },
			req:        delivery{event: "pull_request", body: opened}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPulls: []Event{pull("opened")},
		},
		{
			name:       "push to another branch",
			opts:       func(o *ReceiverOptions) { o.Branch = "main" },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: push to refs/heads/master, tracking refs/heads/main",
			wantCounts: only(outIgnored, 1),
		},
		{
			name:       "push deleting a tag", // push.json deletes refs/tags/simple-tag
			req:        delivery{event: "push", body: payload(t, "push.json")}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: push to refs/tags/simple-tag", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "push of a tag named like the branch",
			opts:       func(o *ReceiverOptions) { o.Branch = "simple-tag" },
			req:        delivery{event: "push", body: payload(t, "push.json")}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: push to refs/tags/simple-tag", wantCounts: only(outIgnored, 1),
		},
		{
			name: "push deleting the tracked branch",
			req: delivery{event: "push", body: edited(t, "push.json", func(p map[string]any) {
				p["ref"] = "refs/heads/master"
			})}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: deletion of refs/heads/master", wantCounts: only(outIgnored, 1),
		},
		{
			name: "push with a zero after but no deleted flag",
			req: delivery{event: "push", body: edited(t, "push.json", func(p map[string]any) {
				p["ref"], p["deleted"] = "refs/heads/master", false
			})}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: deletion of refs/heads/master", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "push from another repository",
			opts:       func(o *ReceiverOptions) { o.Repo = "molt-dev/fleet" },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: push to repository Codertocat/Hello-World, serving molt-dev/fleet",
			wantCounts: only(outIgnored, 1),
		},
		{
			name:       "repository compared without case",
			opts:       func(o *ReceiverOptions) { o.Repo = "codertocat/hello-world" },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name:       "any repository when Repo is empty",
			opts:       func(o *ReceiverOptions) { o.Repo = "" },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name:       "branch given as a ref",
			opts:       func(o *ReceiverOptions) { o.Branch = "refs/heads/master" },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name:       "ping from another repository is still answered",
			opts:       func(o *ReceiverOptions) { o.Repo = "molt-dev/fleet" }, // ping.json is Octocoders/Hello-World's
			req:        delivery{event: "ping", body: payload(t, "ping.json")}.request(),
			wantStatus: http.StatusOK, wantBody: "pong", wantCounts: only(outAccepted, 1),
		},
		{
			name:       "pull request opened",
			req:        delivery{event: "pull_request", body: opened}.request(),
			wantStatus: http.StatusAccepted, wantBody: "accepted: pull request #2 opened at " + prHeadSHA,
			wantCounts: only(outAccepted, 1), wantPulls: []Event{pull("opened")},
		},
		{
			name:       "pull request synchronize",
			req:        delivery{event: "pull_request", body: payload(t, "pull_request.synchronize.json")}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPulls: []Event{pull("synchronize")},
		},
		{
			name:       "pull request reopened",
			req:        delivery{event: "pull_request", body: payload(t, "pull_request.reopened.json")}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPulls: []Event{pull("reopened")},
		},
		{
			name:       "pull request closed without merging",
			req:        delivery{event: "pull_request", body: payload(t, "pull_request.closed.json")}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: pull request #2 closed (merged: false)", wantCounts: only(outIgnored, 1),
		},
		{
			name: "pull request merged",
			req: delivery{event: "pull_request", body: edited(t, "pull_request.closed.json", func(p map[string]any) {
				p["pull_request"].(map[string]any)["merged"] = true
			})}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: pull request #2 closed (merged: true)", wantCounts: only(outIgnored, 1),
		},
		{
			name: "pull request edited",
			req: delivery{event: "pull_request", body: edited(t, "pull_request.opened.json", func(p map[string]any) {
				p["action"] = "edited"
			})}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: pull request #2 action edited", wantCounts: only(outIgnored, 1),
		},
		{
			name: "pull request from a fork",
			req: delivery{event: "pull_request", body: edited(t, "pull_request.opened.json", func(p map[string]any) {
				head := p["pull_request"].(map[string]any)["head"].(map[string]any)
				head["repo"].(map[string]any)["full_name"] = "forker/Hello-World"
			})}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1),
			wantPulls: []Event{func() Event { e := pull("opened"); e.HeadRepo = "forker/Hello-World"; return e }()},
		},
		{
			name: "pull request from a deleted fork",
			req: delivery{event: "pull_request", body: edited(t, "pull_request.synchronize.json", func(p map[string]any) {
				p["pull_request"].(map[string]any)["head"].(map[string]any)["repo"] = nil
			})}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1),
			wantPulls: []Event{func() Event { e := pull("synchronize"); e.HeadRepo = ""; return e }()},
		},
		{
			name:       "pull request into another branch",
			opts:       func(o *ReceiverOptions) { o.Branch = "main" },
			req:        delivery{event: "pull_request", body: opened}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: pull request #2 into master, tracking main", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "pull request in another repository",
			opts:       func(o *ReceiverOptions) { o.Repo = "molt-dev/fleet" },
			req:        delivery{event: "pull_request", body: opened}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: pull request in repository", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "issue comment",
			req:        delivery{event: "issue_comment", body: payload(t, "issue_comment.created.json")}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: comment 492700400 on an issue, not a pull request", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "unknown event",
			req:        delivery{event: "sponsorship", body: []byte(`{"action":"created"}`)}.request(),
			wantStatus: http.StatusAccepted, wantBody: "ignored: event sponsorship", wantCounts: only(outIgnored, 1),
		},
		{
			name:       "nil callbacks",
			opts:       func(o *ReceiverOptions) { o.OnPush, o.OnPullRequest = nil, nil },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1),
		},

		// Content types.
		{
			name: "form-encoded delivery",
			req: delivery{event: "push", contentType: "application/x-www-form-urlencoded",
				body: []byte(url.Values{"payload": {string(pushNew)}}.Encode())}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name: "form without payload",
			req: delivery{event: "push", contentType: "application/x-www-form-urlencoded",
				body: []byte(url.Values{"data": {string(pushNew)}}.Encode())}.request(),
			wantStatus: http.StatusBadRequest, wantBody: "form body without a payload field", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "json with a charset",
			req:        delivery{event: "push", contentType: "application/json; charset=utf-8", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
		{
			name:       "plain text",
			req:        delivery{event: "push", contentType: "text/plain", body: pushNew}.request(),
			wantStatus: http.StatusUnsupportedMediaType, wantCounts: only(outMalformed, 1),
		},
		{
			name:       "no content type",
			req:        delivery{event: "push", body: pushNew, header: map[string]string{"Content-Type": ""}}.request(),
			wantStatus: http.StatusUnsupportedMediaType, wantCounts: only(outMalformed, 1),
		},

		// Signatures.
		{
			name: "wrong signature",
			req: delivery{event: "push", body: pushNew, header: map[string]string{
				"X-Hub-Signature-256": sign(testSecret, pushNew[1:])}}.request(),
			wantStatus: http.StatusUnauthorized, wantBody: "X-Hub-Signature-256 does not match", wantCounts: only(outBadSignature, 1),
		},
		{
			name: "signed with another secret",
			req: delivery{event: "push", body: pushNew, header: map[string]string{
				"X-Hub-Signature-256": sign([]byte("It's a secret to everybody"), pushNew)}}.request(),
			wantStatus: http.StatusUnauthorized, wantCounts: only(outBadSignature, 1),
		},
		{
			name:       "missing signature",
			req:        delivery{event: "push", body: pushNew, header: map[string]string{"X-Hub-Signature-256": ""}}.request(),
			wantStatus: http.StatusUnauthorized, wantBody: "missing X-Hub-Signature-256", wantCounts: only(outBadSignature, 1),
		},
		{
			name: "sha1 signature only",
			req: delivery{event: "push", body: pushNew, header: map[string]string{
				"X-Hub-Signature-256": "", "X-Hub-Signature": "sha1=" + strings.Repeat("ab", 20)}}.request(),
			wantStatus: http.StatusUnauthorized, wantBody: "missing X-Hub-Signature-256", wantCounts: only(outBadSignature, 1),
		},
		{
			name: "malformed signature",
			req: delivery{event: "push", body: pushNew, header: map[string]string{
				"X-Hub-Signature-256": strings.TrimPrefix(sign(testSecret, pushNew), "sha256=")}}.request(),
			wantStatus: http.StatusUnauthorized, wantBody: "X-Hub-Signature-256 is not sha256=<64 hex digits>", wantCounts: only(outBadSignature, 1),
		},
		{
			name: "unsigned request without GitHub's headers",
			req: delivery{body: pushNew, header: map[string]string{
				"X-Hub-Signature-256": "", "X-GitHub-Event": "", "X-GitHub-Delivery": ""}}.request(),
			wantStatus: http.StatusUnauthorized, wantCounts: only(outBadSignature, 1),
		},

		// Malformed deliveries.
		{
			name:       "GET",
			req:        func() *http.Request { r := delivery{event: "push"}.request(); r.Method = http.MethodGet; return r }(),
			wantStatus: http.StatusMethodNotAllowed, wantCounts: only(outMalformed, 1),
		},
		{
			name:       "missing event",
			req:        delivery{body: pushNew}.request(),
			wantStatus: http.StatusBadRequest, wantBody: "missing or invalid X-GitHub-Event", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "missing delivery",
			req:        delivery{event: "push", body: pushNew, header: map[string]string{"X-GitHub-Delivery": ""}}.request(),
			wantStatus: http.StatusBadRequest, wantCounts: only(outMalformed, 1),
		},
		{
			name:       "delivery id too long",
			req:        delivery{event: "push", id: strings.Repeat("d", maxDeliveryLen+1), body: pushNew}.request(),
			wantStatus: http.StatusBadRequest, wantCounts: only(outMalformed, 1),
		},
		{
			name:       "malformed JSON",
			req:        delivery{event: "push", body: pushNew[:len(pushNew)/2]}.request(),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "malformed JSON of an ignored event",
			req:        delivery{event: "ping", body: []byte(`{"zen":`)}.request(),
			wantStatus: http.StatusBadRequest, wantCounts: only(outMalformed, 1),
		},
		{
			name:       "push without after",
			req:        delivery{event: "push", body: []byte(`{"ref":"refs/heads/master","repository":{"full_name":"Codertocat/Hello-World"}}`)}.request(),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: push needs", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "push payload sent as a pull request",
			req:        delivery{event: "pull_request", body: pushNew}.request(),
			wantStatus: http.StatusBadRequest, wantBody: "malformed payload: pull_request needs", wantCounts: only(outMalformed, 1),
		},
		{
			name:       "body over MaxBody",
			opts:       func(o *ReceiverOptions) { o.MaxBody = int64(len(pushNew)) - 1 },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusRequestEntityTooLarge, wantCounts: only(outTooLarge, 1),
		},
		{
			name:       "body of exactly MaxBody",
			opts:       func(o *ReceiverOptions) { o.MaxBody = int64(len(pushNew)) },
			req:        delivery{event: "push", body: pushNew}.request(),
			wantStatus: http.StatusAccepted, wantCounts: only(outAccepted, 1), wantPush: []Event{newBranchPush},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c calls
			opts := testOptions(&c)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			r := newTestReceiver(t, opts)
			rec := serve(r, tt.req)

			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body)
			}
			if !strings.HasPrefix(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want it to start with %q", rec.Body, tt.wantBody)
			}
			if diff := cmp.Diff(tt.wantCounts, r.Counts()); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			push, pulls := c.get()
			if diff := cmp.Diff(tt.wantPush, push); diff != "" {
				t.Errorf("OnPush calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPulls, pulls); diff != "" {
				t.Errorf("OnPullRequest calls (-want +got):\n%s", diff)
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestReceiverReadsNoMoreThanMaxBody(t *testing.T) {
	const maxBody = 4 << 10
	for _, known := range []bool{false, true} {
		t.Run(fmt.Sprintf("content length known %t", known), func(t *testing.T) {
			var c calls
			opts := testOptions(&c)
			opts.MaxBody = maxBody
			r := newTestReceiver(t, opts)

			const size = 25 << 20 // what GitHub may send
			body := &countingReader{r: io.LimitReader(zeros{}, size)}
			req := delivery{event: "push"}.request()
			req.Body = io.NopCloser(body)
			req.ContentLength = -1
			if known {
				req.ContentLength = size
			}
			rec := serve(r, req)

			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("status = %d, want 413", rec.Code)
			}
			if body.n > maxBody+1 {
				t.Errorf("read %d bytes of the body, want at most MaxBody+1 = %d", body.n, maxBody+1)
			}
			if diff := cmp.Diff(only(outTooLarge, 1), r.Counts()); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestReceiverDuplicateDelivery(t *testing.T) {
	var c calls
	r := newTestReceiver(t, testOptions(&c))
	body := payload(t, "push.with-new-branch.json")

	// Refused deliveries do not use up their id.
	bad := delivery{event: "push", body: body, header: map[string]string{"X-Hub-Signature-256": sign([]byte("wrong"), body)}}
	malformed := delivery{event: "push", body: body, contentType: "text/plain"}
	good := delivery{event: "push", body: body}
	steps := []struct {
		d          delivery
		wantStatus int
		wantBody   string
	}{
		{bad, http.StatusUnauthorized, ""},
		{malformed, http.StatusUnsupportedMediaType, ""},
		{good, http.StatusAccepted, "accepted"},
		{good, http.StatusOK, "duplicate delivery\n"},                                // GitHub's redelivery
		{bad, http.StatusUnauthorized, ""},                                           // the signature is checked first
		{delivery{event: "ping", body: body}, http.StatusOK, "duplicate delivery\n"}, // the id decides, not the content
		{delivery{event: "push", id: "another", body: body}, http.StatusAccepted, "accepted"},
	}
	for i, s := range steps {
		rec := serve(r, s.d.request())
		if rec.Code != s.wantStatus || !strings.HasPrefix(rec.Body.String(), s.wantBody) {
			t.Errorf("step %d: %d %q, want %d %q", i, rec.Code, rec.Body, s.wantStatus, s.wantBody)
		}
	}
	push, _ := c.get()
	if len(push) != 2 || push[0].Delivery != testDelivery || push[1].Delivery != "another" {
		t.Errorf("OnPush called for %v, want once for each id", push)
	}
	want := Counts{Accepted: 2, BadSignature: 2, Malformed: 1, Duplicate: 2}
	if diff := cmp.Diff(want, r.Counts()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	// By event: a delivery refused before its signature is verified is
	// "other", whatever its header says; every event is listed.
	wantByEvent := map[string]Counts{
		"push":          {Accepted: 2, Malformed: 1, Duplicate: 1},
		"ping":          {Duplicate: 1},
		"pull_request":  {},
		"issue_comment": {},
		"other":         {BadSignature: 2},
	}
	if diff := cmp.Diff(wantByEvent, r.EventCounts()); diff != "" {
		t.Errorf("counts by event (-want +got):\n%s", diff)
	}
}

func TestReceiverForgetsOldDeliveries(t *testing.T) {
	var c calls
	opts := testOptions(&c)
	opts.DedupSize = 2
	r := newTestReceiver(t, opts)
	body := payload(t, "push.with-new-branch.json")
	for _, id := range []string{"a", "b", "a", "c", "a"} {
		serve(r, delivery{event: "push", id: id, body: body}.request())
	}
	// a, b accepted; a duplicate; c accepted (a forgotten); a accepted again.
	if want := (Counts{Accepted: 4, Duplicate: 1}); r.Counts() != want {
		t.Errorf("counts = %+v, want %+v", r.Counts(), want)
	}
}

func TestReceiverOptions(t *testing.T) {
	good := ReceiverOptions{Secret: []byte("s"), Branch: "main"}
	tests := []struct {
		name    string
		edit    func(o *ReceiverOptions)
		wantErr string
	}{
		{"minimal", func(o *ReceiverOptions) {}, ""},
		{"with repo", func(o *ReceiverOptions) { o.Repo = "molt-dev/fleet" }, ""},
		{"nil secret", func(o *ReceiverOptions) { o.Secret = nil }, "secret is required"},
		{"empty secret", func(o *ReceiverOptions) { o.Secret = []byte{} }, "secret is required"},
		{"no branch: the default branch", func(o *ReceiverOptions) { o.Branch = "" }, ""},
		{"refs/heads/ only", func(o *ReceiverOptions) { o.Branch = "refs/heads/" }, "not a branch name"},
		{"branch with a space", func(o *ReceiverOptions) { o.Branch = "main " }, "not a branch name"},
		{"repo without owner", func(o *ReceiverOptions) { o.Repo = "fleet" }, "not owner/name"},
		{"repo with empty name", func(o *ReceiverOptions) { o.Repo = "molt-dev/" }, "not owner/name"},
		{"repo URL", func(o *ReceiverOptions) { o.Repo = "github.com/molt-dev/fleet" }, "not owner/name"},
		{"negative max body", func(o *ReceiverOptions) { o.MaxBody = -1 }, "max body is negative"},
		{"negative dedup size", func(o *ReceiverOptions) { o.DedupSize = -1 }, "dedup size is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := good
			tt.edit(&opts)
			r, err := NewReceiver(opts)
			if tt.wantErr == "" {
				if err != nil || r == nil {
					t.Fatalf("NewReceiver = %v, %v; want a receiver", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || r != nil {
				t.Fatalf("NewReceiver = %v, %v; want error containing %q", r, err, tt.wantErr)
			}
		})
	}
}

func TestReceiverKeepsItsOwnSecret(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	r := newTestReceiver(t, ReceiverOptions{Secret: secret, Branch: "master"})
	clear(secret) // the caller wiping its copy does not empty the receiver's
	rec := serve(r, delivery{event: "ping", body: payload(t, "ping.json")}.request())
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d (%q), want 200", rec.Code, rec.Body)
	}
}

func TestReceiverLogsNeitherSecretNorSignature(t *testing.T) {
	var logs bytes.Buffer
	var c calls
	opts := testOptions(&c)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := newTestReceiver(t, opts)

	body := payload(t, "push.with-new-branch.json")
	wrong := sign([]byte("wrong"), body)
	for _, d := range []delivery{
		{event: "push", body: body},
		{event: "push", body: body},
		{event: "push", id: "x", body: body, header: map[string]string{"X-Hub-Signature-256": wrong}},
		{event: "push", id: "y", body: body, contentType: "text/html"},
		{event: "issue_comment", id: "z", body: payload(t, "issue_comment.created.json")},
	} {
		serve(r, d.request())
	}
	out := logs.String()
	for _, secret := range []string{string(testSecret), sign(testSecret, body)[7:], wrong[7:]} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"delivery=" + testDelivery, "outcome=accepted", "outcome=duplicate", "outcome=bad_signature", "delivery=x", "outcome=malformed", "outcome=ignored"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
