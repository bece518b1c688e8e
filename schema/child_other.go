//go:build !linux

package schema

import (
	"os"
	"runtime/debug"
	"syscall"
	"time"
)

// childAttr: outside Linux the child has no death signal; the parent
// still kills it on every limit it watches.
func childAttr() *syscall.SysProcAttr { return nil }

// residentSet is unknown outside Linux: the child's own limits apply.
func residentSet(int) (rss, peak int64) { return 0, 0 }

func processUsage(ps *os.ProcessState) (time.Duration, int64) {
	if ps == nil {
		return 0, 0
	}
	return ps.UserTime() + ps.SystemTime(), 0
}

// LimitSelf sets only the Go memory limit and the wall-clock limit
// outside Linux.
func LimitSelf(l Limits) error {
	l = l.withDefaults()
	debug.SetMemoryLimit(l.Memory / 10 * 9)
	time.AfterFunc(l.Wall+time.Second, func() { os.Exit(exitWall) })
	return nil
}
