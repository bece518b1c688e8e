package targets

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The environment every instance gets, whatever its target, on top of its
// service's env (which it overrides):
//
//   - PORT_<NAME> for each named port, the name upper-cased with every
//     character other than a letter or a digit as '_';
//   - PORT, the port named "http" if there is one, else the first name in
//     sorted order;
//   - MOLT_FLEET, MOLT_SERVICE and MOLT_REVISION from the labels.
//
// The port numbers are those the instance must listen on: free loopback
// ports for a process, the container ports for a container.

// PortVar is the variable that carries the port named name.
func PortVar(name string) string {
	return "PORT_" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, name)
}

// PrimaryPort is the name of the port that PORT carries ("" without ports).
func PrimaryPort[V any](ports map[string]V) string {
	if _, ok := ports["http"]; ok {
		return "http"
	}
	if len(ports) == 0 {
		return ""
	}
	return slices.Min(slices.Collect(maps.Keys(ports)))
}

// InstanceEnv sets molt's variables in env (see above): the ports the
// instance listens on and its labels.
func InstanceEnv(env map[string]string, ports map[string]int, l Labels) {
	for name, port := range ports {
		env[PortVar(name)] = strconv.Itoa(port)
	}
	if name := PrimaryPort(ports); name != "" {
		env["PORT"] = strconv.Itoa(ports[name])
	}
	env["MOLT_FLEET"] = l.Fleet
	env["MOLT_SERVICE"] = l.Service
	env["MOLT_REVISION"] = l.Revision
}

// EnvList turns env into NAME=value strings, sorted by name.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
