package reconciler

import (
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/robfig/cron/v3"
)

// deployWindow says whether a rollout may start at now under the given
// windows, and when it is closed, until when. A deny window that is active
// closes it until the deny window ends; when allow windows exist and none is
// active, it is closed until the next one opens. Without windows it is
// always open. A window is active for its duration after each time its cron
// schedule fires.
//
// until is when the rollout may start: windows that overlap or follow each
// other are followed through (a bounded number of them), so that until is
// a time at which every deny window has ended and an allow window, if any,
// is active.
func deployWindow(windows []schema.Window, now time.Time) (open bool, until time.Time) {
	open, until = windowAt(windows, now)
	if open {
		return true, time.Time{}
	}
	for range 1000 {
		ok, next := windowAt(windows, until)
		if ok || !next.After(until) {
			return false, until
		}
		until = next
	}
	return false, until
}

// windowAt is deployWindow at one instant: when closed, until is when the
// windows active at now end (or the next allow window starts).
func windowAt(windows []schema.Window, now time.Time) (open bool, until time.Time) {
	var allows bool
	var allowActive bool
	var nextAllow, denyEnd time.Time
	for _, w := range windows {
		sched, err := cron.ParseStandard(w.Schedule)
		if err != nil || w.Duration <= 0 {
			continue // the schema refuses these
		}
		fired := sched.Next(now.Add(-w.Duration))
		active := !fired.After(now)
		switch w.Kind {
		case "deny":
			if !active {
				continue
			}
			// The latest firing at or before now ends last.
			last := fired
			for t, i := sched.Next(fired), 0; !t.After(now) && i < 100000; t, i = sched.Next(t), i+1 {
				last = t
			}
			if end := last.Add(w.Duration); end.After(denyEnd) {
				denyEnd = end
			}
		default:
			allows = true
			if active {
				allowActive = true
			} else if n := sched.Next(now); nextAllow.IsZero() || n.Before(nextAllow) {
				nextAllow = n
			}
		}
	}
	switch {
	case !denyEnd.IsZero():
		return false, denyEnd
	case allows && !allowActive:
		return false, nextAllow
	}
	return true, time.Time{}
}
