package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// Report is one thing to tell GitHub: exactly one of Plan, Status,
// Outcome and Reply is set. Plain data: the Queue persists it as JSON.
// Bodies are rendered when the report is delivered, by the deliverer,
// which knows the repository's links and (for an outcome) the revert pull
// request.
type Report struct {
	Plan    *PlanInput `json:"plan,omitempty"`
	Status  *Status    `json:"status,omitempty"`
	Outcome *Outcome   `json:"outcome,omitempty"`
	Reply   *Reply     `json:"reply,omitempty"`
}

// Status is a commit status to set (see Client.SetStatus).
type Status struct {
	SHA         string `json:"sha"`
	Context     string `json:"context"` // ContextPlan or ContextDeploy
	State       string `json:"state"`   // StatePending, StateSuccess, StateFailure or StateError
	Description string `json:"description,omitempty"`
	// TargetURL is where the status's "Details" link leads. When it is
	// empty, LinkPlan or LinkOutcome name one of molt's comments whose
	// web address becomes the link, found when the status is delivered
	// (report the comment first); a status whose comment is not there
	// (yet) goes without a link.
	TargetURL string `json:"targetURL,omitempty"`
	// LinkPlan links the plan comment of this pull request.
	LinkPlan int `json:"linkPlan,omitempty"`
	// LinkOutcome links the comment of this kind on the status's commit
	// (see OutcomeMarker), on the first of its pull requests that has
	// one.
	LinkOutcome OutcomeKind `json:"linkOutcome,omitempty"`
}

// Slot is the report's de-duplication slot: a newer pending report in
// the same slot replaces an older one. "plan:<pr>" (the newest plan of a
// pull request is the one worth showing), "status:<sha>:<context>" (only
// the newest state counts), "outcome:<sha>:<kind>", "reply:<delivery>"
// (one answer per comment).
func (r Report) Slot() string {
	switch {
	case r.Plan != nil:
		return "plan:" + strconv.Itoa(r.Plan.PR)
	case r.Status != nil:
		return "status:" + r.Status.SHA + ":" + r.Status.Context
	case r.Outcome != nil:
		return "outcome:" + r.Outcome.SHA + ":" + string(r.Outcome.Kind)
	case r.Reply != nil:
		return "reply:" + r.Reply.Delivery
	}
	return ""
}

// Key names what the report says: "plan:<pr>:<sha>",
// "status:<sha>:<context>:<state>", "outcome:<sha>:<kind>",
// "reply:<delivery>". The Queue does not deliver again what it delivered
// last in the slot.
func (r Report) Key() string {
	switch {
	case r.Plan != nil:
		return r.Slot() + ":" + r.Plan.SHA
	case r.Status != nil:
		return r.Slot() + ":" + r.Status.State
	}
	return r.Slot()
}

// Validate checks that the report can be delivered.
func (r Report) Validate() error {
	n := 0
	for _, set := range []bool{r.Plan != nil, r.Status != nil, r.Outcome != nil, r.Reply != nil} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return fmt.Errorf("report: want exactly one of plan, status, outcome, reply, have %d: %w", n, errInvalidReport)
	case r.Plan != nil && (r.Plan.PR <= 0 || r.Plan.SHA == ""):
		return fmt.Errorf("plan report: pull request and commit are required: %w", errInvalidReport)
	case r.Status != nil && (r.Status.SHA == "" || r.Status.Context == ""):
		return fmt.Errorf("status report: commit and context are required: %w", errInvalidReport)
	case r.Status != nil && !validState(r.Status.State):
		return fmt.Errorf("status report: state %q: %w", r.Status.State, errInvalidReport)
	case r.Status != nil && (r.Status.LinkPlan < 0 || (r.Status.LinkOutcome != "" && !validKind(r.Status.LinkOutcome))):
		return fmt.Errorf("status report: link to pull request %d, outcome %q: %w", r.Status.LinkPlan, r.Status.LinkOutcome, errInvalidReport)
	case r.Outcome != nil && (r.Outcome.SHA == "" || !validKind(r.Outcome.Kind)):
		return fmt.Errorf("outcome report: commit and kind (success or failure) are required: %w", errInvalidReport)
	case r.Reply != nil && (r.Reply.PR <= 0 || !validDelivery(r.Reply.Delivery) || r.Reply.Body == ""):
		return fmt.Errorf("reply report: pull request, delivery id (letters, digits, . _ -) and body are required: %w", errInvalidReport)
	}
	return nil
}

func validKind(k OutcomeKind) bool {
	return k == OutcomeSuccess || k == OutcomeFailure || k == OutcomePaused
}

func validState(s string) bool {
	switch s {
	case StatePending, StateSuccess, StateFailure, StateError:
		return true
	}
	return false
}

// LogValue names the report in logs.
func (r Report) LogValue() slog.Value { return slog.StringValue(r.Key()) }

// Reporter delivers a report. The Client delivers to GitHub; LogReporter
// only logs. Deliver may be called again with the same report after an
// error (the Queue retries): implementations make that safe.
type Reporter interface {
	Deliver(ctx context.Context, r Report) error
}

// Deliver carries a report out: a plan becomes the pull request's plan
// comment (UpsertPlanComment), a status a commit status (SetStatus), an
// outcome a comment on the commit's pull requests (CommentOutcome), after
// opening a revert pull request when the outcome asks for one, and a
// reply a new comment on its pull request (PostReply). Each step is
// idempotent, so delivering again after an error posts nothing twice.
// GitHub refusing the credentials is a *RefusedError that names the
// permission the report needs, and is counted (see Refusals).
func (c *Client) Deliver(ctx context.Context, r Report) error {
	if err := r.Validate(); err != nil {
		return err
	}
	switch {
	case r.Plan != nil:
		in := *r.Plan
		if in.Repo.IsZero() {
			in.Repo = c.repo
		}
		_, err := c.UpsertPlanComment(ctx, in.PR, PlanComment(in))
		return c.refused.refusal(err, PermComments)
	case r.Status != nil:
		s := *r.Status
		if s.TargetURL == "" {
			link, err := c.statusLink(ctx, s)
			if err != nil {
				return err
			}
			s.TargetURL = link
		}
		return c.refused.refusal(c.SetStatus(ctx, s.SHA, s.Context, s.State, s.Description, s.TargetURL), PermStatuses)
	case r.Reply != nil:
		_, err := c.PostReply(ctx, *r.Reply)
		return c.refused.refusal(err, PermComments)
	default:
		return c.deliverOutcome(ctx, *r.Outcome)
	}
}

func (c *Client) deliverOutcome(ctx context.Context, o Outcome) error {
	if o.Repo.IsZero() {
		o.Repo = c.repo
	}
	if o.Kind == OutcomeFailure && o.RevertBase != "" && o.Revert == nil {
		rv, err := c.OpenRevertPR(ctx, o.SHA, o.RevertBase, o.Reason)
		if err != nil && !Permanent(err) {
			return err
		}
		if err != nil {
			err = c.refused.refusal(err, PermRevert)
			attrs := []any{"commit", shortSHA(o.SHA), "err", err}
			var re *RefusedError
			if errors.As(err, &re) {
				attrs = append(attrs, "needs", re.Permission)
			}
			c.log.Warn("revert pull request not opened", attrs...)
			rv.Skipped = "GitHub refused it (" + refusal(err) + ")"
		}
		o.Revert = &rv
	}
	_, err := c.CommentOutcome(ctx, o.SHA, OutcomeComment(o))
	return c.refused.refusal(err, PermComments)
}

// statusLink finds the web address of the comment a status links to
// ("" when it names none, or the comment is not there). An error that
// will not go away by trying again (the comments may not be read) leaves
// the status without a link rather than unset.
func (c *Client) statusLink(ctx context.Context, s Status) (string, error) {
	var found *gh.IssueComment
	var err error
	switch {
	case s.LinkPlan > 0:
		found, err = c.findComment(ctx, s.LinkPlan, PlanMarker)
	case s.LinkOutcome != "":
		found, err = c.findOutcomeComment(ctx, s.SHA, s.LinkOutcome)
	default:
		return "", nil
	}
	if err != nil && !Permanent(err) {
		return "", fmt.Errorf("status %s on %s: find the comment to link: %w", s.Context, shortSHA(s.SHA), err)
	}
	if err != nil {
		c.log.Warn("commit status goes without a link: molt's comment cannot be read", "commit", shortSHA(s.SHA), "context", s.Context, "err", err)
		return "", nil
	}
	return found.GetHTMLURL(), nil
}

// Permanent reports whether an error of a delivery will not go away by
// sending the same report again: an invalid report, or GitHub refusing it
// (4xx other than 408, 409, 429 and rate limits).
func Permanent(err error) bool {
	if errors.Is(err, errInvalidReport) {
		return true
	}
	var limited *LimitedError
	if errors.As(err, &limited) {
		return false
	}
	var ae *AppError
	if errors.As(err, &ae) {
		return ae.permanent()
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch code := er.Response.StatusCode; {
		case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooManyRequests:
			return false
		case code >= 400 && code < 500:
			return true
		}
	}
	return false
}

// limitedUntil reports until when a rate limit holds, for the errors
// that say one does.
func limitedUntil(err error, now time.Time) (time.Time, bool) {
	var limited *LimitedError
	if errors.As(err, &limited) {
		return limited.Until, true
	}
	// go-github's own, in case a limit reached it past the limiter.
	var rle *gh.RateLimitError
	if errors.As(err, &rle) {
		return rle.Rate.Reset.Time, true
	}
	var abuse *gh.AbuseRateLimitError
	if errors.As(err, &abuse) {
		if abuse.RetryAfter != nil {
			return now.Add(*abuse.RetryAfter), true
		}
		return now.Add(secondaryDefaultWait), true
	}
	return time.Time{}, false
}

// refusal is GitHub's message in an error, without the request.
func refusal(err error) string {
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return strconv.Itoa(er.Response.StatusCode) + " " + er.Message
	}
	return err.Error()
}

// LogReporter is the Reporter without a token: it logs what it would
// have posted, so that reporting to GitHub is optional.
type LogReporter struct {
	// Logger receives one record per report; nil discards them.
	Logger *slog.Logger
	// Repo makes the links of the logged bodies (see NewRepoRef).
	Repo RepoRef
	// Why says why nothing is posted, in the records ("github report
	// not sent: <Why>"); "" means "no token".
	Why string
}

var _ Reporter = LogReporter{}

// logBodyMax bounds the body logged.
const logBodyMax = 4000

// Deliver logs the report: the target and, for comments, the body it
// would post (cut to a few thousand characters). It never fails.
func (l LogReporter) Deliver(_ context.Context, r Report) error {
	log := l.Logger
	if log == nil {
		return nil
	}
	if err := r.Validate(); err != nil {
		log.Warn("github report invalid", "err", err)
		return nil
	}
	msg := "github report not sent: no token"
	if l.Why != "" {
		msg = "github report not sent: " + l.Why
	}
	switch {
	case r.Plan != nil:
		in := *r.Plan
		if in.Repo.IsZero() {
			in.Repo = l.Repo
		}
		log.Info(msg, "report", r, "pr", in.PR, "body", cutText(PlanComment(in), logBodyMax))
	case r.Status != nil:
		s := r.Status
		log.Info(msg, "report", r, "commit", s.SHA, "context", s.Context, "state", s.State,
			"description", cutText(s.Description, maxDescription), "target", statusTarget(*s))
	case r.Reply != nil:
		log.Info(msg, "report", r, "pr", r.Reply.PR, "body", cutText(r.Reply.Body, logBodyMax))
	default:
		o := *r.Outcome
		if o.Repo.IsZero() {
			o.Repo = l.Repo
		}
		if o.Kind == OutcomeFailure && o.RevertBase != "" {
			log.Info(msg, "report", r, "revert", RevertBranch(o.SHA), "base", o.RevertBase)
		}
		log.Info(msg, "report", r, "commit", o.SHA, "body", cutText(OutcomeComment(o), logBodyMax))
	}
	return nil
}

// statusTarget names where a status links, for logs.
func statusTarget(s Status) string {
	switch {
	case s.TargetURL != "":
		return s.TargetURL
	case s.LinkPlan > 0:
		return "the plan comment of #" + strconv.Itoa(s.LinkPlan)
	case s.LinkOutcome != "":
		return "the " + string(s.LinkOutcome) + " comment of " + shortSHA(s.SHA)
	}
	return ""
}
