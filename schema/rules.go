package schema

import (
	"net"
	"strconv"

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
	ports := []struct {
		path []string
		name string
	}{}
	addPort := func(name string, elems ...string) {
		ports = append(ports, struct {
			path []string
			name string
		}{at(p, elems...), name})
	}
	if h := r.Health; h.HTTP != nil {
		addPort(h.HTTP.Port, "health", "http", "port")
	} else if h.TCP != nil {
		addPort(h.TCP.Port, "health", "tcp", "port")
	}
	if h := r.Liveness; h != nil && h.HTTP != nil {
		addPort(h.HTTP.Port, "liveness", "http", "port")
	} else if h != nil && h.TCP != nil {
		addPort(h.TCP.Port, "liveness", "tcp", "port")
	}
	if r.Expose != nil {
		addPort(r.Expose.Port, "expose", "port")
	}
	for _, ref := range ports {
		if _, ok := s.Ports[ref.name]; !ok {
			c.add(ref.path, "port %q is not declared in ports", ref.name)
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
	if s.Health.Grace >= ro.ProgressDeadline {
		c.addFirst([][]string{at(p, "health", "grace"), deadline},
			"health grace (%s) must be shorter than rollout.progressDeadline (%s)",
			r.Health.Grace, r.Rollout.ProgressDeadline)
	}

	if s.Expose != nil {
		if _, port, err := net.SplitHostPort(s.Expose.Listen); err != nil {
			c.add(at(p, "expose", "listen"), "listen %q must be host:port: %v", s.Expose.Listen, errText(err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			c.add(at(p, "expose", "listen"), "listen %q: port must be a number from 1 to 65535", s.Expose.Listen)
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
// same address, at the later one in order (the order of the source). An
// empty or unspecified host (":8080", "0.0.0.0:8080") clashes with every
// host on that port.
func (c *checker) listenClashes(f *Fleet, order []string) {
	type owner struct{ service, host, listen string }
	byPort := map[string][]owner{}
	for _, name := range order {
		s := f.Services[name]
		if s == nil || s.Expose == nil {
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

func wildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
