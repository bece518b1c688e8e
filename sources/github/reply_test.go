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

const replyDelivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

func TestPostReplyOncePerDelivery(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	f.srv.AddComment(pr, "alice", "/molt promote web")
	// Quoting molt's reply is not being it.
	f.srv.AddComment(pr, "bob", "> "+ReplyMarker(replyDelivery)+"\n> promoted web")
	ctx := context.Background()

	r := Reply{PR: pr, Delivery: replyDelivery, Body: "promoted web (by @alice): molt goes on with the rollout"}
	first, err := f.client.PostReply(ctx, r)
	if err != nil || first.Action != CommentCreated {
		t.Fatalf("PostReply = %+v, %v; want a created comment", first, err)
	}
	// Delivered again (a retry, a redelivered webhook): nothing new, even
	// when the text changed meanwhile.
	r.Body = "@alice: there is no paused rollout from this pull request"
	again, err := f.client.PostReply(ctx, r)
	if err != nil || again.Action != CommentUnchanged || again.ID != first.ID {
		t.Fatalf("second PostReply = %+v, %v; want the first comment unchanged", again, err)
	}
	mine := withMarker(f.srv.Comments(pr), ReplyMarker(replyDelivery))
	if len(mine) != 1 {
		t.Fatalf("%d replies, want 1", len(mine))
	}
	if want := ReplyMarker(replyDelivery) + "\npromoted web (by @alice): molt goes on with the rollout"; mine[0].Body != want {
		t.Errorf("reply body %q, want %q", mine[0].Body, want)
	}
	if mine[0].User != "molt-bot" {
		t.Errorf("reply written by %s, want the token's user", mine[0].User)
	}

	// Another delivery is another reply.
	if c, err := f.client.PostReply(ctx, Reply{PR: pr, Delivery: "other-delivery", Body: "aborting web"}); err != nil || c.Action != CommentCreated {
		t.Fatalf("PostReply for another delivery = %+v, %v", c, err)
	}
	if n := len(f.srv.Comments(pr)); n != 4 {
		t.Errorf("%d comments on the pull request, want 4", n)
	}
}

func TestPostReplyCutsLongBodies(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	if _, err := f.client.PostReply(context.Background(), Reply{PR: pr, Delivery: replyDelivery, Body: strings.Repeat("é", MaxCommentBody)}); err != nil {
		t.Fatalf("a long reply was refused: %v", err)
	}
	if body := f.srv.Comments(pr)[0].Body; !strings.HasPrefix(body, ReplyMarker(replyDelivery)) || !strings.HasSuffix(body, "…") {
		t.Errorf("long reply not cut behind its marker: %.80q…", body)
	}
}

func TestReplyReports(t *testing.T) {
	ok := Reply{PR: 4, Delivery: replyDelivery, Body: "promoted web"}
	r := Report{Reply: &ok}
	if r.Slot() != "reply:"+replyDelivery || r.Key() != "reply:"+replyDelivery || r.Validate() != nil {
		t.Errorf("slot %q key %q valid %v", r.Slot(), r.Key(), r.Validate())
	}
	bad := map[string]Reply{
		"no pull request":       {Delivery: replyDelivery, Body: "x"},
		"no delivery":           {PR: 4, Body: "x"},
		"no body":               {PR: 4, Delivery: replyDelivery},
		"delivery ends comment": {PR: 4, Delivery: "a-->b", Body: "x"},
		"delivery with --":      {PR: 4, Delivery: "a--b", Body: "x"},
		"delivery with a space": {PR: 4, Delivery: "a b", Body: "x"},
		"delivery too long":     {PR: 4, Delivery: strings.Repeat("d", maxDeliveryLen+1), Body: "x"},
	}
	f := newFixture(t)
	_, c1 := f.history()
	f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	for name, rp := range bad {
		err := Report{Reply: &rp}.Validate()
		if err == nil || !Permanent(err) {
			t.Errorf("%s: Validate() = %v, want a permanent error", name, err)
		}
		if err := f.client.Deliver(context.Background(), Report{Reply: &rp}); !Permanent(err) {
			t.Errorf("%s: Deliver() = %v, want a permanent error", name, err)
		}
	}
	if err := (Report{Reply: &ok, Status: &Status{SHA: "abc", Context: ContextDeploy, State: StateSuccess}}).Validate(); err == nil {
		t.Error("a report with a reply and a status is valid")
	}
	if n := len(f.srv.Writes()); n != 0 {
		t.Errorf("invalid replies made %d writes", n)
	}
}

func TestQueueDeliversReplyOnce(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	// The first creation lands, but the answer is lost: the queue tries
	// again and finds the reply there.
	f.srv.Inject(1, githubtest.Fault{Status: 502, Late: true, Method: "POST"})
	q := newTestQueue(t, t.TempDir(), f.client, f.clock, nil)
	startQueue(t, q)
	r := Report{Reply: &Reply{PR: pr, Delivery: replyDelivery, Body: "aborting web (by @alice)"}}
	q.Enqueue(r)
	waitFor(t, "delivery", func() bool { return q.Counts().Delivered == 1 })
	q.Enqueue(r) // the same answer to the same delivery
	other := Report{Reply: &Reply{PR: pr, Delivery: "second", Body: "aborting web (by @alice)"}}
	q.Enqueue(other)
	waitFor(t, "second delivery", func() bool { return q.Counts().Delivered == 2 })
	if c := q.Counts(); c.Retried != 1 || c.Duplicate != 1 {
		t.Errorf("counts %+v: want one retry and one duplicate", c)
	}
	if n := len(withMarker(f.srv.Comments(pr), ReplyMarker(replyDelivery))); n != 1 {
		t.Errorf("%d replies to the first delivery, want 1", n)
	}
	if n := len(f.srv.Comments(pr)); n != 2 {
		t.Errorf("%d comments, want 2", n)
	}
}

func TestPullsOf(t *testing.T) {
	f := newFixture(t)
	c0, c1 := f.history()
	merged := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c0, State: "closed", Merged: true, MergeCommit: c1})
	f.srv.AddPull(githubtest.PullSeed{Title: "unrelated", Head: "x", Base: "main", HeadSHA: strings.Repeat("f", 40)})
	got, err := f.client.PullsOf(context.Background(), c1)
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]int{merged}) {
		t.Fatalf("PullsOf(merge commit) = %v, %v; want [%d]", got, err, merged)
	}
	if got, err := f.client.PullsOf(context.Background(), strings.Repeat("e", 40)); err != nil || len(got) != 0 {
		t.Errorf("PullsOf(a commit of no pull request) = %v, %v; want none", got, err)
	}
	if n := len(f.srv.Writes()); n != 0 {
		t.Errorf("PullsOf wrote %d times", n)
	}
}

func TestLogReporterReply(t *testing.T) {
	var logs bytes.Buffer
	rep := LogReporter{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := rep.Deliver(context.Background(), Report{Reply: &Reply{PR: 9, Delivery: replyDelivery, Body: "@mallory is not allowed"}}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"no token", "report=reply:" + replyDelivery, "pr=9", "@mallory is not allowed"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, logs.String())
		}
	}
}
