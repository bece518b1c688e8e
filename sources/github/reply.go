package github

import (
	"context"
	"fmt"

	gh "github.com/google/go-github/v60/github"
)

// Reply is a new comment on a pull request that answers one of its
// comments (a /molt command). It is posted once per webhook delivery:
// the delivery id, in a hidden marker, makes it idempotent, so a report
// delivered again, or a redelivered webhook, does not post twice.
type Reply struct {
	PR       int    `json:"pr"`
	Delivery string `json:"delivery"` // the X-GitHub-Delivery of the comment answered
	Body     string `json:"body"`     // Markdown, without the marker
}

// ReplyMarker is the hidden first line of the reply to the comment of a
// webhook delivery.
func ReplyMarker(delivery string) string {
	return "<!-- molt:reply:" + delivery + " -->"
}

// validDelivery reports whether a delivery id fits in a marker: GitHub's
// are GUIDs; anything that could end the HTML comment is refused.
func validDelivery(id string) bool {
	if id == "" || len(id) > maxDeliveryLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
		if c == '-' && i > 0 && id[i-1] == '-' {
			return false
		}
	}
	return true
}

// replyBody is the body posted: the marker, then the text cut to what
// GitHub takes.
func replyBody(r Reply) string {
	marker := ReplyMarker(r.Delivery) + "\n"
	return marker + cutText(r.Body, MaxCommentBody-len(marker))
}

// PostReply comments the reply on its pull request, unless a comment with
// its marker is there already (it reads every page of comments first).
// Idempotent: calling it again posts nothing. Cancelling ctx stops between
// requests (a creation in flight may still land).
func (c *Client) PostReply(ctx context.Context, r Reply) (Comment, error) {
	if r.PR <= 0 || !validDelivery(r.Delivery) || r.Body == "" {
		return Comment{}, fmt.Errorf("reply on #%d: pull request, delivery and body are required: %w", r.PR, errInvalidReport)
	}
	marker := ReplyMarker(r.Delivery)
	old, err := c.findComment(ctx, r.PR, marker)
	if err != nil {
		return Comment{}, fmt.Errorf("reply on #%d: %w", r.PR, err)
	}
	if old != nil {
		return Comment{ID: old.GetID(), URL: old.GetHTMLURL(), Action: CommentUnchanged}, nil
	}
	body := replyBody(r)
	made, _, err := c.gh.Issues.CreateComment(ctx, c.repo.Owner, c.repo.Name, r.PR, &gh.IssueComment{Body: &body})
	if err != nil {
		return Comment{}, fmt.Errorf("reply on #%d: %w", r.PR, err)
	}
	c.log.Info("reply comment created", "pr", r.PR, "comment", made.GetID(), "delivery", r.Delivery)
	return Comment{ID: made.GetID(), URL: made.GetHTMLURL(), Action: CommentCreated}, nil
}

// PullsOf returns the numbers of the pull requests a commit belongs to
// (GitHub's "pull requests associated with a commit": for a commit of the
// tracked branch, the pull request that merged it, whether by a merge
// commit, a squash or a rebase). It reads every page; it writes nothing.
func (c *Client) PullsOf(ctx context.Context, sha string) ([]int, error) {
	return c.pullsOf(ctx, sha)
}
