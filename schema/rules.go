package schema

import (
	"cmp"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"
)

// cronParser reads the schedules of deploy windows and recycle windows:
// five fields, or a descriptor such as @daily or @every 1h.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (c *checker) cron(p []string, spec string) {
	if _, err := cronParser.Parse(spec); err != nil {
		c.add(p, "invalid cron schedule %q: %v", spec, err)
	}
}

// serviceRules checks the rules across fields of one service that CUE
// cannot express well.
func (c *checker) serviceRules(p []string, s *Service, r rawService) {
	// Named ports must be declared.
	type portRef struct {
		name string
		path []string
	}
	var refs []portRef
	for _, h := range []struct {
		field  string
		health *rawHealth
	}{{"health", &r.Health}, {"liveness", r.Liveness}} {
		switch {
		case h.health == nil:
		case h.health.HTTP != nil:
			refs = append(refs, portRef{h.health.HTTP.Port, at(p, h.field, "http", "port")})
		case h.health.TCP != nil:
			refs = append(refs, portRef{h.health.TCP.Port, at(p, h.field, "tcp", "port")})
		}
	}
	if r.Expose != nil {
		refs = append(refs, portRef{r.Expose.Port, at(p, "expose", "port")})
	}
	for _, ref := range refs {
		if _, ok := s.Ports[ref.name]; !ok {
			c.add(ref.path, "port %q is not declared in ports", ref.name)
		}
	}

	// A variable comes from env or from secretEnv, and molt's own
	// settings stay molt's.
	for _, name := range slices.Sorted(maps.Keys(s.SecretEnv)) {
		if _, ok := s.Env[name]; ok {
			c.add(at(p, "secretEnv", name), "%s is also set in env: a variable comes from env or from secretEnv, not both", name)
		}
		if v := s.SecretEnv[name].Env; strings.HasPrefix(v, "MOLT_") {
			c.add(at(p, "secretEnv", name, "env"), "%s is one of molt's own settings (MOLT_*), which molt never hands to an instance", v)
		}
	}

	// A rollout must be able to make progress.
	ro := s.Rollout
	replicas := max(s.Replicas, 1)
	if ro.MaxSurge.Resolve(replicas, true) == 0 && ro.MaxUnavailable.Resolve(replicas, false) == 0 {
		c.addFirst([][]string{at(p, "rollout", "maxSurge"), at(p, "rollout", "maxUnavailable")},
			"maxSurge (%v) and maxUnavailable (%v) both come to 0 for %d replicas: a rollout could never start",
			ro.MaxSurge, ro.MaxUnavailable, replicas)
	}
	deadline := at(p, "rollout", "progressDeadline")
	if ro.MinHealthyFor >= ro.ProgressDeadline {
		c.addFirst([][]string{at(p, "rollout", "minHealthyFor"), deadline},
			"minHealthyFor (%s) must be shorter than progressDeadline (%s)",
			r.Rollout.MinHealthyFor, r.Rollout.ProgressDeadline)
	}
	rolling := ro.Strategy == Rolling || (ro.Strategy == CanaryRun && ro.Canary != nil && ro.Canary.Then == Rolling)
	if rolling && ro.KeepPrevious > 0 {
		c.addFirst([][]string{at(p, "rollout", "keepPrevious"), at(p, "rollout", "strategy")},
			"keepPrevious (%s) with strategy %q: keeping the previous generation warm needs blue-green or canary with then: \"blue-green\" (rolling keeps at most replicas + maxSurge instances alive)",
			r.Rollout.KeepPrevious, ro.Strategy)
	}
	if !rolling && ro.VerifyFor > ro.KeepPrevious {
		c.addFirst([][]string{at(p, "rollout", "verifyFor"), at(p, "rollout", "keepPrevious")},
			"verifyFor (%s) is longer than keepPrevious (%s): the previous generation must stay warm while the new one is verified, to switch back to it",
			r.Rollout.VerifyFor, r.Rollout.KeepPrevious)
	}
	if s.Health.Grace >= ro.ProgressDeadline {
		c.addFirst([][]string{at(p, "health", "grace"), deadline},
			"health grace (%s) must be shorter than rollout.progressDeadline (%s)",
			r.Health.Grace, r.Rollout.ProgressDeadline)
	}

	switch ex := s.Expose; {
	case ex == nil:
	case ex.Listen != "" && ex.HAProxy != "":
		c.addFirst([][]string{at(p, "expose", "haproxy"), at(p, "expose", "listen")},
			"expose has both listen and haproxy: a service is exposed through exactly one front (listen for molt's router, haproxy for a HAProxy backend)")
	case ex.Listen == "" && ex.HAProxy == "":
		c.add(at(p, "expose"), "expose needs exactly one of listen (molt's router listens on host:port) and haproxy (backend: \"NAME\" of your haproxy.cfg)")
	case ex.HAProxy != "":
	default:
		if _, port, err := net.SplitHostPort(ex.Listen); err != nil {
			c.add(at(p, "expose", "listen"), "listen %q must be host:port: %v", ex.Listen, errText(err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			c.add(at(p, "expose", "listen"), "listen %q: port must be a number from 1 to 65535", ex.Listen)
		}
	}
}

// errText returns the message of a *net.AddrError without the address,
// which the caller already quotes.
func errText(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

// listenClashes reports two services that ask the router to listen on the
// same address, at the one written later in the snapshot. An empty or
// unspecified host (":8080", "0.0.0.0:8080") clashes with every host on
// that port.
func (c *checker) listenClashes(f *Fleet) {
	// The order costs a position lookup per exposed service, which
	// evaluates the user's values once more: only a clash pays for it.
	if mayClash(f) {
		c.listenClashesOrdered(f)
	}
}

// listenClashesOrdered is listenClashes without the quick test.
func (c *checker) listenClashesOrdered(f *Fleet) {
	type owner struct{ service, host, listen string }
	type exposed struct {
		name string
		pos  Issue // only the position fields
	}
	var order []exposed
	for name, s := range f.Services {
		if s.Expose != nil {
			var at Issue
			field := "listen"
			if s.Expose.HAProxy != "" {
				field = "haproxy"
			}
			setPos(&at, lookupPos(c.data, []string{"services", name, "expose", field}))
			order = append(order, exposed{name, at})
		}
	}
	slices.SortFunc(order, func(a, b exposed) int {
		return cmp.Or(compareIssues(a.pos, b.pos), cmp.Compare(a.name, b.name))
	})
	byPort := map[string][]owner{}
	backends := map[string]string{} // HAProxy backend -> service
	for _, e := range order {
		name, s := e.name, f.Services[e.name]
		if b := s.Expose.HAProxy; b != "" {
			if s.Expose.Listen != "" {
				continue // reported by serviceRules
			}
			if o, ok := backends[b]; ok {
				c.add([]string{"services", name, "expose", "haproxy", "backend"},
					"HAProxy backend %q is also used by service %q: molt keeps a backend's servers equal to one service's instances", b, o)
				continue
			}
			backends[b] = name
			continue
		}
		host, port, err := net.SplitHostPort(s.Expose.Listen)
		if err != nil {
			continue // reported by serviceRules
		}
		for _, o := range byPort[port] {
			if o.host != host && !wildcard(o.host) && !wildcard(host) {
				continue
			}
			p := []string{"services", name, "expose", "listen"}
			if o.listen == s.Expose.Listen {
				c.add(p, "listen address %q is also used by service %q", s.Expose.Listen, o.service)
			} else {
				c.add(p, "listen address %q overlaps %q of service %q", s.Expose.Listen, o.listen, o.service)
			}
			break
		}
		byPort[port] = append(byPort[port], owner{name, host, s.Expose.Listen})
	}
}

// mayClash reports whether listenClashes has anything to report, whatever
// the order of the services: two of them with the same HAProxy backend, or
// two listening on the same port of hosts that overlap.
func mayClash(f *Fleet) bool {
	byPort := map[string][]string{}
	backends := map[string]bool{}
	for _, s := range f.Services {
		switch ex := s.Expose; {
		case ex == nil:
		case ex.HAProxy != "":
			if ex.Listen != "" {
				continue
			}
			if backends[ex.HAProxy] {
				return true
			}
			backends[ex.HAProxy] = true
		default:
			host, port, err := net.SplitHostPort(ex.Listen)
			if err != nil {
				continue
			}
			for _, h := range byPort[port] {
				if h == host || wildcard(h) || wildcard(host) {
					return true
				}
			}
			byPort[port] = append(byPort[port], host)
		}
	}
	return false
}

func wildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
