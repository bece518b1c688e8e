package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// EventKind is the kind of a delivery, from its X-GitHub-Event header.
type EventKind int

const (
	// KindOther is any event molt does not act on (issues, releases, ...).
	KindOther EventKind = iota
	// KindPing is sent once when a webhook is created.
	KindPing
	// KindPush is a push of a branch or a tag, including creation and deletion.
	KindPush
	// KindPullRequest is any activity on a pull request.
	KindPullRequest
	// KindComment is any activity on a comment of an issue or a pull
	// request's conversation (an issue_comment delivery).
	KindComment
)

// String gives the X-GitHub-Event name of the kind.
func (k EventKind) String() string {
	switch k {
	case KindPing:
		return "ping"
	case KindPush:
		return "push"
	case KindPullRequest:
		return "pull_request"
	case KindComment:
		return "issue_comment"
	default:
		return "other"
	}
}

// Event is what a verified delivery says, read from its payload. It is a
// plain value: the callbacks may keep it or send it anywhere.
type Event struct {
	Kind     EventKind
	Name     string // the X-GitHub-Event header, e.g. "push" or "issue_comment"
	Delivery string // the X-GitHub-Delivery header; a redelivery reuses it
	Repo     string // repository.full_name, "owner/name"; "" for an organization's ping
	// DefaultBranch is repository.default_branch, e.g. "main" ("" when the
	// payload does not say).
	DefaultBranch string

	// Push.
	Ref     string // the full ref pushed, e.g. "refs/heads/main" or "refs/tags/v1"
	Before  string // the previous head; all zeros when the ref was created
	After   string // the new head commit; all zeros when the ref was deleted
	Deleted bool   // the push deleted the ref

	// Pull request; for a comment, the pull request commented on (0 for
	// a comment on a plain issue).
	PRNumber int
	PRAction string // "opened", "synchronize", "reopened", "closed", ...
	HeadSHA  string // the head commit of the pull request
	HeadRef  string // the head branch, e.g. "feature" (no refs/heads/)
	HeadRepo string // full_name of the head repository; differs from Repo for a fork, "" if the fork is gone
	BaseRef  string // the branch the pull request would merge into, e.g. "main"
	Merged   bool

	// Comment.
	CommentAction string  // "created", "edited" or "deleted"
	CommentID     int64   // comment.id
	CommentBody   string  // comment.body, as written
	Author        string  // comment.user.login
	Command       Command // the /molt command of the body's first line; zero when there is none
}

// LogValue prints the fields that matter for the event's kind.
func (e Event) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("repo", e.Repo)}
	switch e.Kind {
	case KindPush:
		attrs = append(attrs, slog.String("ref", e.Ref), slog.String("after", e.After))
	case KindPullRequest:
		attrs = append(attrs, slog.Int("pr", e.PRNumber), slog.String("action", e.PRAction),
			slog.String("head", e.HeadSHA), slog.String("base", e.BaseRef))
	case KindComment:
		attrs = append(attrs, slog.Int("pr", e.PRNumber), slog.String("action", e.CommentAction),
			slog.Int64("comment", e.CommentID), slog.String("author", e.Author))
		if e.Command.Action != "" {
			attrs = append(attrs, slog.String("command", e.Command.String()))
		}
	}
	return slog.GroupValue(attrs...)
}

// The parts of GitHub's payloads that molt reads. Every other field is
// skipped; the whole payload must still be valid JSON.
type (
	repository struct {
		FullName      string `json:"full_name"`
		DefaultBranch string `json:"default_branch"`
	}
	pingPayload struct {
		Repository *repository `json:"repository"`
	}
	pushPayload struct {
		Ref        string     `json:"ref"`
		Before     string     `json:"before"`
		After      string     `json:"after"`
		Deleted    bool       `json:"deleted"`
		Repository repository `json:"repository"`
	}
	pullRequestPayload struct {
		Action      string `json:"action"`
		Number      int    `json:"number"`
		PullRequest struct {
			Merged bool `json:"merged"`
			Head   struct {
				SHA  string      `json:"sha"`
				Ref  string      `json:"ref"`
				Repo *repository `json:"repo"` // null when the fork was deleted
			} `json:"head"`
			Base struct {
				Ref string `json:"ref"`
			} `json:"base"`
		} `json:"pull_request"`
		Repository repository `json:"repository"`
	}
	issueCommentPayload struct {
		Action string `json:"action"`
		Issue  struct {
			Number      int       `json:"number"`
			PullRequest *struct{} `json:"pull_request"` // present (and not null) only on a pull request
		} `json:"issue"`
		Comment struct {
			ID   int64  `json:"id"`
			Body string `json:"body"`
			User struct {
				Login string `json:"login"`
			} `json:"user"`
		} `json:"comment"`
		Repository repository `json:"repository"`
	}
)

// errMalformed is the class of payloads that are not what their event
// name promises.
var errMalformed = errors.New("malformed payload")

// parseEvent reads the payload of a delivery of the named event. Events
// other than ping, push, pull_request and issue_comment are not parsed.
func parseEvent(name, delivery string, payload []byte) (Event, error) {
	ev := Event{Name: name, Delivery: delivery}
	switch name {
	case "ping":
		ev.Kind = KindPing
		var p pingPayload
		if err := unmarshal(payload, &p); err != nil {
			return Event{}, err
		}
		if p.Repository != nil {
			ev.Repo = p.Repository.FullName
		}
	case "push":
		ev.Kind = KindPush
		var p pushPayload
		if err := unmarshal(payload, &p); err != nil {
			return Event{}, err
		}
		if p.Ref == "" || p.Repository.FullName == "" || !isCommitID(p.After) {
			return Event{}, fmt.Errorf("%w: push needs ref, after and repository.full_name", errMalformed)
		}
		ev.Repo, ev.Ref, ev.Before, ev.After = p.Repository.FullName, p.Ref, p.Before, p.After
		ev.DefaultBranch = p.Repository.DefaultBranch
		ev.Deleted = p.Deleted || strings.Trim(p.After, "0") == ""
	case "pull_request":
		ev.Kind = KindPullRequest
		var p pullRequestPayload
		if err := unmarshal(payload, &p); err != nil {
			return Event{}, err
		}
		pr := p.PullRequest
		if p.Action == "" || p.Number <= 0 || p.Repository.FullName == "" || !isCommitID(pr.Head.SHA) || pr.Base.Ref == "" {
			return Event{}, fmt.Errorf("%w: pull_request needs action, number, repository.full_name, pull_request.head.sha and pull_request.base.ref", errMalformed)
		}
		ev.Repo, ev.PRNumber, ev.PRAction = p.Repository.FullName, p.Number, p.Action
		ev.DefaultBranch = p.Repository.DefaultBranch
		ev.HeadSHA, ev.HeadRef, ev.BaseRef, ev.Merged = pr.Head.SHA, pr.Head.Ref, pr.Base.Ref, pr.Merged
		if pr.Head.Repo != nil {
			ev.HeadRepo = pr.Head.Repo.FullName
		}
	case "issue_comment":
		ev.Kind = KindComment
		var p issueCommentPayload
		if err := unmarshal(payload, &p); err != nil {
			return Event{}, err
		}
		cm := p.Comment
		if p.Action == "" || p.Issue.Number <= 0 || p.Repository.FullName == "" || cm.ID <= 0 || cm.User.Login == "" {
			return Event{}, fmt.Errorf("%w: issue_comment needs action, issue.number, repository.full_name, comment.id and comment.user.login", errMalformed)
		}
		ev.Repo, ev.CommentAction, ev.CommentID, ev.CommentBody, ev.Author = p.Repository.FullName, p.Action, cm.ID, cm.Body, cm.User.Login
		if p.Issue.PullRequest != nil {
			ev.PRNumber = p.Issue.Number
		}
		ev.Command, _ = ParseCommand(cm.Body)
	default:
		ev.Kind = KindOther
	}
	return ev, nil
}

func unmarshal(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
	return nil
}

// isCommitID reports whether s is a full SHA-1 or SHA-256 object name in
// lower-case hex, as GitHub writes them.
func isCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
