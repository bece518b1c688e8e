package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is an in-process notification receiver on its own listener,
// which a test can make answer 503, close, and open again on the same
// address.
type receiver struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	down     bool // answer 503
	refused  int  // 503s answered
	held     int  // requests held by blocking
	got      []int64
	keys     []string
	bodies   [][]byte
	srv      *http.Server
	blocking chan struct{} // non-nil: hold every request until closed
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.open("127.0.0.1:0")
	t.Cleanup(func() { r.close() })
	return r
}

func (r *receiver) open(addr string) {
	r.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	srv := r.srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

func (r *receiver) close() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	srv.Close()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	block := r.blocking
	if block != nil {
		r.held++
	}
	if r.down {
		r.refused++
		r.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	r.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-req.Context().Done():
		}
		return
	}
	var ev apiEvent
	_ = json.Unmarshal(b, &ev)
	r.mu.Lock()
	r.got = append(r.got, ev.ID)
	r.keys = append(r.keys, req.Header.Get("X-Molt-Event-Id"))
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) snapshot() (got []int64, keys []string, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.got...), append([]string(nil), r.keys...), r.refused
}

// waitFor polls cond every 10ms until it holds, for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testNotifier(t *testing.T, dir string, urls ...string) *notifier {
	t.Helper()
	n, err := newNotifier(urls, dir, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	n.minBackoff, n.maxBackoff, n.gap = 5*time.Millisecond, 40*time.Millisecond, 0
	return n
}

// start runs n until the returned stop is called (or the test ends).
func start(t *testing.T, n *notifier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func testEvent(id int64, kind string) apiEvent {
	return apiEvent{
		ID: id, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Kind: kind, Fleet: "demo", Service: "web",
		Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Message: "web: " + kind,
	}
}

func (n *notifier) pendingCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}

func (n *notifier) headAttempts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending) == 0 {
		return 0
	}
	return n.pending[0].Attempts
}

// Events enqueued while the receiver answers 503, then while its listener
// is closed, and across a restart of the notifier, all arrive once it is
// back: once each, in order, each with its own X-Molt-Event-Id.
func TestNotifyReceiverDown(t *testing.T) {
	dir := t.TempDir()
	r := newReceiver(t)
	r.mu.Lock()
	r.down = true
	r.mu.Unlock()
	n := testNotifier(t, dir, r.url())
	stop := start(t, n)

	n.enqueue(testEvent(1, "deploy"))
	n.enqueue(testEvent(2, "failure"))
	n.enqueue(testEvent(1, "deploy")) // the same event again: not queued twice
	waitFor(t, "a few 503s", func() bool { _, _, refused := r.snapshot(); return refused >= 3 })

	// The listener goes away: connections are refused.
	r.close()
	n.enqueue(testEvent(3, "rollback"))
	before := n.headAttempts()
	waitFor(t, "attempts on the closed listener", func() bool { return n.headAttempts() >= before+2 })

	// molt serve restarts while the receiver is away: the queue file
	// carries the pending events over.
	stop()
	if got, _, _ := r.snapshot(); len(got) != 0 {
		t.Fatalf("delivered %v while the receiver was down", got)
	}
	n2 := testNotifier(t, dir, r.url())
	if c := n2.pendingCount(); c != 3 {
		t.Fatalf("after a restart %d events pending, want 3", c)
	}
	start(t, n2)
	n2.enqueue(testEvent(4, "selfheal"))

	// Back, on the same address.
	r.mu.Lock()
	r.down = false
	r.mu.Unlock()
	r.open(r.addr)
	waitFor(t, "the four events", func() bool { got, _, _ := r.snapshot(); return len(got) >= 4 })
	// The queue is saved after the delivery leaves it in memory: wait for
	// the file too.
	waitFor(t, "an empty queue, saved", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, notifyFile))
		return n2.pendingCount() == 0 && err == nil && !strings.Contains(string(b), `"event"`)
	})
	got, keys, _ := r.snapshot()
	if want := []int64{1, 2, 3, 4}; !equalIDs(got, want) {
		t.Errorf("received %v, want %v: once each, in order", got, want)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if k == "" || seen[k] {
			t.Errorf("X-Molt-Event-Id %q missing or repeated (%q)", k, keys)
		}
		seen[k] = true
	}
	if !strings.HasPrefix(keys[0], "1-") {
		t.Errorf("X-Molt-Event-Id = %q, want the event id first", keys[0])
	}
	b, err := os.ReadFile(filepath.Join(dir, notifyFile))
	if err != nil || strings.Contains(string(b), r.addr) || strings.Contains(string(b), `"event"`) {
		t.Errorf("queue file after delivery: %s, %v (want no pending event, no URL)", b, err)
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A Slack webhook gets {"text": ...} with the event in one line.
func TestNotifySlack(t *testing.T) {
	r := newReceiver(t)
	n := testNotifier(t, t.TempDir(), "slack+"+r.url())
	start(t, n)
	ev := testEvent(7, "rollback")
	ev.CommitURL = "https://github.com/acme/demo/commit/0123456789abcdef0123456789abcdef01234567"
	ev.Reason = "canary error rate 12% > 5%"
	ev.PullRequest, ev.PullRequestURL = 12, "https://github.com/acme/demo/pull/12"
	n.enqueue(ev)
	waitFor(t, "the Slack message", func() bool { got, _, _ := r.snapshot(); return len(got) == 1 })
	r.mu.Lock()
	body := r.bodies[0]
	r.mu.Unlock()
	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	want := "*rollback* demo/web: web: rollback (canary error rate 12% > 5%) <" + ev.CommitURL + "|" + ev.Revision + "> <" + ev.PullRequestURL + "|#12>"
	if len(msg) != 1 || msg["text"] != want {
		t.Errorf("Slack body = %s\nwant only text %q", body, want)
	}

	for raw, slack := range map[string]bool{
		"https://hooks.slack.com/services/T0/B0/secret": true,
		"slack+https://chat.example.com/hooks/x":        true,
		"https://example.com/molt":                      false,
	} {
		tg, err := parseNotifyURL(raw)
		if err != nil || tg.slack != slack || strings.HasPrefix(tg.url, "slack+") {
			t.Errorf("parseNotifyURL(%s) = %+v, %v; want slack %v", raw, tg, err, slack)
		}
	}
	for _, raw := range []string{"ftp://example.com/x", "hooks.slack.com/services/secret", ""} {
		if _, err := parseNotifyURL(raw); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("parseNotifyURL(%q) = %v, want an error without the URL's path", raw, err)
		}
	}
}

// enqueue returns whatever the receiver does: while a delivery hangs, and
// with nobody delivering at all.
func TestNotifyEnqueueNeverBlocks(t *testing.T) {
	r := newReceiver(t)
	block := make(chan struct{})
	r.mu.Lock()
	r.blocking = block
	r.mu.Unlock()
	defer close(block)

	idle := testNotifier(t, t.TempDir(), r.url()) // never run
	busy := testNotifier(t, t.TempDir(), r.url(), "slack+"+r.url())
	busy.attemptTimeout = time.Hour
	idle.maxPending, busy.maxPending = 100, 100
	start(t, busy)
	busy.enqueue(testEvent(1, "deploy"))
	waitFor(t, "a delivery in flight", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.held > 0
	})

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(2); i <= 150; i++ {
			idle.enqueue(testEvent(i, "selfheal"))
			busy.enqueue(testEvent(i, "selfheal"))
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("enqueue blocked")
	}
	if c := idle.pendingCount(); c != 100 {
		t.Errorf("%d pending, want the newest 100 (the oldest dropped)", c)
	}
}
