package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v60/github"
)

// Revert is what OpenRevertPR did.
type Revert struct {
	Number int    `json:"number,omitempty"` // the pull request; 0 when skipped
	URL    string `json:"url,omitempty"`    // its web address
	Branch string `json:"branch"`
	// Existing is set when the pull request was there already (opened by
	// an earlier call, perhaps closed since): no second one is opened.
	Existing bool `json:"existing,omitempty"`
	// Skipped says why no pull request was opened; "" when one was (or
	// was there already).
	Skipped string `json:"skipped,omitempty"`
}

// RevertBranch is the branch of the revert pull request of a commit:
// molt/revert-<first 12 hex digits>.
func RevertBranch(sha string) string { return "molt/revert-" + shortSHA(sha) }

// OpenRevertPR opens a pull request that reverts failedSHA on base, for a
// person to merge: molt never pushes to the tracked branch itself.
//
// The revert commit is made with the Git Data API: its tree is the tree
// of the failed commit's first parent and its parent is the head of base.
// That is a true revert only while the failed commit is still the head of
// base; otherwise nothing is made and Skipped says why. One pull request
// per failed commit: when the branch RevertBranch(failedSHA) or a pull
// request from it exists, that one is returned (a branch left without a
// pull request by an interrupted call gets its pull request), never a
// second. reason goes into the pull request's description.
func (c *Client) OpenRevertPR(ctx context.Context, failedSHA, base, reason string) (Revert, error) {
	branch := RevertBranch(failedSHA)
	out := Revert{Branch: branch}
	if len(failedSHA) < 12 || base == "" {
		return out, fmt.Errorf("revert %q on %q: %w", failedSHA, base, errInvalidReport)
	}
	if pr, err := c.revertPull(ctx, branch, base); err != nil || pr != nil {
		return existing(out, pr), err
	}
	_, branchExists, err := c.refSHA(ctx, "heads/"+branch)
	if err != nil {
		return out, fmt.Errorf("revert %s: %w", shortSHA(failedSHA), err)
	}
	if !branchExists {
		skipped, err := c.revertCommit(ctx, failedSHA, base, branch)
		if err != nil || skipped != "" {
			out.Skipped = skipped
			return out, err
		}
	}
	pr, _, err := c.gh.PullRequests.Create(ctx, c.repo.Owner, c.repo.Name, &gh.NewPullRequest{
		Title: gh.String(fmt.Sprintf("Revert %s: rollout failed", shortSHA(failedSHA))),
		Head:  gh.String(branch),
		Base:  gh.String(base),
		Body:  gh.String(c.revertBody(failedSHA, base, reason)),
	})
	if isStatus(err, http.StatusUnprocessableEntity) && strings.Contains(err.Error(), "already exists") {
		pr, err := c.revertPull(ctx, branch, base)
		return existing(out, pr), err
	}
	if err != nil {
		return out, fmt.Errorf("revert %s: open pull request: %w", shortSHA(failedSHA), err)
	}
	c.log.Info("revert pull request opened", "commit", shortSHA(failedSHA), "pr", pr.GetNumber())
	out.Number, out.URL = pr.GetNumber(), pr.GetHTMLURL()
	return out, nil
}

func existing(out Revert, pr *gh.PullRequest) Revert {
	if pr != nil {
		out.Number, out.URL, out.Existing = pr.GetNumber(), pr.GetHTMLURL(), true
	}
	return out
}

// revertCommit makes the revert commit and its branch; it returns why it
// did not when the revert would not be a true one.
func (c *Client) revertCommit(ctx context.Context, failedSHA, base, branch string) (skipped string, err error) {
	owner, name := c.repo.Owner, c.repo.Name
	head, ok, err := c.refSHA(ctx, "heads/"+base)
	if err != nil {
		return "", fmt.Errorf("revert %s: %w", shortSHA(failedSHA), err)
	}
	if !ok {
		return fmt.Sprintf("branch %s does not exist", base), nil
	}
	if !strings.EqualFold(head, failedSHA) {
		return fmt.Sprintf("%s has moved on to %s since %s: revert it by hand", base, shortSHA(head), shortSHA(failedSHA)), nil
	}
	failed, _, err := c.gh.Git.GetCommit(ctx, owner, name, failedSHA)
	if err != nil {
		return "", fmt.Errorf("revert %s: read the commit: %w", shortSHA(failedSHA), err)
	}
	if len(failed.Parents) == 0 {
		return fmt.Sprintf("%s is the first commit: nothing to revert to", shortSHA(failedSHA)), nil
	}
	parent, _, err := c.gh.Git.GetCommit(ctx, owner, name, failed.Parents[0].GetSHA())
	if err != nil {
		return "", fmt.Errorf("revert %s: read its parent: %w", shortSHA(failedSHA), err)
	}
	msg := fmt.Sprintf("Revert %s: rollout failed\n\nThis reverts commit %s.\n", shortSHA(failedSHA), failedSHA)
	made, _, err := c.gh.Git.CreateCommit(ctx, owner, name, &gh.Commit{
		Message: &msg,
		Tree:    &gh.Tree{SHA: gh.String(parent.GetTree().GetSHA())},
		Parents: []*gh.Commit{{SHA: gh.String(head)}},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("revert %s: create the commit: %w", shortSHA(failedSHA), err)
	}
	_, _, err = c.gh.Git.CreateRef(ctx, owner, name, &gh.Reference{
		Ref:    gh.String("refs/heads/" + branch),
		Object: &gh.GitObject{SHA: made.SHA},
	})
	if isStatus(err, http.StatusUnprocessableEntity) && strings.Contains(err.Error(), "already exists") {
		return "", nil // made by a concurrent call: its pull request is opened below, or found
	}
	if err != nil {
		return "", fmt.Errorf("revert %s: create branch %s: %w", shortSHA(failedSHA), branch, err)
	}
	return "", nil
}

func (c *Client) revertBody(failedSHA, base, reason string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The rollout of [`%s`](%s) failed", shortSHA(failedSHA), c.repo.CommitURL(failedSHA))
	if reason != "" {
		b.WriteString(": ")
		b.WriteString(escapeMarkdown(oneLine(reason)))
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "Merging this pull request reverts that commit on `%s`: molt then deploys the previous state again. ", base)
	b.WriteString("molt opened it and does not merge it; close it to keep the commit.\n\n")
	fmt.Fprintf(&b, "<!-- molt:revert:%s -->\n", failedSHA)
	return b.String()
}

// revertPull finds the newest pull request, open or closed, from branch
// into base.
func (c *Client) revertPull(ctx context.Context, branch, base string) (*gh.PullRequest, error) {
	list, _, err := c.gh.PullRequests.List(ctx, c.repo.Owner, c.repo.Name, &gh.PullRequestListOptions{
		State: "all", Head: c.repo.Owner + ":" + branch, Base: base,
		ListOptions: gh.ListOptions{PerPage: 10},
	})
	if err != nil {
		return nil, fmt.Errorf("find revert pull request: %w", err)
	}
	var newest *gh.PullRequest
	for _, p := range list {
		if p.GetHead().GetRef() == branch && (newest == nil || p.GetNumber() > newest.GetNumber()) {
			newest = p
		}
	}
	return newest, nil
}

// refSHA reads a reference such as "heads/main"; ok is false when it
// does not exist.
func (c *Client) refSHA(ctx context.Context, ref string) (sha string, ok bool, err error) {
	r, _, err := c.gh.Git.GetRef(ctx, c.repo.Owner, c.repo.Name, ref)
	if isStatus(err, http.StatusNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", ref, err)
	}
	return r.GetObject().GetSHA(), true, nil
}

// isStatus reports whether err is GitHub's answer with the status code.
func isStatus(err error, code int) bool {
	var er *gh.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == code
}
