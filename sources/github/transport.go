package github

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of the pacing of requests to GitHub.
const (
	// DefaultMinWriteInterval spaces writes: GitHub allows about 80
	// content-creating requests a minute and asks for a second between
	// writes.
	DefaultMinWriteInterval = time.Second
	// secondaryDefaultWait is how long a secondary rate limit without a
	// Retry-After is waited out, as GitHub asks ("at least one minute").
	secondaryDefaultWait = time.Minute
)

// LimitedError reports that a GitHub rate limit holds requests back
// until Until. The request was not carried out; send it again after
// Until. Find it with errors.As.
type LimitedError struct {
	Until time.Time
	// Primary is the hourly limit (X-RateLimit-Remaining: 0); false is a
	// secondary limit (403 or 429, with or without Retry-After).
	Primary bool
	// Status is GitHub's answer (403 or 429); 0 when the request was not
	// sent because a limit was already known to hold.
	Status int
}

func (e *LimitedError) Error() string {
	kind := "secondary"
	if e.Primary {
		kind = "primary"
	}
	if e.Status == 0 {
		return fmt.Sprintf("github %s rate limit: not sending before %s", kind, e.Until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("github %s rate limit (%d): wait until %s", kind, e.Status, e.Until.UTC().Format(time.RFC3339))
}

// limiter is the http.RoundTripper under go-github. It owns every
// decision about GitHub's rate limits, on the injected clock:
//
//   - writes (POST, PATCH, PUT, DELETE) are spaced by interval, each one
//     reserving the next free slot, so concurrent callers queue up;
//   - an answer that says a limit holds (403/429 with
//     X-RateLimit-Remaining: 0, Retry-After, or a secondary-limit body;
//     any 429) becomes a *LimitedError, and later requests fail fast with
//     one, without reaching GitHub, until the limit lifts.
//
// go-github keeps rate-limit state of its own, on the real clock; the
// limiter hides what would make go-github refuse requests by itself, so
// that a single clock decides.
type limiter struct {
	base     http.RoundTripper
	clock    Clock
	interval time.Duration
	log      *slog.Logger

	mu        sync.Mutex
	nextWrite time.Time // the earliest time of the next write
	blocked   time.Time // no request before this
	primary   bool      // the block is the primary limit
}

var _ http.RoundTripper = (*limiter)(nil)

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func (l *limiter) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := l.held(); err != nil {
		closeBody(req)
		return nil, err
	}
	if isWrite(req.Method) {
		at := l.reserve(l.clock.Now())
		if err := sleep(req.Context(), l.clock, at.Sub(l.clock.Now())); err != nil {
			closeBody(req)
			return nil, err
		}
		if err := l.held(); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	return l.inspect(resp)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// held returns a *LimitedError while a known limit holds.
func (l *limiter) held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.clock.Now(); now.Before(l.blocked) {
		return &LimitedError{Until: l.blocked, Primary: l.primary}
	}
	return nil
}

// reserve takes the next write slot at or after now and returns its
// time.
func (l *limiter) reserve(now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := now
	if at.Before(l.nextWrite) {
		at = l.nextWrite
	}
	l.nextWrite = at.Add(l.interval)
	return at
}

// block holds requests back until until.
func (l *limiter) block(until time.Time, primary bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.blocked) {
		l.blocked, l.primary = until, primary
	}
}

// inspect reads the rate-limit headers of an answer; it turns a
// rate-limited answer into a *LimitedError.
func (l *limiter) inspect(resp *http.Response) (*http.Response, error) {
	now := l.clock.Now()
	h := resp.Header
	remaining := h.Get("X-RateLimit-Remaining")
	limitedStatus := resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests
	switch {
	case limitedStatus && remaining == "0":
		return l.limited(resp, resetTime(h, now), true)
	case resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusForbidden && (h.Get("Retry-After") != "" || secondaryBody(resp)):
		return l.limited(resp, retryAfter(h, now), false)
	case remaining == "0":
		// This request went through but was the last one of the hour.
		until := resetTime(h, now)
		l.block(until, true)
		l.log.Warn("github primary rate limit spent", "until", until)
		h.Del("X-RateLimit-Reset") // else go-github refuses by itself, on the real clock
	}
	return resp, nil
}

func (l *limiter) limited(resp *http.Response, until time.Time, primary bool) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	l.block(until, primary)
	err := &LimitedError{Until: until, Primary: primary, Status: resp.StatusCode}
	l.log.Warn("github rate limit", "status", resp.StatusCode, "primary", primary, "until", until,
		"method", resp.Request.Method, "path", resp.Request.URL.Path)
	return nil, err
}

// resetTime reads X-RateLimit-Reset (epoch seconds); a missing or past
// reset waits a minute, as for a secondary limit.
func resetTime(h http.Header, now time.Time) time.Time {
	v, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || v <= 0 {
		return now.Add(secondaryDefaultWait)
	}
	t := time.Unix(v, 0)
	if !t.After(now) {
		return now.Add(time.Second)
	}
	return t
}

// retryAfter reads Retry-After (seconds or an HTTP date); without it,
// GitHub asks to wait at least a minute.
func retryAfter(h http.Header, now time.Time) time.Time {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return now.Add(max(time.Duration(secs)*time.Second, time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t
	}
	return now.Add(secondaryDefaultWait)
}

// secondaryBody reports whether a 403 says it is a secondary rate limit
// (GitHub says so in the message and the documentation_url). The body is
// put back for go-github to read.
func secondaryBody(resp *http.Response) bool {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	s := strings.ToLower(string(b))
	return strings.Contains(s, "secondary rate limit") || strings.Contains(s, "secondary-rate-limits") ||
		strings.Contains(s, "abuse")
}
