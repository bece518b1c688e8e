package github

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Defaults of ReceiverOptions.
const (
	DefaultMaxBody   = 1 << 20 // GitHub sends up to 25 MB, but pushes and pull requests are far smaller
	DefaultDedupSize = 10000
)

// maxDeliveryLen bounds the X-GitHub-Delivery header (GitHub sends a
// 36-character GUID), so that remembered ids stay small.
const maxDeliveryLen = 128

// ReceiverOptions configures a Receiver. Secret is required.
type ReceiverOptions struct {
	// Secret is the webhook's secret, as entered in GitHub. Required: a
	// receiver without one would act on anyone's request.
	Secret []byte

	// Repo, "owner/name", limits the receiver to one repository
	// (compared without regard to case, as GitHub does). Deliveries for
	// other repositories are acknowledged with 202 and ignored. Empty
	// accepts any repository that knows the secret.
	Repo string

	// Branch is the tracked branch, e.g. "main" ("refs/heads/main" is
	// accepted too). Pushes to it trigger OnPush; pull requests into it
	// trigger OnPullRequest. Empty follows the repository's default
	// branch, as each payload names it (repository.default_branch).
	Branch string

	// MaxBody is the largest body read, in bytes; a larger one is refused
	// with 413 after reading at most MaxBody+1 bytes. Zero means
	// DefaultMaxBody.
	MaxBody int64

	// DedupSize is how many delivery ids are remembered to recognise a
	// redelivery. Zero means DefaultDedupSize.
	DedupSize int

	// DedupFile, when set, keeps the delivery ids remembered across
	// restarts (e.g. STATE/github-deliveries), bounded by DedupSize.
	DedupFile string

	// OnWrite, when set, hears the outcome of every write of DedupFile
	// (nil when it was written); a file that cannot be written (a
	// read-only or full state directory) is then not an error: the ids
	// are kept in memory and written when the file can be written again.
	// Nil: a failed write is logged, and one at start is an error.
	OnWrite func(path string, err error)

	// OnPush is called, on the request's goroutine, for a push that moves
	// the tracked branch (not one that deletes it). It must not block.
	// Nil means nothing is done.
	OnPush func(Event)

	// OnPullRequest is called, on the request's goroutine, when a pull
	// request into the tracked branch is opened, reopened or gets new
	// commits (synchronize). It must not block. Nil means nothing is done.
	OnPullRequest func(Event)

	// OnComment is called, on the request's goroutine, for a new comment
	// (action "created") on a pull request of the repository whose first
	// line is "/molt promote [SERVICE]" or "/molt abort [SERVICE]" (see
	// ParseCommand); comments on plain issues, edits and anything else
	// are ignored. The event carries the pull request, the command, the
	// author's login and the comment. The receiver does not check who
	// the author is: that is for the callback. It must not block. Nil
	// means nothing is done.
	OnComment func(Event)

	// Logger receives one record per delivery, with its id; never the
	// secret or the signature. Nil discards them.
	Logger *slog.Logger
}

// Validate checks the options.
func (o ReceiverOptions) Validate() error {
	if len(o.Secret) == 0 {
		return errors.New("github webhook: secret is required")
	}
	if b := strings.TrimPrefix(o.Branch, "refs/heads/"); (o.Branch != "" && b == "") || strings.ContainsAny(b, " \t\r\n") {
		return fmt.Errorf("github webhook: branch %q is not a branch name", o.Branch)
	}
	if o.Repo != "" {
		owner, name, ok := strings.Cut(o.Repo, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("github webhook: repo %q is not owner/name", o.Repo)
		}
	}
	if o.MaxBody < 0 {
		return errors.New("github webhook: max body is negative")
	}
	if o.DedupSize < 0 {
		return errors.New("github webhook: dedup size is negative")
	}
	return nil
}

// Receiver is the http.Handler of GitHub's webhook deliveries. It
// verifies each one, answers it at once, and calls OnPush, OnPullRequest
// or OnComment for those that ask for work; a redelivery (same
// X-GitHub-Delivery) is answered but not acted on again. Safe for
// concurrent use.
type Receiver struct {
	secret        []byte
	scope         scope
	maxBody       int64
	seen          *deliveries
	onPush        func(Event)
	onPullRequest func(Event)
	onComment     func(Event)
	log           *slog.Logger
	counts        eventCounters
}

var _ http.Handler = (*Receiver)(nil)

// NewReceiver checks the options and returns a Receiver. It starts
// nothing.
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Receiver{
		secret:        bytes.Clone(opts.Secret),
		scope:         scope{repo: opts.Repo, branch: strings.TrimPrefix(opts.Branch, "refs/heads/")},
		maxBody:       opts.MaxBody,
		onPush:        opts.OnPush,
		onPullRequest: opts.OnPullRequest,
		onComment:     opts.OnComment,
		log:           opts.Logger,
	}
	if r.maxBody == 0 {
		r.maxBody = DefaultMaxBody
	}
	size := opts.DedupSize
	if size == 0 {
		size = DefaultDedupSize
	}
	r.seen = newDeliveries(size)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("hook", "github")
	if opts.DedupFile != "" {
		if err := r.seen.persist(opts.DedupFile, r.log, opts.OnWrite); err != nil {
			return nil, fmt.Errorf("github webhook: delivery ids: %w", err)
		}
	}
	return r, nil
}

// Counts returns how many deliveries were answered so far, by outcome.
func (r *Receiver) Counts() Counts { return r.counts.total() }

// EventCounts returns how many deliveries were answered so far, by event
// (every name of Events, with zeros) and outcome. A delivery refused
// before its signature is verified counts as "other": its event header
// cannot be trusted.
func (r *Receiver) EventCounts() map[string]Counts { return r.counts.byEvent() }

// ServeHTTP answers one delivery:
//
//   - 405 for a method other than POST;
//   - 413 for a body over MaxBody;
//   - 503 with Retry-After for a body refused by a Gate (ErrBusy), 408
//     for one that did not arrive within the Gate's BodyTimeout (these
//     count in the Gate's counts, not in Counts);
//   - 401 for a missing, malformed or wrong X-Hub-Signature-256;
//   - 400 for a missing X-GitHub-Event or X-GitHub-Delivery, or a
//     payload that is not valid JSON or lacks what its event needs;
//   - 415 for a Content-Type other than application/json and
//     application/x-www-form-urlencoded (a payload form field);
//   - 200 "duplicate delivery" for a delivery id already answered;
//   - 200 "pong" for a ping;
//   - 202 and a callback for a push to the tracked branch, a pull
//     request into it that is opened, reopened or synchronized, or a new
//     /molt command comment on a pull request;
//   - 202 "ignored: ..." for any other event.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	delivery := req.Header.Get("X-GitHub-Delivery")
	log := r.log.With("delivery", printable(delivery), "event", printable(req.Header.Get("X-GitHub-Event")))

	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.refuse(w, unverified, log, outMalformed, http.StatusMethodNotAllowed, "method "+printable(req.Method)+" not allowed")
		return
	}
	body, err := readBody(w, req, r.maxBody)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			r.refuse(w, unverified, log, outTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", r.maxBody))
			return
		}
		if limited(w, err) {
			log.Warn("webhook delivery refused", "why", err.Error())
			return
		}
		r.refuse(w, unverified, log, outMalformed, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	if err := verifySignature(r.secret, body, req.Header.Get("X-Hub-Signature-256")); err != nil {
		r.refuse(w, unverified, log.With("remote", req.RemoteAddr), outBadSignature, http.StatusUnauthorized, err.Error())
		return
	}
	name := req.Header.Get("X-GitHub-Event")
	if name == "" || delivery == "" || len(delivery) > maxDeliveryLen {
		r.refuse(w, eventIndex(name), log, outMalformed, http.StatusBadRequest, "missing or invalid X-GitHub-Event or X-GitHub-Delivery header")
		return
	}
	payload, status, err := payloadOf(req.Header.Get("Content-Type"), body)
	if err != nil {
		r.refuse(w, eventIndex(name), log, outMalformed, status, err.Error())
		return
	}
	ev, err := parseEvent(name, delivery, payload)
	if err != nil {
		r.refuse(w, eventIndex(name), log, outMalformed, http.StatusBadRequest, err.Error())
		return
	}
	d := r.scope.decide(ev)
	if !r.seen.add(delivery) {
		r.counts.add(eventIndex(name), outDuplicate)
		log.Info("webhook delivery already answered", "outcome", outDuplicate)
		reply(w, http.StatusOK, "duplicate delivery")
		return
	}
	r.act(log, ev, d)
	reply(w, d.status, d.message)
}

// act counts and logs a decision and calls its callback.
func (r *Receiver) act(log *slog.Logger, ev Event, d decision) {
	if d.ignored {
		r.counts.add(eventIndex(ev.Name), outIgnored)
		log.Debug("webhook delivery ignored", "outcome", outIgnored, "why", d.message)
		return
	}
	r.counts.add(eventIndex(ev.Name), outAccepted)
	log.Info("webhook delivery accepted", "outcome", outAccepted, "what", ev)
	if ev.Kind == KindPing && ev.Repo != "" && !r.scope.ours(ev.Repo) {
		log.Warn("webhook ping from another repository: its pushes will be ignored", "repo", ev.Repo, "serving", r.scope.repo)
	}
	switch {
	case d.action == actPush && r.onPush != nil:
		r.onPush(ev)
	case d.action == actPullRequest && r.onPullRequest != nil:
		r.onPullRequest(ev)
	case d.action == actComment && r.onComment != nil:
		r.onComment(ev)
	}
}

// unverified is the event index of a delivery refused before its
// signature is verified: its X-GitHub-Event header is not trusted.
const unverified = len(Events) - 1

func (r *Receiver) refuse(w http.ResponseWriter, ev int, log *slog.Logger, o outcome, status int, msg string) {
	r.counts.add(ev, o)
	log.Warn("webhook delivery refused", "outcome", o, "status", status, "why", msg)
	reply(w, status, msg)
}

// readBody reads the whole body, or fails with an *http.MaxBytesError
// after reading at most max+1 bytes (none when Content-Length says it is
// too large). The buffer grows with the bytes that arrive, never ahead
// of them to the length the request claims: a slow request holds what it
// has sent, not what it says it will send.
func readBody(w http.ResponseWriter, req *http.Request, max int64) ([]byte, error) {
	if req.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	var buf bytes.Buffer
	if req.ContentLength > 0 {
		buf.Grow(int(min(req.ContentLength, reserveStep)) + 1) // +1: room to see EOF without growing
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, max))
	return buf.Bytes(), err
}

// payloadOf returns the JSON payload of a body, which GitHub sends either
// as is or as the payload field of a form, depending on the webhook's
// content type setting. On error it gives the status to answer.
func payloadOf(contentType string, body []byte) ([]byte, int, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, http.StatusUnsupportedMediaType, errors.New("missing or invalid Content-Type")
	}
	switch mt {
	case "application/json":
		return body, 0, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			return nil, http.StatusBadRequest, errors.New("form body without a payload field")
		}
		return []byte(form.Get("payload")), 0, nil
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %s not supported (use application/json)", printable(mt))
	}
}

// reply writes a short plain-text answer.
func reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// printable shortens a value that came from the request, for logs and
// answers.
func printable(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
