package github

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

// fakeClock is a time line that moves only when waited on: After(d)
// moves it d ahead at once. Sleeps cost nothing and every wait is exact,
// so tests can assert on the times the server recorded.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

var _ Clock = (*fakeClock)(nil)

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.Advance(d)
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
}

// stuckClock never lets a wait end: a Queue on it attempts what is due
// once, then waits until cancelled.
type stuckClock struct{ fakeClock }

func newStuckClock() *stuckClock {
	return &stuckClock{fakeClock: fakeClock{now: newFakeClock().Now()}}
}

func (c *stuckClock) After(time.Duration) <-chan time.Time { return nil }

// fixture is a test GitHub and a Client on the same fake clock.
type fixture struct {
	clock  *fakeClock
	srv    *githubtest.Server
	client *Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := newFakeClock()
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now})
	return &fixture{clock: clock, srv: srv, client: newTestClient(t, srv, clock)}
}

func newTestClient(t testing.TB, srv *githubtest.Server, clock Clock) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{
		Token:  []byte(srv.Token() + "\n"),
		APIURL: srv.URL,
		Owner:  srv.Owner(),
		Repo:   srv.Repo(),
		Clock:  clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// history seeds c0 ← c1 on main and returns both SHAs.
func (f *fixture) history() (c0, c1 string) {
	c0 = f.srv.AddCommit("initial fleet", githubtest.TreeSHA("t0"))
	c1 = f.srv.AddCommit("web: new image", githubtest.TreeSHA("t1"), c0)
	f.srv.SetRef("heads/main", c1)
	return c0, c1
}

// startQueue runs q until the test ends.
func startQueue(t *testing.T, q *Queue) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// withMarker returns the comments of a pull request whose body starts
// with marker.
func withMarker(cs []githubtest.Comment, marker string) []githubtest.Comment {
	var out []githubtest.Comment
	for _, c := range cs {
		if strings.HasPrefix(c.Body, marker) {
			out = append(out, c)
		}
	}
	return out
}
