package github

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	gh "github.com/google/go-github/v60/github"
)

// Permission is what a report needs its token to be allowed on the
// repository, named as a GitHub App's (and a fine-grained token's)
// repository permissions are. Its String is a stable metric label.
type Permission string

// The permissions of molt's reports.
const (
	// PermStatuses sets commit statuses (molt/plan, molt/deploy).
	PermStatuses Permission = "statuses:write"
	// PermComments writes comments on pull requests: plan, outcome and
	// reply comments ("Pull requests: write" or "Issues: write"; reading
	// the pull requests of a commit needs "Pull requests: read").
	PermComments Permission = "pull_requests:write"
	// PermRevert opens a revert pull request: a commit and a branch
	// ("Contents: write"), then the pull request ("Pull requests:
	// write").
	PermRevert Permission = "contents:write,pull_requests:write"
)

var permissions = [...]Permission{PermStatuses, PermComments, PermRevert}

func (p Permission) String() string { return string(p) }

// Hint says, for a person, what to grant: the setting of a GitHub App
// or a fine-grained token, and the scope of a classic token.
func (p Permission) Hint() string {
	switch p {
	case PermStatuses:
		return `"Commit statuses: Read and write" (GitHub App, fine-grained token), or the repo:status scope (classic token)`
	case PermComments:
		return `"Pull requests: Read and write" or "Issues: Read and write" (GitHub App, fine-grained token), or the repo scope (classic token; public_repo for a public repository)`
	case PermRevert:
		return `"Contents: Read and write" and "Pull requests: Read and write" (GitHub App, fine-grained token), or the repo scope (classic token)`
	}
	return string(p)
}

func (p Permission) index() int {
	for i, q := range permissions {
		if p == q {
			return i
		}
	}
	return -1
}

// refusedStatuses are the answers of GitHub that say the credentials do
// not allow a call: 401 (not accepted at all), 403 (not allowed) and 404
// (GitHub hides what a token may not see).
var refusedStatuses = [...]int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}

func refusedIndex(status int) int {
	for i, s := range refusedStatuses {
		if s == status {
			return i
		}
	}
	return -1
}

// RefusedError is GitHub refusing a report for its credentials: 401 (the
// token, or a GitHub App's key, is wrong, expired or revoked), 403 (the
// token may not do this) or 404 (the token cannot see the repository, or
// may not do this: GitHub answers 404 rather than say what exists).
// Permission is what the report needs. It wraps GitHub's answer, so
// Permanent holds for it. Find it with errors.As.
type RefusedError struct {
	Status     int
	Permission Permission
	Err        error
}

func (e *RefusedError) Error() string {
	var ae *AppError
	if errors.As(e.Err, &ae) {
		return e.Err.Error() // it says what to check
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("%v [GitHub answered 401: the credentials are wrong, expired or revoked]", e.Err)
	case http.StatusNotFound:
		return fmt.Sprintf("%v [GitHub answered 404: the token cannot see the repository, or it needs %s: %s]", e.Err, e.Permission, e.Permission.Hint())
	}
	return fmt.Sprintf("%v [GitHub answered %d: the token needs %s: %s]", e.Err, e.Status, e.Permission, e.Permission.Hint())
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Refusal is how many reports needing Permission GitHub refused with
// Status (401, 403 or 404).
type Refusal struct {
	Permission Permission
	Status     int
	Count      int64
}

// refusals counts RefusedErrors by permission and status.
type refusals [len(permissions)][len(refusedStatuses)]atomic.Int64

func (r *refusals) snapshot() []Refusal {
	out := make([]Refusal, 0, len(permissions)*len(refusedStatuses))
	for i, p := range permissions {
		for j, s := range refusedStatuses {
			out = append(out, Refusal{Permission: p, Status: s, Count: r[i][j].Load()})
		}
	}
	return out
}

// refusal returns err as a *RefusedError, counted, when it is GitHub
// refusing the credentials (a rate limit is not); any other error as it
// is.
func (r *refusals) refusal(err error, need Permission) error {
	if err == nil {
		return nil
	}
	var limited *LimitedError
	if errors.As(err, &limited) {
		return err
	}
	var already *RefusedError
	if errors.As(err, &already) {
		return err
	}
	status := 0
	var er *gh.ErrorResponse
	var ae *AppError
	switch {
	case errors.As(err, &er) && er.Response != nil:
		status = er.Response.StatusCode
	case errors.As(err, &ae):
		status = ae.Status
	}
	j, i := refusedIndex(status), need.index()
	if j < 0 || i < 0 {
		return err
	}
	r[i][j].Add(1)
	return &RefusedError{Status: status, Permission: need, Err: err}
}
