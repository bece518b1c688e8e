package process

import (
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"time"

	"github.com/molt-dev/molt/targets"
)

// portQuarantine is how long a port handed to one instance is not handed to
// another, covering the moment between assignment and the instance
// binding it.
const portQuarantine = time.Minute

// inherited are the only variables of molt's environment an instance sees.
var inherited = []string{"PATH", "HOME"}

// instanceEnv is the whole environment of instance id, sorted: PATH and
// HOME from molt's environment, then the service's env and the values of
// its secretEnv, then the target's own variables (its labels, see
// "Labels in the environment"), which win over all.
func (t *Target) instanceEnv(id, digest string, spec targets.Spec, ports map[string]int) []string {
	env := make(map[string]string)
	for _, k := range inherited {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	maps.Copy(env, targets.ServiceEnv(spec))
	targets.InstanceEnv(env, ports, spec.Labels)
	t.setLabels(env, id, digest, spec, ports)
	return targets.EnvList(env)
}

// assignPorts picks a free port on the Target's host for every name in
// ports (their numbers are ignored). A port is free when the kernel hands
// it out for a listen on port 0; one handed to another instance in the
// last portQuarantine is skipped, so concurrent provisions get distinct
// ports. Another program may still take a port before the instance binds
// it: the instance then fails its health check and is replaced.
func (t *Target) assignPorts(ports map[string]int) (map[string]int, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for p, at := range t.recent {
		if now.Sub(at) > portQuarantine {
			delete(t.recent, p)
		}
	}
	// Listeners stay open until every name has its port, so that the
	// kernel does not hand one port out twice.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make(map[string]int, len(ports))
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		for attempt := 0; ; attempt++ {
			if attempt == 100 {
				return nil, fmt.Errorf("assign port %q: no free port on %s", name, t.host)
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(t.host, "0"))
			if err != nil {
				return nil, fmt.Errorf("assign port %q: %w", name, err)
			}
			lns = append(lns, ln)
			p := ln.Addr().(*net.TCPAddr).Port
			if _, taken := t.recent[p]; !taken {
				out[name] = p
				break
			}
		}
	}
	for _, p := range out {
		t.recent[p] = now
	}
	return out, nil
}
