package githubtest

import (
	"net/http"
	"strings"
	"time"
)

// Fault is a way for the server to misbehave on a request. Build one with
// SecondaryRateLimit, TooManyRequests, ServerError or Slow, and give it
// to Server.Inject.
type Fault struct {
	// Status is the answer's status; zero answers normally (after Delay).
	Status int
	// RetryAfter, when positive, is sent as a Retry-After header in whole
	// seconds.
	RetryAfter time.Duration
	// Secondary answers with GitHub's secondary-rate-limit body.
	Secondary bool
	// Delay holds the answer back this long (real time; a request whose
	// client gives up is abandoned at once).
	Delay time.Duration
	// Late carries the request out before answering with Status: the
	// write lands although the client sees an error, as when a proxy
	// times out behind GitHub's back.
	Late bool
	// Method limits the fault to requests of that method ("POST", ...);
	// "" is any request. Other requests pass it by.
	Method string
	// Path limits the fault to requests whose path (without /api/v3)
	// starts with it; "" is any path.
	Path string
}

// SecondaryRateLimit is GitHub's answer to too many requests too fast:
// 403 with the secondary-rate-limit message, and Retry-After when
// retryAfter is positive.
func SecondaryRateLimit(retryAfter time.Duration) Fault {
	return Fault{Status: http.StatusForbidden, Secondary: true, RetryAfter: retryAfter}
}

// TooManyRequests is a 429 with Retry-After when retryAfter is positive.
func TooManyRequests(retryAfter time.Duration) Fault {
	return Fault{Status: http.StatusTooManyRequests, Secondary: true, RetryAfter: retryAfter}
}

// ServerError answers with status (500, 502, 503, ...) and GitHub's
// error body.
func ServerError(status int) Fault { return Fault{Status: status} }

// Slow answers normally after d.
func Slow(d time.Duration) Fault { return Fault{Delay: d} }

type injected struct {
	left  int
	fault Fault
}

// Inject makes n requests (of f.Method and under f.Path, when set)
// misbehave as f says.
// Faults are used in the order injected: a request takes the first one
// left that applies to it. Requests refused for authentication do not
// use up a fault.
func (s *Server) Inject(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > 0 {
		s.faults = append(s.faults, injected{left: n, fault: f})
	}
}

// ExhaustRateLimit spends the primary rate limit until reset (by the
// server's clock): every request before then is answered 403 with
// X-RateLimit-Remaining: 0 and X-RateLimit-Reset, as GitHub does.
func (s *Server) ExhaustRateLimit(reset time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exhaustedUntil = reset
}

// ClearFaults forgets the injected faults that are left and restores the
// rate limit.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.exhaustedUntil = time.Time{}
}

// takeFault returns the fault for a request of the method, if any: the
// first injected fault left that applies to it; s.mu is held.
func (s *Server) takeFault(method, path string) (Fault, bool) {
	for i := range s.faults {
		f := &s.faults[i]
		if f.left <= 0 || (f.fault.Method != "" && f.fault.Method != method) || !strings.HasPrefix(path, f.fault.Path) {
			continue
		}
		f.left--
		return f.fault, true
	}
	return Fault{}, false
}
