package github

import (
	"fmt"
	"net/http"
	"strings"
)

// action is what the receiver does for a delivery once it has answered
// the checks: nothing but a reply, or one of the callbacks.
type action int

const (
	actNone action = iota
	actPush
	actPullRequest
	actComment
)

// decision is the answer to a verified, well-formed delivery.
type decision struct {
	action  action
	ignored bool // counted as ignored rather than accepted
	status  int
	message string
}

// scope is the repository and branch that a receiver serves.
type scope struct {
	repo   string // "owner/name", or "" for any
	branch string // e.g. "main"; "" for the repository's default branch
}

// tracked is the branch molt follows for ev: the configured one, or the
// default branch the payload names.
func (s scope) tracked(ev Event) string {
	if s.branch != "" {
		return s.branch
	}
	return ev.DefaultBranch
}

// decide says what a delivery asks molt to do. It has no side effects.
func (s scope) decide(ev Event) decision {
	switch ev.Kind {
	case KindPing:
		return decision{status: http.StatusOK, message: "pong"}
	case KindPush:
		return s.decidePush(ev)
	case KindPullRequest:
		return s.decidePullRequest(ev)
	case KindComment:
		return s.decideComment(ev)
	default:
		return ignore("event %s", ev.Name)
	}
}

func (s scope) decidePush(ev Event) decision {
	tracked := "refs/heads/" + s.tracked(ev)
	switch {
	case s.tracked(ev) == "":
		return ignore("push to %s of a repository whose default branch the payload does not name", ev.Ref)
	case !s.ours(ev.Repo):
		return ignore("push to repository %s, serving %s", ev.Repo, s.repo)
	case ev.Ref != tracked:
		return ignore("push to %s, tracking %s", ev.Ref, tracked)
	case ev.Deleted:
		return ignore("deletion of %s", ev.Ref)
	}
	return decision{action: actPush, status: http.StatusAccepted,
		message: fmt.Sprintf("accepted: push to %s at %s", ev.Ref, ev.After)}
}

func (s scope) decidePullRequest(ev Event) decision {
	switch {
	case !s.ours(ev.Repo):
		return ignore("pull request in repository %s, serving %s", ev.Repo, s.repo)
	case ev.PRAction == "closed":
		// A merge is acted on when its push to the branch arrives.
		return ignore("pull request #%d closed (merged: %t)", ev.PRNumber, ev.Merged)
	case ev.PRAction != "opened" && ev.PRAction != "synchronize" && ev.PRAction != "reopened":
		return ignore("pull request #%d action %s", ev.PRNumber, ev.PRAction)
	case ev.BaseRef != s.tracked(ev):
		return ignore("pull request #%d into %s, tracking %s", ev.PRNumber, ev.BaseRef, s.tracked(ev))
	}
	return decision{action: actPullRequest, status: http.StatusAccepted,
		message: fmt.Sprintf("accepted: pull request #%d %s at %s", ev.PRNumber, ev.PRAction, ev.HeadSHA)}
}

// decideComment accepts a new comment on a pull request whose first line
// is a /molt command. Comments are not scoped by branch: the callback
// decides which pull request may command what.
func (s scope) decideComment(ev Event) decision {
	switch {
	case !s.ours(ev.Repo):
		return ignore("comment in repository %s, serving %s", ev.Repo, s.repo)
	case ev.CommentAction != "created":
		return ignore("comment %d %s", ev.CommentID, ev.CommentAction)
	case ev.PRNumber == 0:
		return ignore("comment %d on an issue, not a pull request", ev.CommentID)
	case ev.Command.Action == "":
		return ignore("comment %d on pull request #%d is no /molt command", ev.CommentID, ev.PRNumber)
	}
	return decision{action: actComment, status: http.StatusAccepted,
		message: fmt.Sprintf("accepted: %s on pull request #%d by %s", ev.Command, ev.PRNumber, ev.Author)}
}

// ours reports whether repo is the served repository. GitHub's owner and
// repository names are case-insensitive.
func (s scope) ours(repo string) bool {
	return s.repo == "" || strings.EqualFold(repo, s.repo)
}

func ignore(format string, args ...any) decision {
	return decision{ignored: true, status: http.StatusAccepted, message: "ignored: " + fmt.Sprintf(format, args...)}
}
