package targetstest

import (
	"context"
	"testing"
	"time"
)

// ExitWatcher is a target that reports the exits of its instances (the
// process and docker targets).
type ExitWatcher interface {
	WatchExits(ctx context.Context, notify func(ids []string)) error
}

// WatchExits runs w.WatchExits until the test ends and returns the
// reports it makes, in order.
func WatchExits(t testing.TB, w ExitWatcher) <-chan []string {
	t.Helper()
	got := make(chan []string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.WatchExits(ctx, func(ids []string) { got <- ids }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return got
}

// NextExit returns the next report of got, failing the test when none
// comes within d.
func NextExit(t testing.TB, got <-chan []string, d time.Duration) []string {
	t.Helper()
	select {
	case ids := <-got:
		return ids
	case <-time.After(d):
		t.Fatalf("no exit reported within %s", d)
		return nil
	}
}
