package github

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Limits. A GitHub delivery is one request of a few KiB,
// sent in milliseconds, a handful at a time: these bound what a flood of
// slow or large requests can cost serve (about MaxInflight plus some
// 30 KiB of goroutine and buffers per admitted request) far above
// anything GitHub sends.
const (
	// DefaultMaxRequests webhook requests are read or answered at once.
	DefaultMaxRequests = 256
	// DefaultMaxInflight bytes of request bodies are held at once by all
	// webhook requests together.
	DefaultMaxInflight = 16 << 20
	// DefaultBodyTimeout is the longest a webhook body may take to
	// arrive: GitHub gives up on a delivery after ten seconds anyway.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultRetryAfter is what a refused request is told to wait.
	DefaultRetryAfter = 5 * time.Second
)

// reserveStep is how much of the body budget a request reserves at a
// time: a whole typical delivery before its body is read, then as much
// again whenever that is used up, so that a request holds budget for the
// bytes it has sent, not for the length it claims.
const reserveStep = 32 << 10

// ErrBusy is the error of a body read refused because the webhook
// requests together hold Limits.MaxInflight bytes: the request should be
// answered 503, to be retried later.
var ErrBusy = errors.New("too many webhook bytes in flight")

// Limits bound the webhook requests served at once and the body bytes
// they hold, and the time a body may take to arrive. Zero fields mean
// their defaults.
type Limits struct {
	MaxRequests int           // requests past it are answered 503 at once
	MaxInflight int64         // a request that would take the bodies past it is answered 503
	BodyTimeout time.Duration // a body not read within it (from the request's start) is cut off: 408
	RetryAfter  time.Duration // the Retry-After of a 503
	Logger      *slog.Logger  // one warning per burst of refusals (at most one every ten seconds); nil discards
}

// Validate checks the limits.
func (l Limits) Validate() error {
	if l.MaxRequests < 0 || l.MaxInflight < 0 || l.BodyTimeout < 0 || l.RetryAfter < 0 {
		return errors.New("webhook limits: negative limit")
	}
	return nil
}

// Gate applies Limits to the webhook handlers it wraps, together: one
// Gate is shared by every webhook route of a server. The other routes of
// that server (health, metrics, the dashboard) are not wrapped and so
// never refused for the webhooks' load. Safe for concurrent use.
type Gate struct {
	lim      Limits
	requests atomic.Int64
	bytes    atomic.Int64
	log      *slog.Logger

	refusedRequests, refusedBytes, timedOut atomic.Int64

	mu       sync.Mutex
	lastWarn time.Time
}

// GateCounts is what a Gate refused since it was made.
type GateCounts struct {
	RefusedRequests int64 // answered 503: MaxRequests were being served
	RefusedBytes    int64 // answered 503: MaxInflight bytes were held
	TimedOut        int64 // bodies cut off at BodyTimeout
	Requests        int64 // being served now
	Bytes           int64 // body bytes reserved now
}

// NewGate checks the limits and returns a Gate. It starts nothing.
func NewGate(l Limits) (*Gate, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if l.MaxRequests == 0 {
		l.MaxRequests = DefaultMaxRequests
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.BodyTimeout == 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.RetryAfter == 0 {
		l.RetryAfter = DefaultRetryAfter
	}
	g := &Gate{lim: l, log: l.Logger}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// Counts returns what the gate refused so far, and what it holds now.
func (g *Gate) Counts() GateCounts {
	return GateCounts{
		RefusedRequests: g.refusedRequests.Load(), RefusedBytes: g.refusedBytes.Load(), TimedOut: g.timedOut.Load(),
		Requests: g.requests.Load(), Bytes: g.bytes.Load(),
	}
}

// Wrap returns h behind the gate: a request past MaxRequests, or whose
// first bytes would take the bodies past MaxInflight, is answered 503
// with Retry-After (and its connection closed) before its body is read;
// the body's read deadline is set to BodyTimeout from now; and every read
// of the body reserves its bytes, so that a read past MaxInflight fails
// with ErrBusy (h answers 503: see ServeHTTP of Receiver) and one past
// the deadline with a timeout (h answers 408). What a request reserved is
// released when h returns.
func (g *Gate) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if g.requests.Add(1) > int64(g.lim.MaxRequests) {
			g.requests.Add(-1)
			g.refusedRequests.Add(1)
			g.busy(w, "too many webhook requests at once")
			return
		}
		defer g.requests.Add(-1)
		b := &gatedBody{ReadCloser: req.Body, g: g, left: -1}
		if req.ContentLength >= 0 {
			b.left = req.ContentLength
		}
		defer b.release()
		if req.ContentLength != 0 && !b.reserve() {
			g.refusedBytes.Add(1)
			g.busy(w, ErrBusy.Error())
			return
		}
		// Past ReadTimeout's deadline of the whole server: this body's own.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.lim.BodyTimeout))
		req.Body = b
		h.ServeHTTP(w, req)
		if b.timedOut {
			g.timedOut.Add(1)
		}
	})
}

// busy answers 503 with Retry-After and closes the connection.
func (g *Gate) busy(w http.ResponseWriter, why string) {
	g.warn(why)
	answerBusy(w, g.lim.RetryAfter, why)
}

func answerBusy(w http.ResponseWriter, after time.Duration, why string) {
	w.Header().Set("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second)))
	w.Header().Set("Connection", "close")
	reply(w, http.StatusServiceUnavailable, why+": retry later")
}

// busyError is ErrBusy with the time to wait.
type busyError struct{ after time.Duration }

func (e busyError) Error() string        { return ErrBusy.Error() }
func (e busyError) Is(target error) bool { return target == ErrBusy }

// limited answers a body read that a Gate cut short, and reports whether
// err was one: 503 with Retry-After for ErrBusy, 408 for a body that did
// not arrive in time. The connection is closed either way.
func limited(w http.ResponseWriter, err error) bool {
	var busy busyError
	switch {
	case errors.As(err, &busy):
		answerBusy(w, busy.after, ErrBusy.Error())
	case errors.Is(err, errBodyTimeout):
		w.Header().Set("Connection", "close")
		reply(w, http.StatusRequestTimeout, errBodyTimeout.Error())
	default:
		return false
	}
	return true
}

// warn logs a refusal, at most once every ten seconds.
func (g *Gate) warn(why string) {
	g.mu.Lock()
	now := time.Now()
	quiet := now.Sub(g.lastWarn) < 10*time.Second
	if !quiet {
		g.lastWarn = now
	}
	g.mu.Unlock()
	if !quiet {
		c := g.Counts()
		g.log.Warn("webhook requests refused: the server is at its webhook limits", "why", why,
			"requests", c.Requests, "bytes", c.Bytes, "refused-requests", c.RefusedRequests, "refused-bytes", c.RefusedBytes,
			"max-requests", g.lim.MaxRequests, "max-inflight", g.lim.MaxInflight)
	}
}

// tryReserve takes n bytes of the budget, or reports false.
func (g *Gate) tryReserve(n int64) bool {
	if g.bytes.Add(n) > g.lim.MaxInflight {
		g.bytes.Add(-n)
		return false
	}
	return true
}

// gatedBody is a request body whose bytes are reserved in the gate's
// budget before they are read.
type gatedBody struct {
	io.ReadCloser
	g        *Gate
	left     int64 // bytes the request may still send, -1 when unknown
	reserved int64 // reserved and not yet read
	held     int64 // reserved in all
	timedOut bool
}

// reserve takes the next step of budget (less when fewer bytes are left
// to come, one byte at the end to see EOF).
func (b *gatedBody) reserve() bool {
	n := int64(reserveStep)
	if b.left >= 0 {
		n = max(min(n, b.left), 1)
	}
	if !b.g.tryReserve(n) {
		return false
	}
	b.reserved += n
	b.held += n
	return true
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.reserved == 0 && !b.reserve() {
		b.g.refusedBytes.Add(1)
		b.g.warn(ErrBusy.Error())
		return 0, busyError{after: b.g.lim.RetryAfter}
	}
	if int64(len(p)) > b.reserved {
		p = p[:b.reserved]
	}
	n, err := b.ReadCloser.Read(p)
	b.reserved -= int64(n)
	if b.left > 0 {
		b.left = max(b.left-int64(n), 0)
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut = true
		err = fmt.Errorf("%w: %w", errBodyTimeout, err)
	}
	return n, err
}

// release gives back what the request reserved.
func (b *gatedBody) release() {
	b.g.bytes.Add(-b.held)
	b.held, b.reserved = 0, 0
}

// errBodyTimeout marks a body not read within Limits.BodyTimeout.
var errBodyTimeout = errors.New("body not received in time")
