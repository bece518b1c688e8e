package router

import (
	"context"
	"fmt"
	"time"
)

// drainPoll is how often drain looks at the in-flight counters.
const drainPoll = 5 * time.Millisecond

// drain waits until no request is in flight to any of addrs, which must be
// out of every fleet's routes, for up to the drain timeout.
func (s *Server) drain(ctx context.Context, addrs []string) error {
	cur := s.current.Load()
	for _, a := range addrs {
		if cur.exposed[a] {
			return fmt.Errorf("drain %s: the backend is still in a route", a)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.drainTimeout())
	defer cancel()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		busy := s.inflight(addrs)
		if len(busy) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: requests still in flight to %v (%w)", ErrDrainTimeout, busy, ctx.Err())
		case <-s.stop:
			return fmt.Errorf("%w: router is stopping", ErrDrainTimeout)
		}
	}
	s.applyMu.Lock()
	s.upstreams.prune(s.current.Load().exposed)
	s.applyMu.Unlock()
	return nil
}

// inflight returns the addresses among addrs with requests in flight.
func (s *Server) inflight(addrs []string) []string {
	var busy []string
	for _, a := range addrs {
		if up := s.upstreams.lookup(a); up != nil && up.inflight.Load() > 0 {
			busy = append(busy, a)
		}
	}
	return busy
}
