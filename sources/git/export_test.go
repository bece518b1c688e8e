package git

import (
	"context"
	"sync"
	"time"
)

// SetMaxPacks sets how many packs a cache holds before Fetch repacks it,
// for the duration of a test.
func SetMaxPacks(n int) (restore func()) {
	old := maxPacks
	maxPacks = n
	return func() { maxPacks = old }
}

// WaitRepack waits for the repack that r runs in the background, if any,
// to end.
func WaitRepack(r *Repo) {
	r.mu.Lock()
	done := r.repackDone
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// HoldRepack makes the repacks in the background stop once they have
// moved their new pack in place, before they delete the old ones, until
// release is called or the repack is cut off. reached receives when a
// repack stops there (it holds one signal; more are dropped). restore
// ends the hold for the repacks started afterwards.
func HoldRepack() (reached <-chan struct{}, release, restore func()) {
	r := make(chan struct{}, 1)
	gate := make(chan struct{})
	var once sync.Once
	repackWritten = func(ctx context.Context) error {
		select {
		case r <- struct{}{}:
		default:
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r, func() { once.Do(func() { close(gate) }) }, func() { repackWritten = nil }
}

// SetRepackTimeout sets the time limit of a repack, for the duration of a
// test.
func SetRepackTimeout(d time.Duration) (restore func()) {
	old := repackTimeout
	repackTimeout = d
	return func() { repackTimeout = old }
}
