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
			if end := lastFiring(sched, fired, now).Add(w.Duration); end.After(denyEnd) {
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

// lastFiring is the latest time at or before now that sched fires, given
// one such time (first). Next(x) <= now holds for every x before that
// firing and for none at or after it, so a bisection finds it in a few
// dozen steps, however often the schedule fires.
func lastFiring(sched cron.Schedule, first, now time.Time) time.Time {
	lo, hi := first.Add(-time.Second), now // Next(lo) == first <= now; Next(hi) > now
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if sched.Next(mid).After(now) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return sched.Next(lo)
}
