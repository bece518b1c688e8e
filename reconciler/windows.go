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
func deployWindow(windows []schema.Window, now time.Time) (open bool, until time.Time) {
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
			if active && fired.Add(w.Duration).After(denyEnd) {
				denyEnd = fired.Add(w.Duration)
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
