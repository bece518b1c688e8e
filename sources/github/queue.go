package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/molt-dev/molt/targets/crash"
)

// QueueFile is the name of the Queue's file in its directory.
const QueueFile = "github-queue.json"

// Defaults of QueueOptions.
const (
	DefaultMaxAttempts    = 10
	DefaultMaxAge         = 24 * time.Hour
	DefaultMinBackoff     = 2 * time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultAttemptTimeout = time.Minute
	DefaultMaxPending     = 1000
)

// QueueOptions configures a Queue. Dir and Reporter are required.
type QueueOptions struct {
	// Dir holds QueueFile (the state directory, typically). It is
	// created if missing.
	Dir string
	// Reporter delivers the reports: a *Client, or LogReporter without a
	// token.
	Reporter Reporter
	// Logger receives deliveries, retries and every drop. Nil discards.
	Logger *slog.Logger
	// Clock times backoff and rate-limit waits; nil is the real clock.
	// Give the Client the same one.
	Clock Clock
	// MaxAttempts is how many failed attempts drop a report; waits for a
	// rate limit do not count. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// MaxAge drops a report not delivered this long after it was
	// enqueued. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff after a
	// failed attempt (MinBackoff, twice that, ... up to MaxBackoff). Zero
	// means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one delivery (real time). Zero means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MaxPending bounds the reports waiting; past it the oldest is
	// dropped. Zero means DefaultMaxPending.
	MaxPending int
}

// Validate checks the options.
func (o QueueOptions) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("github queue: directory is required")
	case o.Reporter == nil:
		return errors.New("github queue: reporter is required")
	case o.MaxAttempts < 0, o.MaxAge < 0, o.MinBackoff < 0, o.MaxBackoff < 0, o.AttemptTimeout < 0, o.MaxPending < 0:
		return errors.New("github queue: negative limit")
	}
	return nil
}

// QueueCounts is what a Queue did since it was made. Every enqueued
// report ends exactly once as delivered, superseded, duplicate or
// dropped, or is still pending.
type QueueCounts struct {
	Enqueued   int64 // reports given to Enqueue, valid or not
	Delivered  int64 // carried out
	Superseded int64 // replaced, still pending, by a newer report of the same slot
	Duplicate  int64 // the same report was pending already, or was the last delivered in its slot
	Retried    int64 // failed attempts, tried again later (5xx, timeouts, network)
	Limited    int64 // attempts held back by a GitHub rate limit (not failures)
	Dropped    int64 // given up; the sum of the four below
	// DroppedAttempts failed MaxAttempts times; DroppedAge were older
	// than MaxAge; DroppedRejected were refused by GitHub (4xx) or
	// invalid; DroppedOverflow were pushed out past MaxPending.
	DroppedAttempts, DroppedAge, DroppedRejected, DroppedOverflow int64
	SaveErrors                                                    int64 // failed writes of the queue file
	Pending                                                       int   // waiting now
}

// Queue sends reports to GitHub without ever holding up a reconcile:
// Enqueue records a report and returns; Run delivers them one at a time,
// oldest first, retrying with exponential backoff, waiting out rate
// limits, and dropping (counted and logged) what fails too often or grows
// too old. A newer report replaces a pending one of the same slot (see
// Report.Slot), and a report identical to the one last delivered in its
// slot is not sent again.
//
// The pending reports are kept in Dir/github-queue.json, rewritten
// atomically at every change, so they survive a restart of molt;
// deleting the file forgets them (nothing else depends on it).
type Queue struct {
	path    string
	rep     Reporter
	log     *slog.Logger
	clock   Clock
	opts    QueueOptions
	wake    chan struct{}
	running atomic.Bool

	mu        sync.Mutex
	pending   map[string]*entry // by slot
	seq       int64
	delivered []delivered // oldest first, at most maxDelivered
	paused    time.Time   // a rate limit holds every report until then
	inflight  int64       // the Seq of the report being delivered, 0 when none
	counts    QueueCounts
	gen       int64 // of the state, for save

	fileMu  sync.Mutex
	written int64                               // the gen last written
	onWrite atomic.Pointer[func(string, error)] // see ReportWrites
}

// entry is a pending report.
type entry struct {
	Seq       int64     `json:"seq"`
	Report    Report    `json:"report"`
	Digest    string    `json:"digest"`
	Enqueued  time.Time `json:"enqueued"`
	Attempts  int       `json:"attempts,omitempty"`
	Next      time.Time `json:"next,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

// delivered is the last report delivered in a slot.
type delivered struct {
	Slot   string `json:"slot"`
	Key    string `json:"key"`
	Digest string `json:"digest"`
}

// maxDelivered bounds the slots whose last delivery is remembered.
const maxDelivered = 256

// NewQueue checks the options and loads the pending reports from
// Dir/github-queue.json (a file that cannot be read as a queue is moved
// aside to github-queue.json.bad and the queue starts empty). It starts
// nothing: call Run.
func NewQueue(opts QueueOptions) (*Queue, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.AttemptTimeout == 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = DefaultMaxPending
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("github queue: %w", err)
	}
	q := &Queue{
		path:    filepath.Join(opts.Dir, QueueFile),
		rep:     opts.Reporter,
		log:     log.With("queue", "github"),
		clock:   clockOr(opts.Clock),
		opts:    opts,
		wake:    make(chan struct{}, 1),
		pending: map[string]*entry{},
	}
	if err := q.load(); err != nil {
		return nil, err
	}
	return q, nil
}

// Counts returns what the queue did so far.
func (q *Queue) Counts() QueueCounts {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.counts
	c.Pending = len(q.pending)
	return c
}

// Pending returns the reports waiting, oldest first.
func (q *Queue) Pending() []Report {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Report
	for _, e := range q.sorted() {
		out = append(out, e.Report)
	}
	return out
}

// Enqueue records a report to deliver and returns at once: it neither
// sends nor waits (it writes the small queue file). An invalid report is
// dropped and logged.
func (q *Queue) Enqueue(r Report) {
	q.mu.Lock()
	q.counts.Enqueued++
	if err := r.Validate(); err != nil {
		q.dropLocked(nil, dropRejected, err)
		q.mu.Unlock()
		return
	}
	slot, key, digest := r.Slot(), r.Key(), digestOf(r)
	if old := q.pending[slot]; old != nil && old.Digest == digest {
		q.counts.Duplicate++
		q.mu.Unlock()
		return
	}
	if d := q.lastDelivered(slot); d != nil && d.Key == key && d.Digest == digest {
		q.counts.Duplicate++
		q.mu.Unlock()
		return
	}
	if old := q.pending[slot]; old != nil && old.Seq != q.inflight {
		q.counts.Superseded++ // (one in flight is counted when its attempt ends)
		q.log.Debug("github report superseded", "report", old.Report, "by", key)
	}
	crash.At("github.before-queue")
	q.seq++
	q.pending[slot] = &entry{Seq: q.seq, Report: r, Digest: digest, Enqueued: q.clock.Now()}
	if len(q.pending) > q.opts.MaxPending {
		for _, e := range q.sorted() { // the oldest not in flight
			if e.Seq != q.inflight {
				q.dropLocked(e, dropOverflow, nil)
				break
			}
		}
	}
	gen, data := q.snapshotLocked()
	q.mu.Unlock()
	q.save(gen, data)
	crash.At("github.after-queue")
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run delivers the pending reports until ctx is cancelled, then returns
// nil. Only one Run at a time. A delivery in flight when ctx is cancelled
// is abandoned and stays pending (it is delivered again by the next Run,
// which is safe: deliveries are idempotent).
func (q *Queue) Run(ctx context.Context) error {
	if !q.running.CompareAndSwap(false, true) {
		return errors.New("github queue: already running")
	}
	defer q.running.Store(false)
	for {
		e, wait := q.next()
		if e != nil {
			q.attempt(ctx, *e)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = q.clock.After(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-timer:
		}
	}
}

// next returns a copy of the report to deliver now, or how long until one
// is due (0: none pending). It drops reports past MaxAge.
func (q *Queue) next() (*entry, time.Duration) {
	now := q.clock.Now()
	q.mu.Lock()
	dropped := false
	for _, e := range q.sorted() {
		if now.Sub(e.Enqueued) > q.opts.MaxAge {
			q.dropLocked(e, dropAge, nil)
			dropped = true
		}
	}
	var pick *entry
	var wait time.Duration
	for _, e := range q.sorted() {
		due := e.Next
		if q.paused.After(due) {
			due = q.paused
		}
		if !due.After(now) {
			c := *e
			pick = &c
			q.inflight = e.Seq
			break
		}
		if d := due.Sub(now); wait == 0 || d < wait {
			wait = d
		}
	}
	var gen int64
	var data []byte
	if dropped {
		gen, data = q.snapshotLocked()
	}
	q.mu.Unlock()
	if dropped {
		q.save(gen, data)
	}
	return pick, wait
}

// attempt delivers one report and records the result.
func (q *Queue) attempt(ctx context.Context, e entry) {
	actx, cancel := context.WithTimeout(ctx, q.opts.AttemptTimeout)
	err := q.rep.Deliver(actx, e.Report)
	cancel()
	if ctx.Err() != nil {
		q.mu.Lock()
		q.inflight = 0
		if cur := q.pending[e.Report.Slot()]; cur == nil || cur.Seq != e.Seq {
			q.counts.Superseded++
		}
		q.mu.Unlock()
		return // stopping: the report stays pending as it was
	}
	now := q.clock.Now()
	q.mu.Lock()
	q.inflight = 0
	slot := e.Report.Slot()
	cur := q.pending[slot]
	if cur != nil && cur.Seq != e.Seq {
		cur = nil // superseded while in flight: the newer one stays pending
	}
	switch until, limited := limitedUntil(err, now); {
	case err == nil:
		q.counts.Delivered++
		q.remember(delivered{Slot: slot, Key: e.Report.Key(), Digest: e.Digest})
		if cur != nil {
			delete(q.pending, slot)
		}
		q.log.Info("github report delivered", "report", e.Report, "attempts", e.Attempts+1)
	case Permanent(err):
		q.dropLocked(&e, dropRejected, err)
	case cur == nil:
		q.counts.Superseded++ // failed, and a newer report takes its place
	case limited:
		q.counts.Limited++
		if until.After(q.paused) {
			q.paused = until
		}
		cur.LastError = err.Error()
		q.log.Warn("github report held back by a rate limit", "report", e.Report, "until", until)
	default:
		q.counts.Retried++
		cur.Attempts++
		cur.LastError = err.Error()
		if cur.Attempts >= q.opts.MaxAttempts {
			q.dropLocked(cur, dropAttempts, err)
			break
		}
		cur.Next = now.Add(q.backoff(cur.Attempts))
		q.log.Warn("github report failed, will retry", "report", e.Report, "attempt", cur.Attempts, "next", cur.Next, "err", err)
	}
	gen, data := q.snapshotLocked()
	q.mu.Unlock()
	q.save(gen, data)
}

// backoff is the wait after the n-th failed attempt.
func (q *Queue) backoff(n int) time.Duration {
	d := q.opts.MinBackoff
	for i := 1; i < n && d < q.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.opts.MaxBackoff)
}

type dropReason string

const (
	dropAttempts dropReason = "too many failed attempts"
	dropAge      dropReason = "too old"
	dropRejected dropReason = "refused"
	dropOverflow dropReason = "too many pending reports"
)

// dropLocked gives a report up (e nil: it was never queued), counting
// and logging it; q.mu is held.
func (q *Queue) dropLocked(e *entry, why dropReason, err error) {
	q.counts.Dropped++
	switch why {
	case dropAttempts:
		q.counts.DroppedAttempts++
	case dropAge:
		q.counts.DroppedAge++
	case dropRejected:
		q.counts.DroppedRejected++
	case dropOverflow:
		q.counts.DroppedOverflow++
	}
	attrs := []any{"why", string(why)}
	if e != nil {
		if cur := q.pending[e.Report.Slot()]; cur != nil && cur.Seq == e.Seq {
			delete(q.pending, e.Report.Slot())
		}
		attrs = append(attrs, "report", e.Report, "attempts", e.Attempts, "enqueued", e.Enqueued)
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	var re *RefusedError
	if errors.As(err, &re) {
		attrs = append(attrs, "status", re.Status, "needs", re.Permission)
	}
	q.log.Error("github report dropped", attrs...)
}

func (q *Queue) lastDelivered(slot string) *delivered {
	for i := len(q.delivered) - 1; i >= 0; i-- {
		if q.delivered[i].Slot == slot {
			return &q.delivered[i]
		}
	}
	return nil
}

func (q *Queue) remember(d delivered) {
	for i := range q.delivered {
		if q.delivered[i].Slot == d.Slot {
			q.delivered = append(q.delivered[:i], q.delivered[i+1:]...)
			break
		}
	}
	q.delivered = append(q.delivered, d)
	if n := len(q.delivered) - maxDelivered; n > 0 {
		q.delivered = q.delivered[n:]
	}
}
