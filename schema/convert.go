package schema

import (
	"strconv"
	"time"
)

// service converts a service that CUE found valid and checks the rules
// that CUE cannot express.
func (c *checker) service(name string, r rawService) *Service {
	p := []string{"services", name}
	s := &Service{
		Name:      name,
		Replicas:  r.Replicas,
		Env:       nonNil(r.Env),
		Ports:     nonNil(r.Ports),
		StopGrace: c.duration(at(p, "stopGrace"), r.StopGrace),
	}
	if len(r.SecretEnv) > 0 {
		s.SecretEnv = r.SecretEnv
	}
	if r.Process != nil {
		s.Process = &Process{Command: r.Process.Command, SHA256: r.Process.SHA256}
	}
	if d := r.Docker; d != nil {
		s.Docker = &Docker{
			Image:          d.Image,
			Command:        d.Command,
			Entrypoint:     d.Entrypoint,
			User:           d.User,
			Memory:         d.Memory,
			CPUs:           d.CPUs,
			ReadOnlyRootfs: d.ReadOnlyRootfs,
			Tmpfs:          d.Tmpfs,
			Networks:       d.Networks,
			Engines:        d.Engines,
		}
	}
	s.Health = c.health(at(p, "health"), r.Health)
	if s.Health.HTTP == nil && s.Health.TCP == nil {
		if _, ok := s.Ports["http"]; ok {
			s.Health.HTTP = &HTTPCheck{Path: "/healthz", Port: "http", Status: 200}
		}
	}
	if r.Liveness != nil {
		h := c.health(at(p, "liveness"), *r.Liveness)
		s.Liveness = &h
	}
	s.Rollout = c.rollout(at(p, "rollout"), r.Rollout)
	if r.Expose != nil {
		s.Expose = &Expose{Listen: r.Expose.Listen, Port: r.Expose.Port}
		if r.Expose.HAProxy != nil {
			s.Expose.HAProxy = r.Expose.HAProxy.Backend
		}
	}
	if r.Recycle != nil {
		s.Recycle = &Recycle{
			MaxAge: c.positive(at(p, "recycle", "maxAge"), r.Recycle.MaxAge),
			Window: r.Recycle.Window,
		}
		if r.Recycle.Window != "" {
			c.cron(at(p, "recycle", "window"), r.Recycle.Window)
		}
	}
	s.DeployWindows = c.windows(at(p, "deployWindows"), r.DeployWindows)
	c.serviceRules(p, s, r)
	return s
}

func (c *checker) health(p []string, r rawHealth) Health {
	h := Health{
		Interval:           c.positive(at(p, "interval"), r.Interval),
		Timeout:            c.positive(at(p, "timeout"), r.Timeout),
		HealthyThreshold:   r.HealthyThreshold,
		UnhealthyThreshold: r.UnhealthyThreshold,
		Grace:              c.duration(at(p, "grace"), r.Grace),
	}
	if r.HTTP != nil {
		h.HTTP = &HTTPCheck{Path: r.HTTP.Path, Port: r.HTTP.Port, Status: r.HTTP.Status}
	}
	if r.TCP != nil {
		h.TCP = &TCPCheck{Port: r.TCP.Port}
	}
	return h
}

func (c *checker) rollout(p []string, r rawRollout) Rollout {
	ro := Rollout{
		Strategy:         Strategy(r.Strategy),
		MaxSurge:         c.intOrPercent(at(p, "maxSurge"), r.MaxSurge),
		MaxUnavailable:   c.intOrPercent(at(p, "maxUnavailable"), r.MaxUnavailable),
		MinHealthyFor:    c.duration(at(p, "minHealthyFor"), r.MinHealthyFor),
		ProgressDeadline: c.duration(at(p, "progressDeadline"), r.ProgressDeadline),
		KeepPrevious:     c.duration(at(p, "keepPrevious"), r.KeepPrevious),
		VerifyFor:        c.duration(at(p, "verifyFor"), r.VerifyFor),
		MaxErrorRate:     r.MaxErrorRate,
		Pause:            r.Pause,
	}
	if k := r.Canary; k != nil {
		ro.Canary = &Canary{
			Count:        k.Count,
			Weight:       k.Weight,
			Duration:     c.duration(at(p, "canary", "duration"), k.Duration),
			MaxErrorRate: k.MaxErrorRate,
			Then:         Strategy(k.Then),

			MinRequests:           k.MinRequests,
			MaxLatencyRatio:       k.MaxLatencyRatio,
			OnInsufficientTraffic: k.OnInsufficientTraffic,
		}
	}
	return ro
}

// windows converts deploy windows and checks their schedules.
func (c *checker) windows(p []string, raw []rawWindow) []Window {
	var ws []Window
	for i, r := range raw {
		wp := at(p, strconv.Itoa(i))
		c.cron(at(wp, "schedule"), r.Schedule)
		ws = append(ws, Window{
			Kind:     r.Kind,
			Schedule: r.Schedule,
			Duration: c.positive(at(wp, "duration"), r.Duration),
		})
	}
	return ws
}

// duration parses a duration that the schema has already matched; Go's
// parser also catches overflow.
func (c *checker) duration(p []string, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		c.add(p, "invalid duration %q", s)
		return 0
	}
	return d
}

// positive parses a duration that must be greater than zero.
func (c *checker) positive(p []string, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		c.add(p, "%q: must be a duration greater than 0", s)
		return 0
	}
	return d
}

func (c *checker) intOrPercent(p []string, r rawIntOrPercent) IntOrPercent {
	v, err := ParseIntOrPercent(string(r))
	if err != nil {
		c.add(p, "%v", err)
	}
	return v
}

func nonNil[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return M{}
	}
	return m
}
