package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifications (molt serve --notify-url URL, repeatable) post every event
// of the event store to each URL: the event as JSON (apiEvent), or, for a
// Slack incoming webhook (host hooks.slack.com, or any URL written with a
// "slack+" prefix, as in slack+https://chat.example.com/hooks/x), a
// Slack-compatible {"text": "..."} body.
//
// Deliveries go through a queue like the GitHub reports' (see
// sources/github/queue.go): enqueue records the event and returns, never
// waiting on a receiver, so a reconcile is never held up; run delivers.
// Each URL has its own queue, delivered in order, one event at a time: an
// event that fails is retried with exponential backoff (1s, 2s, ... 5m)
// and holds the later ones back, so a receiver that was down gets them all
// later, in order. A 429 waits out its Retry-After without counting as a
// failure; at most one delivery per notifyGap goes to one URL. Other 4xx
// answers drop the event (logged); so does a day without success, or more
// than notifyMaxPending events waiting for one URL (the oldest goes).
//
// The pending events are kept in STATE/notify-queue.json (written
// atomically at every change), so they survive a restart; the file names
// URLs by a digest only, since a webhook URL is a secret (and it is never
// logged either: logs show its scheme and host). Every request carries
// X-Molt-Event-Id, the same on every retry and after a restart and unique
// per event (its id and a digest of its content): a receiver that saw it
// already can ignore it. Delivery is at least once; with that header,
// once.

const (
	notifyFile       = "notify-queue.json"
	notifyMaxPending = 1000
	notifyGap        = 100 * time.Millisecond
)

// notifyTarget is one --notify-url.
type notifyTarget struct {
	key   string // digest of the URL: how the queue file names it
	url   string // where to post (without a "slack+" prefix)
	slack bool
	shown string // scheme and host, for logs
}

// notifyEntry is one event waiting for one URL.
type notifyEntry struct {
	Seq       int64     `json:"seq"`
	Key       string    `json:"key"`      // the URL's
	EventKey  string    `json:"eventKey"` // see eventKey
	Event     apiEvent  `json:"event"`
	Enqueued  time.Time `json:"enqueued"`
	Attempts  int       `json:"attempts,omitempty"`
	Next      time.Time `json:"next,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

type notifyFileDoc struct {
	Version int           `json:"version"`
	Seq     int64         `json:"seq"`
	Pending []notifyEntry `json:"pending"`
}

// notifier delivers events to the --notify-url receivers. See above.
type notifier struct {
	targets []notifyTarget
	path    string
	log     *slog.Logger
	client  *http.Client
	now     func() time.Time
	wake    chan struct{}

	// Limits, defaults set by newNotifier; tests shorten them.
	minBackoff, maxBackoff time.Duration
	maxAge                 time.Duration
	attemptTimeout         time.Duration
	gap                    time.Duration
	maxPending             int // per URL

	mu      sync.Mutex
	seq     int64
	pending []notifyEntry        // in Seq order
	held    map[string]time.Time // by key: nothing goes to it before then (gap, Retry-After)
	gen     int64                // of pending, for save

	fileMu  sync.Mutex
	written int64
	onWrite func(path string, err error) // nil: a failed save is logged; set before run
}

// newNotifier checks urls and loads the pending events of stateDir's
// queue file (a file that cannot be read is moved aside to .bad). It
// starts nothing: call run. Without urls it does nothing at all.
func newNotifier(urls []string, stateDir string, log *slog.Logger) (*notifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &notifier{
		path:           filepath.Join(stateDir, notifyFile),
		log:            log.With("notify", "webhook"),
		client:         &http.Client{},
		now:            time.Now,
		wake:           make(chan struct{}, 1),
		minBackoff:     time.Second,
		maxBackoff:     5 * time.Minute,
		maxAge:         24 * time.Hour,
		attemptTimeout: 30 * time.Second,
		gap:            notifyGap,
		maxPending:     notifyMaxPending,
		held:           map[string]time.Time{},
	}
	seen := map[string]bool{}
	for _, raw := range urls {
		t, err := parseNotifyURL(raw)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--notify-url: %w", err)}
		}
		if !seen[t.key] {
			seen[t.key] = true
			n.targets = append(n.targets, t)
		}
	}
	if len(n.targets) == 0 {
		return n, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("notify queue: %w", err)
	}
	n.load()
	return n, nil
}

// parseNotifyURL reads one --notify-url.
func parseNotifyURL(raw string) (notifyTarget, error) {
	s := strings.TrimSpace(raw)
	slack := false
	if rest, ok := strings.CutPrefix(s, "slack+"); ok {
		s, slack = rest, true
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return notifyTarget{}, fmt.Errorf("%s is not an http(s) URL", redactURL(raw))
	}
	if strings.EqualFold(u.Hostname(), "hooks.slack.com") {
		slack = true
	}
	sum := sha256.Sum256([]byte(s))
	return notifyTarget{key: hex.EncodeToString(sum[:8]), url: s, slack: slack, shown: u.Scheme + "://" + u.Host}, nil
}

// redactURL keeps the scheme and host of a URL, for messages.
func redactURL(raw string) string {
	if u, err := url.Parse(strings.TrimPrefix(raw, "slack+")); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host + "/…"
	}
	return "the URL"
}

// eventKey is the X-Molt-Event-Id of ev: its id and a digest of its
// content, so that an id reused after the event store was deleted is not
// taken for an event already seen.
func eventKey(ev apiEvent) string {
	b, _ := json.Marshal(ev)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d-%s", ev.ID, hex.EncodeToString(sum[:8]))
}

// enqueue records ev for every URL and returns: it never waits for a
// receiver (it writes the small queue file). An event already pending for
// a URL is not queued twice. Safe for concurrent use.
func (n *notifier) enqueue(ev apiEvent) {
	if len(n.targets) == 0 {
		return
	}
	key := eventKey(ev)
	now := n.now()
	n.mu.Lock()
	for _, t := range n.targets {
		if slices.ContainsFunc(n.pending, func(e notifyEntry) bool { return e.Key == t.key && e.EventKey == key }) {
			continue
		}
		n.seq++
		n.pending = append(n.pending, notifyEntry{Seq: n.seq, Key: t.key, EventKey: key, Event: ev, Enqueued: now})
		if i := n.oldestOf(t.key); n.countOf(t.key) > n.maxPending && i >= 0 {
			n.log.Error("notification dropped", "why", "too many pending", "url", t.shown, "event", n.pending[i].Event.ID)
			n.pending = slices.Delete(n.pending, i, i+1)
		}
	}
	gen, data := n.snapshotLocked()
	n.mu.Unlock()
	n.save(gen, data)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) countOf(key string) int {
	c := 0
	for _, e := range n.pending {
		if e.Key == key {
			c++
		}
	}
	return c
}

func (n *notifier) oldestOf(key string) int {
	return slices.IndexFunc(n.pending, func(e notifyEntry) bool { return e.Key == key })
}

// run delivers the pending events until ctx ends. A delivery in flight
// then is abandoned and stays pending (sent again after a restart, with
// the same X-Molt-Event-Id).
func (n *notifier) run(ctx context.Context) {
	if len(n.targets) == 0 {
		return
	}
	for {
		e, t, wait := n.next()
		if e != nil {
			n.attempt(ctx, *e, t)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		var timer <-chan time.Time
		var tm *time.Timer
		if wait > 0 {
			tm = time.NewTimer(wait)
			timer = tm.C
		}
		select {
		case <-ctx.Done():
		case <-n.wake:
		case <-timer:
		}
		if tm != nil {
			tm.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// next returns the event to deliver now (the oldest of some URL whose
// turn it is), or how long until one is due (0: none pending). It drops
// the events older than maxAge.
func (n *notifier) next() (*notifyEntry, notifyTarget, time.Duration) {
	now := n.now()
	n.mu.Lock()
	kept := n.pending[:0]
	dropped := false
	for _, e := range n.pending {
		if now.Sub(e.Enqueued) > n.maxAge {
			n.log.Error("notification dropped", "why", "too old", "event", e.Event.ID, "attempts", e.Attempts, "lastError", e.LastError)
			dropped = true
			continue
		}
		kept = append(kept, e)
	}
	n.pending = kept
	if dropped {
		gen, data := n.snapshotLocked()
		n.mu.Unlock()
		n.save(gen, data)
		n.mu.Lock()
	}
	defer n.mu.Unlock()
	var wait time.Duration
	for _, t := range n.targets {
		i := n.oldestOf(t.key)
		if i < 0 {
			continue
		}
		due := n.pending[i].Next
		if h := n.held[t.key]; h.After(due) {
			due = h
		}
		if !due.After(now) {
			e := n.pending[i]
			return &e, t, 0
		}
		if d := due.Sub(now); wait == 0 || d < wait {
			wait = d
		}
	}
	return nil, notifyTarget{}, wait
}

// attempt posts e to t and records the result.
func (n *notifier) attempt(ctx context.Context, e notifyEntry, t notifyTarget) {
	actx, cancel := context.WithTimeout(ctx, n.attemptTimeout)
	status, retryAfter, err := n.post(actx, e.Event, t)
	cancel()
	if ctx.Err() != nil {
		return // stopping: it stays pending
	}
	now := n.now()
	n.mu.Lock()
	i := slices.IndexFunc(n.pending, func(p notifyEntry) bool { return p.Seq == e.Seq })
	if i < 0 { // dropped meanwhile
		n.mu.Unlock()
		return
	}
	cur := &n.pending[i]
	n.held[t.key] = now.Add(n.gap)
	switch {
	case err == nil && status/100 == 2:
		n.pending = slices.Delete(n.pending, i, i+1)
		n.log.Debug("notification delivered", "url", t.shown, "event", e.Event.ID, "kind", e.Event.Kind, "attempts", e.Attempts+1)
	case err == nil && status == http.StatusTooManyRequests:
		n.held[t.key] = now.Add(max(retryAfter, n.minBackoff))
		cur.LastError = "429 Too Many Requests"
		n.log.Warn("notification held back by a rate limit", "url", t.shown, "event", e.Event.ID, "until", n.held[t.key])
	case err == nil && status/100 == 4 && status != http.StatusRequestTimeout:
		n.pending = slices.Delete(n.pending, i, i+1)
		n.log.Error("notification dropped", "why", "refused", "url", t.shown, "event", e.Event.ID, "status", status)
	default:
		if err == nil {
			err = fmt.Errorf("status %d", status)
		}
		cur.Attempts++
		cur.LastError = err.Error()
		cur.Next = now.Add(n.backoff(cur.Attempts))
		n.log.Warn("notification failed, will retry", "url", t.shown, "event", e.Event.ID, "attempt", cur.Attempts, "next", cur.Next, "err", redactErr(err, t))
	}
	gen, data := n.snapshotLocked()
	n.mu.Unlock()
	n.save(gen, data)
}

// redactErr keeps the URL out of an error's text (net/http quotes it).
func redactErr(err error, t notifyTarget) string {
	return strings.ReplaceAll(err.Error(), t.url, t.shown+"/…")
}

func (n *notifier) backoff(attempts int) time.Duration {
	d := n.minBackoff
	for i := 1; i < attempts && d < n.maxBackoff; i++ {
		d *= 2
	}
	return min(d, n.maxBackoff)
}

// post sends one event; it returns the status and a Retry-After.
func (n *notifier) post(ctx context.Context, ev apiEvent, t notifyTarget) (int, time.Duration, error) {
	var body any = ev
	if t.slack {
		body = map[string]string{"text": slackText(ev)}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(b))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "molt/"+version)
	req.Header.Set("X-Molt-Event-Id", eventKey(ev))
	req.Header.Set("X-Molt-Event-Kind", ev.Kind)
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	var ra time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = min(time.Duration(s)*time.Second, time.Hour)
	}
	return resp.StatusCode, ra, nil
}

// slackText is the one-message form of ev for Slack (mrkdwn).
func slackText(ev apiEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s* %s", ev.Kind, ev.Fleet)
	if ev.Service != "" {
		fmt.Fprintf(&b, "/%s", ev.Service)
	}
	fmt.Fprintf(&b, ": %s", ev.Message)
	if ev.Reason != "" && !strings.Contains(ev.Message, ev.Reason) {
		fmt.Fprintf(&b, " (%s)", ev.Reason)
	}
	switch {
	case ev.CommitURL != "" && ev.Revision != "":
		fmt.Fprintf(&b, " <%s|%s>", ev.CommitURL, ev.Revision)
	case ev.Revision != "":
		fmt.Fprintf(&b, " %s", ev.Revision)
	}
	if ev.PullRequestURL != "" {
		fmt.Fprintf(&b, " <%s|#%d>", ev.PullRequestURL, ev.PullRequest)
	}
	return b.String()
}

// snapshotLocked serialises the queue; n.mu is held.
func (n *notifier) snapshotLocked() (int64, []byte) {
	n.gen++
	b, err := json.Marshal(notifyFileDoc{Version: 1, Seq: n.seq, Pending: n.pending})
	if err != nil {
		return n.gen, nil
	}
	return n.gen, append(b, '\n')
}

// save writes data (of generation gen) atomically, unless a newer
// generation is already written.
func (n *notifier) save(gen int64, data []byte) {
	if data == nil {
		return
	}
	n.fileMu.Lock()
	defer n.fileMu.Unlock()
	if gen <= n.written {
		return
	}
	tmp := n.path + ".tmp"
	err := os.WriteFile(tmp, data, 0o600)
	if err == nil {
		err = os.Rename(tmp, n.path)
	}
	if n.onWrite != nil {
		n.onWrite(n.path, err) // says it once, not at every save
	}
	if err != nil {
		os.Remove(tmp)
		if n.onWrite == nil {
			n.log.Warn("cannot save the notification queue", "err", err)
		}
		return // the queue goes on in memory; the next change saves it
	}
	n.written = gen
}

// load reads the queue file; what cannot be read is moved aside, and
// events for URLs no longer configured are dropped.
func (n *notifier) load() {
	b, err := os.ReadFile(n.path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var doc notifyFileDoc
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	if err == nil && doc.Version != 1 {
		err = fmt.Errorf("unknown version %d", doc.Version)
	}
	if err != nil {
		bad := n.path + ".bad"
		_ = os.Rename(n.path, bad)
		n.log.Warn("the notification queue cannot be read: moved aside, starting empty", "file", bad, "err", err)
		return
	}
	known := map[string]bool{}
	for _, t := range n.targets {
		known[t.key] = true
	}
	n.seq = doc.Seq
	for _, e := range doc.Pending {
		if !known[e.Key] {
			n.log.Warn("notification dropped", "why", "its URL is no longer configured", "event", e.Event.ID)
			continue
		}
		n.seq = max(n.seq, e.Seq)
		if e.EventKey == "" {
			e.EventKey = eventKey(e.Event)
		}
		n.pending = append(n.pending, e)
	}
	slices.SortFunc(n.pending, func(a, b notifyEntry) int { return int(a.Seq - b.Seq) })
}
