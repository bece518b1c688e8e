package targets

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The environment every instance gets, whatever its target, on top of its
// service's env and secretEnv (which it overrides):
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

// SecretValues are the values of a service's secretEnv, by variable name.
// They exist only in memory, on their way to an instance's environment:
// printed, logged or encoded they show the names and never a value.
type SecretValues map[string]string

// String lists the names: "secrets [API_KEY DB_PASSWORD]".
func (v SecretValues) String() string {
	return "secrets " + fmt.Sprint(slices.Sorted(maps.Keys(v)))
}

// GoString is String, so that %#v shows no value either.
func (v SecretValues) GoString() string { return v.String() }

// LogValue logs the names only.
func (v SecretValues) LogValue() slog.Value {
	return slog.AnyValue(slices.Sorted(maps.Keys(v)))
}

// MarshalJSON encodes the names only.
func (v SecretValues) MarshalJSON() ([]byte, error) {
	return json.Marshal(slices.Sorted(maps.Keys(v)))
}

// ServiceEnv returns the environment spec asks for before molt's own
// variables are set over it (see InstanceEnv): the service's env and the
// values of its secretEnv.
func ServiceEnv(spec Spec) map[string]string {
	env := make(map[string]string, len(spec.Service.Env)+len(spec.SecretEnv))
	maps.Copy(env, spec.Service.Env)
	maps.Copy(env, spec.SecretEnv)
	return env
}

// CheckEnv reports, wrapping ErrInvalidSpec, what makes the environment of
// spec impossible: a variable name that is empty or holds '=' or a NUL, a
// value that holds a NUL, a secret of the service's secretEnv without a
// value in spec.SecretEnv, or a value for a secret it does not declare.
// Errors name variables, never a value.
func CheckEnv(spec Spec) error {
	for k, v := range spec.Service.Env {
		if !validVar(k) || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: invalid env variable %q", ErrInvalidSpec, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Service.SecretEnv)) {
		v, ok := spec.SecretEnv[k]
		switch {
		case !validVar(k):
			return fmt.Errorf("%w: invalid secretEnv variable %q", ErrInvalidSpec, k)
		case !ok:
			return fmt.Errorf("%w: secret %s has no value (the executor reads secrets before Provision)", ErrInvalidSpec, k)
		case strings.ContainsRune(v, 0):
			return fmt.Errorf("%w: secret %s holds a NUL byte", ErrInvalidSpec, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.SecretEnv)) {
		if _, ok := spec.Service.SecretEnv[k]; !ok {
			return fmt.Errorf("%w: a value for secret %s, which the service does not declare", ErrInvalidSpec, k)
		}
	}
	return nil
}

func validVar(k string) bool { return k != "" && !strings.ContainsAny(k, "=\x00") }
