package router

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
)

// apply makes t the routing table: it binds t's new listen addresses,
// persists t, swaps it in, starts serving the new addresses and closes the
// ones t no longer uses (letting their requests finish). On error nothing
// has changed.
//
// Once apply returns, a backend that left the table gets no new request.
// A request that picked it before the swap may still be on its way there;
// it is counted in flight, so Drain waits for it.
func (s *Server) apply(t Table) (Table, error) {
	if t.Services == nil {
		t.Services = map[string]Route{}
	}
	if err := t.Validate(); err != nil {
		return Table{}, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	select {
	case <-s.stop:
		return Table{}, errors.New("router is stopping")
	default:
	}

	old := s.current.Load()
	t.Version = old.table.Version + 1
	wanted := listenAddrs(t)
	var added []*listener
	for _, addr := range wanted {
		if _, ok := s.listeners[addr]; ok {
			continue
		}
		l, err := s.bind(addr)
		if err != nil {
			closeAll(added)
			return Table{}, fmt.Errorf("%w on %s: %w", ErrListen, addr, err)
		}
		added = append(added, l)
	}
	if err := saveTable(filepath.Join(s.dir, tableName), t); err != nil {
		closeAll(added)
		return Table{}, err
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
	for addr, l := range s.listeners {
		if !keep[addr] {
			delete(s.listeners, addr)
			s.retire(l)
		}
	}
	s.upstreams.prune(c.exposed)
	s.log.Info("routes applied", "version", t.Version, "services", len(t.Services),
		"added", len(added), "listen", wanted)
	return t, nil
}

func closeAll(ls []*listener) {
	for _, l := range ls {
		_ = l.ln.Close()
	}
}

func listenAddrs(t Table) []string {
	var addrs []string
	for _, r := range t.Services {
		if r.Listen != "" {
			addrs = append(addrs, r.Listen)
		}
	}
	sort.Strings(addrs)
	return addrs
}
