package reconciler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/molt-dev/molt/schema"
)

// Snapshot is one validated revision of the desired state.
type Snapshot struct {
	Fleet    *schema.Fleet
	Revision string
	Specs    SpecSource
	// Message is the commit message, for reports (a revert names the
	// commit it reverts there).
	Message string
}

// Source gives the newest desired state of the tracked branch. An error
// that wraps *schema.InvalidError means the newest commit is invalid: the
// loop keeps the fleet on the last valid snapshot until a new commit comes.
type Source interface {
	Latest(ctx context.Context) (Snapshot, error)
}

// Mover is implemented by sources that can tell cheaply whether the
// tracked branch has moved away from a revision. With it, the loop stops a
// reconcile between steps only for a newer revision; triggers that bring
// nothing new (a burst of webhooks for one push, a poll tick) wait for the
// reconcile to finish, then coalesce into one more.
type Mover interface {
	Moved(ctx context.Context, revision string) (bool, error)
}

// Schedule says when the next poll is due (robfig/cron's Schedule fits).
type Schedule interface {
	Next(time.Time) time.Time
}

// Loop reconciles continuously: on every trigger (a poll tick, a webhook,
// an instance's exit, a retry after a fault) it reads the newest desired
// state and converges the fleet to it. Triggers coalesce: one reconcile
// runs at a time, and however many triggers arrive while it runs, exactly
// one more follows.
type Loop struct {
	Source   Source
	Executor *Executor
	Schedule Schedule
	Logger   *slog.Logger
	// Timeout bounds one reconcile (default 15m).
	Timeout time.Duration
	// StepGrace bounds how long a step in progress may go on after the
	// loop is cancelled (default 30s).
	StepGrace time.Duration
	// MaxBackoff caps the retry delay after a fault (default 5m).
	MaxBackoff time.Duration
	// OnResult, when set, is called after every reconcile.
	OnResult func(Outcome)
	// WatchHealth probes the instances of the last revision between
	// reconciles, each when its check is due, and reconciles at once
	// (reason "health") when a verdict changes: an instance that stays up
	// but turns unhealthy is replaced whatever the poll schedule.
	WatchHealth bool

	once    sync.Once
	trigger chan string
	mu      sync.Mutex
	status  Status
}

// Outcome is what one reconcile did.
type Outcome struct {
	Reason   string
	Fleet    string
	Revision string
	Message  string // the commit message of Revision
	Result   Result
	Err      error
	Started  time.Time
	Finished time.Time
}

// Status is the loop's state, for /readyz and people.
type Status struct {
	// Fetched: the source answered at least once.
	Fetched bool
	// Revision is the revision the fleet was last converged or converging to.
	Revision string
	// Invalid is the newest revision that failed validation, if any.
	Invalid    string
	InvalidErr error
	// Running is when the reconcile in progress started (zero when idle).
	Running time.Time
	// LastErr is the last reconcile's error (nil after a success).
	LastErr   error
	Last      time.Time
	Reconcile int // reconciles run so far
}

func (l *Loop) init() {
	l.once.Do(func() { l.trigger = make(chan string, 1) })
}

// Trigger asks for a reconcile; it never blocks. Triggers that arrive
// while one is pending merge into it.
func (l *Loop) Trigger(reason string) {
	l.init()
	select {
	case l.trigger <- reason:
	default:
	}
}

// Exited tells the loop that the processes of instances ids ended by
// themselves (a crash, a kill): it triggers a reconcile ("exit") that
// replaces them at once, whatever the poll schedule. It never blocks; a
// burst of exits merges into one reconcile like any trigger, and a
// reconcile in progress is not preempted by it (the one that follows
// replaces them). Call it from the targets' exit watchers.
func (l *Loop) Exited(ids ...string) {
	l.log().Info("instance exited; reconciling", "instances", ids)
	l.Trigger(ReasonExit)
}

// ReasonExit is the reason of a reconcile that Exited triggered.
const ReasonExit = "exit"

// ReasonHealth is the reason of a reconcile that a verdict changed
// between reconciles called for (see WatchHealth).
const ReasonHealth = "health"

// minHealthWatch is the shortest pause between two health watches, so
// that checks due at nearly the same moment are probed together.
const minHealthWatch = 20 * time.Millisecond

// watchHealth probes the instances of fleet whose checks are due and
// reports whether a verdict changed. Errors (the target cannot list) are
// left to the next reconcile, which meets them too.
func (l *Loop) watchHealth(ctx context.Context, fleet *schema.Fleet) bool {
	e := l.Executor
	select {
	case <-e.Prober.Changed(): // a verdict the last reconcile planned on
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	mine, err := e.fleetInstances(ctx, fleet.Name)
	if err != nil {
		return false
	}
	obs := e.probe(ctx, fleet, mine)
	select {
	case <-e.Prober.Changed():
		for _, o := range obs {
			if o.Health == Unhealthy || o.LivenessFailed {
				l.log().Info("instance unhealthy; reconciling", "fleet", fleet.Name, "service", o.Labels.Service, "instance", o.ID)
			}
		}
		return true
	default:
		return false
	}
}

// Status returns a copy of the loop's status.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

func (l *Loop) log() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run reconciles until ctx is cancelled. It triggers once at start, then
// on every Schedule tick and every Trigger. Faults (an unreachable remote,
// a failed reconcile) are logged and retried with exponential backoff; Run
// never returns because of them. When ctx is cancelled, the step in
// progress finishes (the executor checks between steps) and Run returns.
func (l *Loop) Run(ctx context.Context) error {
	l.init()
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	maxBackoff := l.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Minute
	}
	l.Trigger("start")
	var last Snapshot
	backoff := time.Duration(0)
	var retry <-chan time.Time
	var tick <-chan time.Time
	var tickTimer *time.Timer
	// wake is the reconcile that the clock alone calls for (a warm
	// generation's keepPrevious ends, a deploy window opens), whatever the
	// poll schedule says.
	var wake <-chan time.Time
	var wakeTimer *time.Timer
	// health is the next health watch (WatchHealth).
	var health <-chan time.Time
	var healthTimer *time.Timer
	armHealth := func() {
		health = nil
		if !l.WatchHealth || last.Fleet == nil || l.Executor.Prober == nil {
			return
		}
		next := l.Executor.Prober.Next()
		if next.IsZero() {
			return
		}
		d := max(time.Until(next), minHealthWatch)
		if healthTimer == nil {
			healthTimer = time.NewTimer(d)
		} else {
			healthTimer.Reset(d)
		}
		health = healthTimer.C
	}
	arm := func() {
		if l.Schedule == nil {
			return
		}
		now := time.Now()
		d := l.Schedule.Next(now).Sub(now)
		if tickTimer == nil {
			tickTimer = time.NewTimer(d)
		} else {
			tickTimer.Reset(d)
		}
		tick = tickTimer.C
	}
	arm()
	defer func() {
		if tickTimer != nil {
			tickTimer.Stop()
		}
		if wakeTimer != nil {
			wakeTimer.Stop()
		}
		if healthTimer != nil {
			healthTimer.Stop()
		}
	}()
	for {
		var reason string
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			arm()
			reason = "poll"
		case <-retry:
			retry = nil
			reason = "retry"
		case <-wake:
			wake = nil
			reason = "wake"
		case <-health:
			if !l.watchHealth(ctx, last.Fleet) {
				armHealth()
				continue
			}
			reason = ReasonHealth
		case reason = <-l.trigger:
		}
		out := l.reconcile(ctx, reason, &last, timeout)
		out.Finished = time.Now()
		if l.OnResult != nil {
			l.OnResult(out)
		}
		if out.Err != nil && ctx.Err() == nil && Classify(out.Err) == Stalling {
			// Retrying cannot help: the next commit (or poll) tries again.
			l.log().Error("reconcile stalled until the desired state changes", "fleet", out.Fleet, "revision", out.Revision, "reason", reason, "error", out.Err)
			backoff = 0
		} else if out.Err != nil && ctx.Err() == nil {
			backoff = min(max(2*backoff, time.Second), maxBackoff)
			l.log().Warn("reconcile failed; retrying", "fleet", out.Fleet, "revision", out.Revision, "reason", reason, "in", backoff, "error", out.Err)
			retry = time.After(backoff)
		} else {
			backoff = 0
		}
		if w := out.Result.Plan.Wake(); !w.IsZero() {
			if wakeTimer != nil {
				wakeTimer.Stop()
			}
			wakeTimer = time.NewTimer(max(time.Until(w), 0) + 10*time.Millisecond)
			wake = wakeTimer.C
		}
		armHealth()
	}
}

// reconcile reads the newest snapshot and converges to it (or to the last
// valid one when the newest is invalid).
func (l *Loop) reconcile(ctx context.Context, reason string, last *Snapshot, timeout time.Duration) Outcome {
	out := Outcome{Reason: reason, Started: time.Now()}
	l.mu.Lock()
	l.status.Running = out.Started
	l.status.Reconcile++
	l.mu.Unlock()
	defer func() {
		out.Finished = time.Now()
		l.mu.Lock()
		l.status.Running = time.Time{}
		l.status.LastErr = out.Err
		l.status.Last = out.Finished
		l.mu.Unlock()
	}()

	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	snap, err := l.Source.Latest(rctx)
	var sourceErr error // the source's error when the last revision is converged instead
	var inv *schema.InvalidError
	switch {
	case errors.As(err, &inv):
		l.mu.Lock()
		l.status.Fetched = true
		first := l.status.InvalidErr == nil || l.status.InvalidErr.Error() != err.Error()
		l.status.InvalidErr = err
		l.mu.Unlock()
		if first {
			l.log().Error("newest commit is invalid; keeping the last valid revision", "error", err)
		}
		if last.Fleet == nil {
			return out // nothing valid yet: stalled until a new commit
		}
		snap = *last
	case err != nil && (last.Fleet == nil || ctx.Err() != nil):
		out.Err = err
		return out
	case err != nil:
		// The source cannot be read (an unreachable remote, a cache that
		// cannot be written): self-heal does not wait for it. The last
		// revision read is converged again, so dead instances are
		// replaced, and the error is reported and retried with backoff.
		l.log().Warn("cannot read the desired state; converging the last revision read", "fleet", last.Fleet.Name, "revision", last.Revision, "error", err)
		sourceErr = err
		snap = *last
	default:
		l.mu.Lock()
		l.status.Fetched = true
		l.status.InvalidErr = nil
		l.mu.Unlock()
		*last = snap
	}
	out.Fleet, out.Revision, out.Message = snap.Fleet.Name, snap.Revision, snap.Message
	l.mu.Lock()
	l.status.Revision = snap.Revision
	l.mu.Unlock()

	x := *l.Executor
	x.Specs = snap.Specs
	mover, _ := l.Source.(Mover)
	x.Preempt = func() bool {
		if rctx.Err() != nil {
			return true
		}
		if len(l.trigger) == 0 {
			return false
		}
		if mover == nil {
			return true
		}
		moved, err := mover.Moved(rctx, snap.Revision)
		if err != nil {
			l.log().Debug("cannot tell whether the branch moved; carrying on", "fleet", snap.Fleet.Name, "revision", snap.Revision, "error", err)
		}
		return moved
	}
	// A step in progress finishes even when ctx is cancelled (the executor
	// sees the cancellation between steps, through Preempt), bounded by
	// StepGrace after the cancellation.
	sctx, scancel := context.WithCancel(context.WithoutCancel(rctx))
	defer scancel()
	grace := l.StepGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	stop := context.AfterFunc(rctx, func() { time.AfterFunc(grace, scancel) })
	defer stop()
	res, err := x.Apply(sctx, snap.Fleet, snap.Revision)
	out.Result, out.Err = res, err
	if out.Err == nil && sourceErr != nil {
		out.Err = sourceErr // healed, but the source is still to be read again
	}
	return out
}
