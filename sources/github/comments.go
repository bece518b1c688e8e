package github

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"
)

// PlanMarker opens the body of the one plan comment molt keeps on a pull
// request; UpsertPlanComment finds the comment by it. Hidden in the
// rendered comment.
const PlanMarker = "<!-- molt:plan -->"

// OutcomeMarker is the hidden first line of the comment that tells a
// pull request what became of one of its commits: one per commit and
// kind of outcome ("success", "failure"). A sha that is not a commit
// id (4 to 64 hexadecimal digits) is not written into the marker, where
// a line feed or a "-->" of it would end the hidden line and show the
// rest as Markdown: the marker says "not-a-commit", which CommentOutcome
// refuses.
func OutcomeMarker(sha string, kind OutcomeKind) string {
	if !commitIDRE.MatchString(sha) {
		sha = "not-a-commit"
	}
	return "<!-- molt:deploy:" + sha + ":" + string(kind) + " -->"
}

var commitIDRE = regexp.MustCompile(`^[0-9a-fA-F]{4,64}$`)

var outcomeMarkerRE = regexp.MustCompile(`^<!-- molt:deploy:([0-9a-fA-F]{4,64}):([a-z-]+) -->`)

// CommentAction says what UpsertPlanComment did.
type CommentAction string

const (
	CommentCreated   CommentAction = "created"
	CommentEdited    CommentAction = "edited"
	CommentUnchanged CommentAction = "unchanged"
)

// Comment is the plan comment after UpsertPlanComment.
type Comment struct {
	ID     int64
	URL    string // its web address
	Action CommentAction
}

// errInvalidReport is the class of reports that cannot be delivered as
// they are: sending them again is pointless.
var errInvalidReport = errors.New("invalid report")

// UpsertPlanComment keeps one plan comment on the pull request: it lists
// the pull request's comments (every page), edits the one whose body
// starts with PlanMarker if its body differs, and creates one otherwise.
// The marker is added to body when missing. Idempotent: calling it again
// with the same body changes nothing. Cancelling ctx stops between
// requests (an edit or creation in flight may still land).
func (c *Client) UpsertPlanComment(ctx context.Context, pr int, body string) (Comment, error) {
	if pr <= 0 {
		return Comment{}, fmt.Errorf("plan comment: pull request %d: %w", pr, errInvalidReport)
	}
	if !strings.HasPrefix(body, PlanMarker) {
		body = PlanMarker + "\n" + body
	}
	old, err := c.findComment(ctx, pr, PlanMarker)
	if err != nil {
		return Comment{}, fmt.Errorf("plan comment on #%d: %w", pr, err)
	}
	if old != nil && sameBody(old.GetBody(), body) {
		return Comment{ID: old.GetID(), URL: old.GetHTMLURL(), Action: CommentUnchanged}, nil
	}
	if old != nil {
		edited, _, err := c.gh.Issues.EditComment(ctx, c.repo.Owner, c.repo.Name, old.GetID(), &gh.IssueComment{Body: &body})
		if err != nil {
			return Comment{}, fmt.Errorf("edit plan comment on #%d: %w", pr, err)
		}
		c.log.Info("plan comment edited", "pr", pr, "comment", edited.GetID())
		return Comment{ID: edited.GetID(), URL: edited.GetHTMLURL(), Action: CommentEdited}, nil
	}
	made, _, err := c.gh.Issues.CreateComment(ctx, c.repo.Owner, c.repo.Name, pr, &gh.IssueComment{Body: &body})
	if err != nil {
		return Comment{}, fmt.Errorf("create plan comment on #%d: %w", pr, err)
	}
	c.log.Info("plan comment created", "pr", pr, "comment", made.GetID())
	return Comment{ID: made.GetID(), URL: made.GetHTMLURL(), Action: CommentCreated}, nil
}

// sameBody compares bodies as GitHub keeps them (it may store CRLF).
func sameBody(a, b string) bool {
	norm := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")) }
	return norm(a) == norm(b)
}

// findComment returns the first comment of the pull request whose body
// starts with marker, or nil; it reads every page.
func (c *Client) findComment(ctx context.Context, pr int, marker string) (*gh.IssueComment, error) {
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		list, resp, err := c.gh.Issues.ListComments(ctx, c.repo.Owner, c.repo.Name, pr, opts)
		if err != nil {
			return nil, fmt.Errorf("list comments: %w", err)
		}
		for _, cm := range list {
			if strings.HasPrefix(strings.TrimSpace(cm.GetBody()), marker) {
				return cm, nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opts.Page = resp.NextPage
	}
}

// CommentOutcome comments body on every pull request the commit belongs
// to (GitHub's "pull requests associated with a commit": for a commit of
// the tracked branch, the pull request that merged it). body must start
// with OutcomeMarker(sha, kind), as OutcomeComment's does; a pull request
// that already has a comment with that marker is left alone, so calling
// it again posts nothing twice. It returns the numbers of the pull
// requests commented on by this call.
func (c *Client) CommentOutcome(ctx context.Context, sha, body string) ([]int, error) {
	m := outcomeMarkerRE.FindStringSubmatch(body)
	if m == nil || !strings.EqualFold(m[1], sha) {
		return nil, fmt.Errorf("outcome comment for %s: body does not start with its marker: %w", shortSHA(sha), errInvalidReport)
	}
	marker := m[0]
	prs, err := c.pullsOf(ctx, sha)
	if err != nil {
		return nil, fmt.Errorf("outcome comment for %s: %w", shortSHA(sha), err)
	}
	var done []int
	for _, pr := range prs {
		old, err := c.findComment(ctx, pr, marker)
		if err != nil {
			return done, fmt.Errorf("outcome comment on #%d: %w", pr, err)
		}
		if old != nil {
			continue
		}
		if _, _, err := c.gh.Issues.CreateComment(ctx, c.repo.Owner, c.repo.Name, pr, &gh.IssueComment{Body: &body}); err != nil {
			return done, fmt.Errorf("outcome comment on #%d: %w", pr, err)
		}
		c.log.Info("outcome comment created", "pr", pr, "commit", shortSHA(sha), "kind", m[2])
		done = append(done, pr)
	}
	return done, nil
}

// findOutcomeComment returns the comment of that kind on the commit (see
// OutcomeMarker) on the first of its pull requests that has one, or nil.
func (c *Client) findOutcomeComment(ctx context.Context, sha string, kind OutcomeKind) (*gh.IssueComment, error) {
	prs, err := c.pullsOf(ctx, sha)
	if err != nil {
		return nil, err
	}
	for _, pr := range prs {
		found, err := c.findComment(ctx, pr, OutcomeMarker(sha, kind))
		if err != nil || found != nil {
			return found, err
		}
	}
	return nil, nil
}

// pullsOf lists the numbers of the pull requests associated with a
// commit.
func (c *Client) pullsOf(ctx context.Context, sha string) ([]int, error) {
	opts := &gh.ListOptions{PerPage: 100}
	var out []int
	for {
		list, resp, err := c.gh.PullRequests.ListPullRequestsWithCommit(ctx, c.repo.Owner, c.repo.Name, sha, opts)
		if err != nil {
			return nil, fmt.Errorf("pull requests of the commit: %w", err)
		}
		for _, p := range list {
			out = append(out, p.GetNumber())
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// shortSHA is the 12-digit abbreviation molt prints.
func shortSHA(sha string) string {
	return prefix(sha, 12)
}

// prefix is s cut to at most n bytes, never inside a character (a
// revision or hash molt did not make may hold any text).
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
