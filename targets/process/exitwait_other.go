//go:build !linux

package process

import (
	"context"
	"time"
)

// exitWaiter, without pidfds, waits for the timeout or the context.
type exitWaiter struct{}

func newExitWaiter(context.Context) *exitWaiter { return &exitWaiter{} }

func (w *exitWaiter) close() {}

func (w *exitWaiter) await(ctx context.Context, _ []int, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func pidfdOf(*pidRef) int { return -1 }

func groupGone(int) bool { return false }
