package github

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

func TestLimiterReserveSpacesConcurrentWrites(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := &limiter{interval: time.Second}
	var mu sync.Mutex
	var slots []time.Time
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			at := l.reserve(now)
			mu.Lock()
			slots = append(slots, at)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(slots, time.Time.Compare)
	for i, at := range slots {
		if want := now.Add(time.Duration(i) * time.Second); !at.Equal(want) {
			t.Fatalf("slot %d at %v, want %v", i, at, want)
		}
	}
	// After a quiet spell the next write goes at once.
	later := now.Add(time.Hour)
	if at := l.reserve(later); !at.Equal(later) {
		t.Errorf("after a pause: slot at %v, want %v", at, later)
	}
}

// roundTripper answers every request with a canned response.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func answer(status int, header map[string]string, body string) roundTripper {
	return func(r *http.Request) (*http.Response, error) {
		h := http.Header{}
		for k, v := range header {
			h.Set(k, v)
		}
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	}
}

func TestLimiterInspect(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	reset := now.Add(10 * time.Minute)
	resetHdr := strconv.FormatInt(reset.Unix(), 10)
	tests := []struct {
		name    string
		rt      roundTripper
		until   time.Time // zero: not limited
		primary bool
	}{
		{"ok", answer(200, map[string]string{"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": resetHdr}, "{}"), time.Time{}, false},
		{"forbidden, not a limit", answer(403, nil, `{"message":"Resource not accessible by integration"}`), time.Time{}, false},
		{"primary 403", answer(403, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": resetHdr}, "{}"), reset, true},
		{"primary 429", answer(429, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": resetHdr}, "{}"), reset, true},
		{"primary without reset", answer(403, map[string]string{"X-RateLimit-Remaining": "0"}, "{}"), now.Add(time.Minute), true},
		{"secondary body", answer(403, nil, `{"message":"You have exceeded a secondary rate limit."}`), now.Add(time.Minute), false},
		{"retry-after seconds", answer(403, map[string]string{"Retry-After": "42"}, "{}"), now.Add(42 * time.Second), false},
		{"retry-after date", answer(429, map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, "{}"), now.Add(90 * time.Second), false},
		{"429 bare", answer(429, nil, ""), now.Add(time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &limiter{base: tt.rt, clock: clock, interval: time.Second, log: slog.New(slog.DiscardHandler)}
			req, _ := http.NewRequest(http.MethodGet, "http://x/repos/o/r", nil)
			resp, err := l.RoundTrip(req)
			var limited *LimitedError
			if tt.until.IsZero() {
				if err != nil {
					t.Fatalf("err = %v, want the response", err)
				}
				if b, _ := io.ReadAll(resp.Body); len(b) == 0 {
					t.Error("body lost")
				}
				return
			}
			if !errors.As(err, &limited) || !limited.Until.Equal(tt.until) || limited.Primary != tt.primary {
				t.Fatalf("err = %#v, want limited until %v (primary %v)", err, tt.until, tt.primary)
			}
			// The next request fails fast, without reaching GitHub.
			l.base = roundTripper(func(*http.Request) (*http.Response, error) {
				t.Fatal("request sent during the limit")
				return nil, nil
			})
			_, err = l.RoundTrip(req)
			if !errors.As(err, &limited) || limited.Status != 0 {
				t.Fatalf("next request: err = %v, want a local refusal", err)
			}
		})
	}
}

func TestLimiterLastRequestOfTheHour(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	reset := f.clock.Now().Add(30 * time.Minute)
	// A success that spends the last request: the client must wait for
	// the reset, on its own clock (go-github must not refuse by itself
	// on the real one).
	l := f.client.limit
	base := l.base
	l.base = roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			resp.Header.Set("X-RateLimit-Remaining", "0")
			resp.Header.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		}
		return resp, err
	})
	ctx := context.Background()
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StatePending, "", ""); err != nil {
		t.Fatal(err)
	}
	l.base = base
	var limited *LimitedError
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); !errors.As(err, &limited) || !limited.Primary {
		t.Fatalf("err = %v, want the primary limit", err)
	}
	f.clock.Advance(31 * time.Minute)
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	if n := len(f.srv.Statuses(c1)); n != 2 {
		t.Errorf("%d statuses, want 2", n)
	}
}

func TestLimiterPacesDirectCalls(t *testing.T) {
	f := newFixture(t)
	_, c1 := f.history()
	for _, state := range []string{StatePending, StateSuccess, StatePending, StateFailure} {
		if err := f.client.SetStatus(context.Background(), c1, ContextDeploy, state, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	w := f.srv.Writes()
	for i := 1; i < len(w); i++ {
		if gap := w[i].Time.Sub(w[i-1].Time); gap < time.Second {
			t.Errorf("writes %v apart", gap)
		}
	}
	if got := f.clock.Now().Sub(newFakeClock().Now()); got != 3*time.Second {
		t.Errorf("the clock moved %v, want exactly 3s of pacing", got)
	}
}

func TestLimiterCancelledWhileWaiting(t *testing.T) {
	srv := githubtest.Start(t, githubtest.Options{})
	c := newTestClient(t, srv, newStuckClock())
	_, c1 := (&fixture{srv: srv}).history()
	ctx := context.Background()
	_ = c.SetStatus(ctx, c1, ContextPlan, StatePending, "", "") // takes the first slot
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(srv.Writes()); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}
