package router

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/molt-dev/molt/targets"
)

// Table is the whole routing state of a router: the routes of every fleet
// that has some. GET /table answers it (for debugging) and
// STATE/router/routes.json stores it; clients read and replace one fleet's
// routes at a time (Client.Routes, Client.SetRoutes).
type Table struct {
	// Version counts the changes of the table: each SetRoutes adds one. It
	// is persisted, so it keeps growing across the router's restarts.
	Version int64 `json:"version"`
	// Fleets holds each fleet's routes, sorted by service. A fleet without
	// routes is absent.
	Fleets map[string][]targets.Route `json:"fleets"`
}

// ErrInvalidTable wraps errors of routes that no retry can fix: an empty or
// malformed fleet or service name, a service listed twice, a bad address, a
// negative weight, a backend listed twice in a route, a listen address
// that another route uses, or a backend that is a listen address of the
// table (the router would forward to itself).
var ErrInvalidTable = targets.ErrInvalidRoutes

func emptyTable() Table { return Table{Fleets: map[string][]targets.Route{}} }

// fleetNames returns the fleets of t, sorted.
func (t Table) fleetNames() []string {
	names := make([]string, 0, len(t.Fleets))
	for name := range t.Fleets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// with returns a copy of t in which fleet's routes are routes (and fleet is
// absent if there are none). It shares the other fleets' routes with t,
// which nobody modifies once stored.
func (t Table) with(fleet string, routes []targets.Route) Table {
	out := Table{Version: t.Version, Fleets: make(map[string][]targets.Route, len(t.Fleets)+1)}
	for name, rs := range t.Fleets {
		if name != fleet {
			out.Fleets[name] = rs
		}
	}
	if len(routes) > 0 {
		out.Fleets[fleet] = routes
	}
	return out
}

// listenAddrs returns every listen address of t, sorted.
func (t Table) listenAddrs() []string {
	var addrs []string
	for _, routes := range t.Fleets {
		for _, r := range routes {
			if r.Listen != "" {
				addrs = append(addrs, r.Listen)
			}
		}
	}
	sort.Strings(addrs)
	return addrs
}

// owner is the route that uses a listen address.
type owner struct{ fleet, service string }

// listenOwners maps the listen addresses of every fleet of t but skip to
// the route that uses them.
func (t Table) listenOwners(skip string) map[string]owner {
	used := map[string]owner{}
	for fleet, routes := range t.Fleets {
		if fleet == skip {
			continue
		}
		for _, r := range routes {
			if r.Listen != "" {
				used[r.Listen] = owner{fleet, r.Service}
			}
		}
	}
	return used
}

// sortedRoutes returns a copy of routes sorted by service.
func sortedRoutes(routes []targets.Route) []targets.Route {
	out := slices.Clone(routes)
	slices.SortStableFunc(out, func(a, b targets.Route) int { return cmp.Compare(a.Service, b.Service) })
	return out
}

// checkRoutes reports the first reason why routes cannot become fleet's
// routes in t (whose routes of fleet itself they would replace), wrapping
// ErrInvalidTable.
func checkRoutes(t Table, fleet string, routes []targets.Route) error {
	if err := checkFleetName(fleet); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTable, err)
	}
	used := t.listenOwners(fleet)
	mine := map[string]owner{} // the listen addresses of routes
	services := make(map[string]bool, len(routes))
	for _, r := range routes {
		if services[r.Service] {
			return fmt.Errorf("%w: fleet %s: service %s listed twice", ErrInvalidTable, fleet, r.Service)
		}
		if err := checkRoute(r, used); err != nil {
			return fmt.Errorf("%w: fleet %s: %w", ErrInvalidTable, fleet, err)
		}
		services[r.Service] = true
		if r.Listen != "" {
			used[r.Listen] = owner{fleet, r.Service}
			mine[r.Listen] = owner{fleet, r.Service}
		}
	}
	// Checked once every listen address is known: a backend may name the
	// listen address of a route listed after its own. Another fleet's
	// backends were checked against the other listen addresses when they
	// were set: only those of routes are new to them.
	check := func(name string, routes []targets.Route, listens map[string]owner) error {
		for _, r := range routes {
			for _, b := range r.Backends {
				if o, ok := listenedBy(listens, b.Addr); ok {
					return fmt.Errorf("%w: fleet %s: service %s: backend %s is the router's own listen address (fleet %s, service %s): the router would forward to itself",
						ErrInvalidTable, name, r.Service, b.Addr, o.fleet, o.service)
				}
			}
		}
		return nil
	}
	if err := check(fleet, routes, used); err != nil {
		return err
	}
	if len(mine) == 0 {
		return nil
	}
	for _, name := range t.fleetNames() {
		if name != fleet {
			if err := check(name, t.Fleets[name], mine); err != nil {
				return err
			}
		}
	}
	return nil
}

// listenedBy reports the route that listens on addr: the same host and
// port; or the same port on a wildcard listen address when addr is a
// loopback or wildcard one; or on a loopback one when addr is localhost or
// a wildcard one (a connection to 0.0.0.0 reaches this machine).
func listenedBy(used map[string]owner, addr string) (owner, bool) {
	if o, ok := used[addr]; ok {
		return o, true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !local(host) {
		return owner{}, false
	}
	hosts := []string{"", "0.0.0.0", "::"}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		hosts = append(hosts, "127.0.0.1", "::1", "localhost")
	}
	for _, h := range hosts {
		if o, ok := used[net.JoinHostPort(h, port)]; ok {
			return o, true
		}
	}
	return owner{}, false
}

// local reports whether host is this machine whatever its interfaces: a
// loopback or wildcard address, or localhost.
func local(host string) bool {
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// checkRoute checks one route, given the listen addresses already used.
func checkRoute(r targets.Route, used map[string]owner) error {
	if r.Service == "" {
		return errors.New("empty service name")
	}
	if r.Listen != "" {
		if err := checkAddr(r.Listen); err != nil {
			return fmt.Errorf("service %s: listen: %w", r.Service, err)
		}
		if o, ok := used[r.Listen]; ok {
			return fmt.Errorf("service %s: listen %s is used by fleet %s, service %s", r.Service, r.Listen, o.fleet, o.service)
		}
	}
	seen := make(map[string]bool, len(r.Backends))
	for _, b := range r.Backends {
		if err := checkAddr(b.Addr); err != nil {
			return fmt.Errorf("service %s: backend %q: %w", r.Service, b.Instance, err)
		}
		if seen[b.Addr] {
			return fmt.Errorf("service %s: backend address %s listed twice", r.Service, b.Addr)
		}
		seen[b.Addr] = true
		if b.Weight < 0 {
			return fmt.Errorf("service %s: backend %s: negative weight %d", r.Service, b.Addr, b.Weight)
		}
	}
	return nil
}

// checkTable checks a whole table, as read back from its file.
func checkTable(t Table) error {
	seen := emptyTable()
	for _, fleet := range t.fleetNames() {
		routes := t.Fleets[fleet]
		if err := checkRoutes(seen, fleet, routes); err != nil {
			return err
		}
		seen.Fleets[fleet] = routes
	}
	return nil
}

// checkFleetName accepts the names that can travel as one path segment of
// the admin protocol.
func checkFleetName(fleet string) error {
	switch {
	case fleet == "":
		return errors.New("empty fleet name")
	case strings.Contains(fleet, "/"):
		return fmt.Errorf("fleet name %q contains a slash", fleet)
	case fleet == "." || fleet == "..":
		return fmt.Errorf("fleet name %q is not a name", fleet)
	case !utf8.ValidString(fleet):
		// JSON would save it with U+FFFD in place of its bad bytes: a
		// name the routes file then holds for another fleet.
		return fmt.Errorf("fleet name %q is not valid UTF-8", fleet)
	}
	return nil
}

// checkAddr accepts host:port with a numeric port from 1 to 65535. Port 0
// is refused: a route must say where the router really listens.
func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("empty address")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %s: port must be a number from 1 to 65535", addr)
	}
	return nil
}
