package docker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets"
)

// Exit notifications: WatchExits follows every engine's event stream for
// molt's containers dying, so that serve replaces a dead instance on the
// event rather than at the next poll.

const (
	// exitSettle is how long a reported exit waits for others to join it.
	exitSettle = 20 * time.Millisecond
	// expectFor is how long a container that Retire stops stays expected
	// to die: its die event may come after Retire returned.
	expectFor = time.Minute
	// maxEventRetry caps the wait before an event stream is opened again.
	maxEventRetry = 30 * time.Second
)

// expectExit says that the container of instance id is about to be
// stopped on purpose (a retire): its death is not reported.
func (t *Target) expectExit(id string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.expected == nil {
		t.expected = make(map[string]time.Time)
	}
	for k, at := range t.expected {
		if now.Sub(at) > expectFor {
			delete(t.expected, k)
		}
	}
	t.expected[id] = now
}

func (t *Target) wasExpected(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.expected[id]
	return ok && time.Since(at) <= expectFor
}

// WatchExits calls notify with the ids of the instances whose container
// died by itself (it exited, was killed, ran out of memory), until ctx
// ends; it returns ctx's error. It follows the event stream of every
// engine (one goroutine each), opening it again with backoff when it
// breaks, from the moment it broke, so that what died meanwhile is
// reported once the engine answers again (what died before WatchExits
// started is not: a poll finds it). A burst of deaths comes as one call; the deaths that Retire causes
// are not reported. notify runs on WatchExits's goroutine and should not
// block.
func (t *Target) WatchExits(ctx context.Context, notify func(ids []string)) error {
	return t.WatchExitsOf(ctx, nil, notify)
}

// WatchExitsOf is WatchExits for the containers whose labels keep
// accepts (nil: every container of molt's): an engine's event stream
// tells of every fleet's containers, those of other molts included.
func (t *Target) WatchExitsOf(ctx context.Context, keep func(targets.Labels) bool, notify func(ids []string)) error {
	var (
		mu   sync.Mutex
		ids  []string
		wake = make(chan struct{}, 1)
	)
	died := func(id string) {
		if t.wasExpected(id) {
			return
		}
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, e := range t.engines {
		wg.Go(func() { t.follow(ctx, e, keep, died) })
	}
	return targets.Batches(ctx, wake, exitSettle, func() []string {
		mu.Lock()
		defer mu.Unlock()
		got := ids
		ids = nil
		return got
	}, notify)
}

// follow reads engine e's die events of molt's containers until ctx
// ends, calling died with the instance id of each that keep accepts.
func (t *Target) follow(ctx context.Context, e *engine, keep func(targets.Labels) bool, died func(id string)) {
	backoff := time.Duration(0)
	var since time.Time // when the last stream broke: what died meanwhile is replayed
	for ctx.Err() == nil {
		began := time.Now()
		opts := client.EventsListOptions{}
		if !since.IsZero() {
			opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
		}
		res := e.api.Events(ctx, client.EventsListOptions{
			Since: opts.Since,
			Filters: make(client.Filters).
				Add("type", string(events.ContainerEventType)).
				Add("event", string(events.ActionDie)).
				Add("label", LabelFleet),
		})
		err := t.read(ctx, res, e, keep, died)
		if ctx.Err() != nil {
			return
		}
		since = time.Now()
		if time.Since(began) > maxEventRetry {
			backoff = 0 // it ran a while: not a stream that fails at once
		}
		backoff = min(max(2*backoff, time.Second), maxEventRetry)
		t.log.Debug("the engine's event stream broke; opening it again", "engine", e.Name, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// read reads one event stream until it ends, and returns why.
func (t *Target) read(ctx context.Context, res client.EventsResult, e *engine, keep func(targets.Labels) bool, died func(id string)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-res.Err:
			return err
		case m, ok := <-res.Messages:
			if !ok {
				return nil
			}
			if m.Type != events.ContainerEventType || m.Action != events.ActionDie || m.Actor.ID == "" {
				continue
			}
			l, ok := labelsOf(m.Actor.Attributes)
			if !ok || (keep != nil && !keep(l)) {
				continue // not all of molt's labels, or not a container asked for
			}
			died(instanceID(e.Name, m.Actor.ID))
		}
	}
}
