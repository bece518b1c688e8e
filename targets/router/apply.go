package router

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/molt-dev/molt/targets"
)

// setRoutes makes routes the routes of fleet, leaving the other fleets'
// routes as they are: it checks them against the whole table, binds their
// new listen addresses, persists the new table, swaps it in, starts serving
// the new addresses and closes the ones no route uses any more (letting
// their requests finish). No routes removes the fleet. It returns the
// fleet's routes in effect. On error nothing has changed.
//
// Once setRoutes returns, a backend that left the table gets no new
// request. A request that picked it before the swap may still be on its way
// there; it is counted in flight, so Drain waits for it.
func (s *Server) setRoutes(fleet string, routes []targets.Route) ([]targets.Route, error) {
	routes = sortedRoutes(routes)
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	select {
	case <-s.stop:
		return nil, errors.New("router is stopping")
	default:
	}

	old := s.current.Load().table
	if err := checkRoutes(old, fleet, routes); err != nil {
		return nil, err
	}
	t := old.with(fleet, routes)
	t.Version = old.Version + 1
	wanted := t.listenAddrs()
	var added []*listener
	for _, addr := range wanted {
		if _, ok := s.listeners[addr]; ok {
			continue
		}
		l, err := s.bind(addr)
		if err != nil {
			closeAll(added)
			return nil, fmt.Errorf("%w on %s: %w", ErrListen, addr, err)
		}
		added = append(added, l)
	}
	// The directory may have been removed (with the state directory): the
	// routes are saved in a new one, and Run's file keeping makes the rest.
	if _, err := makeDir(s.opts.StateDir); err != nil {
		closeAll(added)
		return nil, err
	}
	if err := saveTable(filepath.Join(s.dir, tableName), t); err != nil {
		closeAll(added)
		return nil, err
	}

	c := compile(t, s.upstreams, s.stats)
	s.current.Store(c)

	for _, l := range added {
		s.listeners[l.addr] = l
		s.serve(l)
	}
	keep := make(map[string]bool, len(wanted))
	for _, addr := range wanted {
		keep[addr] = true
	}
	var closed []string
	for addr, l := range s.listeners {
		if !keep[addr] {
			delete(s.listeners, addr)
			s.retire(l)
			closed = append(closed, addr)
		}
	}
	s.upstreams.prune(c.exposed)
	s.sweepStats()
	s.log.Info("routes set", "fleet", fleet, "version", t.Version, "services", len(routes),
		"opened", listenerAddrs(added), "closed", closed)
	return fleetRoutes(t, fleet), nil
}

// fleetRoutes returns fleet's routes in t, an empty list if it has none.
func fleetRoutes(t Table, fleet string) []targets.Route {
	if rs := t.Fleets[fleet]; rs != nil {
		return rs
	}
	return []targets.Route{}
}

func closeAll(ls []*listener) {
	for _, l := range ls {
		_ = l.ln.Close()
	}
}

func listenerAddrs(ls []*listener) []string {
	addrs := make([]string, len(ls))
	for i, l := range ls {
		addrs[i] = l.addr
	}
	return addrs
}
