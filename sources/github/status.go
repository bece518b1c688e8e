package github

import (
	"context"
	"fmt"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"
)

// Contexts of the commit statuses molt sets.
const (
	ContextPlan   = "molt/plan"
	ContextDeploy = "molt/deploy"
)

// States of a commit status.
const (
	StatePending = "pending"
	StateSuccess = "success"
	StateFailure = "failure"
	StateError   = "error"
)

// maxDescription is GitHub's limit on a status description, in
// characters.
const maxDescription = 140

// SetStatus sets a commit status: state is pending, success, failure or
// error; description is cut to GitHub's 140 characters (ending in "…");
// targetURL may be empty. Each call adds a status (GitHub shows the
// newest per context); it is not deduplicated here.
func (c *Client) SetStatus(ctx context.Context, sha, context, state, description, targetURL string) error {
	if !validState(state) {
		return fmt.Errorf("status %s on %s: state %q: %w", context, shortSHA(sha), state, errInvalidReport)
	}
	if sha == "" || context == "" {
		return fmt.Errorf("status: commit and context are required: %w", errInvalidReport)
	}
	st := &gh.RepoStatus{State: &state, Context: &context, Description: gh.String(cutText(description, maxDescription))}
	if targetURL != "" {
		st.TargetURL = &targetURL
	}
	if _, _, err := c.gh.Repositories.CreateStatus(ctx, c.repo.Owner, c.repo.Name, sha, st); err != nil {
		return fmt.Errorf("status %s=%s on %s: %w", context, state, shortSHA(sha), err)
	}
	c.log.Info("commit status set", "commit", shortSHA(sha), "context", context, "state", state)
	return nil
}

// cutText cuts s to at most n characters, ending in "…" when cut.
func cutText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
