package targets

import (
	"context"
	"time"
)

// Batches hands what take returns to notify each time wake is signalled,
// once settle has passed after the signal, so that a burst (several
// instances dying together) is one call; a take that returns nothing
// calls nothing. It returns ctx's error when ctx ends. The targets' exit
// watchers share it: wake is a channel of one slot that their producers
// signal without blocking.
func Batches(ctx context.Context, wake chan struct{}, settle time.Duration, take func() []string, notify func([]string)) error {
	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
		timer.Reset(settle)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		got := take()
		select { // what came during the settle is in got
		case <-wake:
		default:
		}
		if len(got) > 0 {
			notify(got)
		}
	}
}
