package docker

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/molt-dev/molt/targets"
)

// defaultNetwork is the network of a service that names none.
const defaultNetwork = "bridge"

// checkSpec reports what makes spec impossible for this target, wrapping
// targets.ErrInvalidSpec.
func checkSpec(spec targets.Spec) error {
	svc := spec.Service
	l := spec.Labels
	switch {
	case svc == nil:
		return fmt.Errorf("%w: no service", targets.ErrInvalidSpec)
	case svc.Docker == nil:
		return fmt.Errorf("%w: service %q is not a docker service", targets.ErrInvalidSpec, svc.Name)
	case svc.Docker.Image == "":
		return fmt.Errorf("%w: service %q has no image", targets.ErrInvalidSpec, svc.Name)
	case l.Fleet == "" || l.Service == "" || l.SpecHash == "":
		return fmt.Errorf("%w: fleet, service and spec hash labels are required", targets.ErrInvalidSpec)
	case svc.StopGrace < 0:
		return fmt.Errorf("%w: negative stop grace", targets.ErrInvalidSpec)
	case svc.Docker.CPUs < 0:
		return fmt.Errorf("%w: negative cpus", targets.ErrInvalidSpec)
	}
	if err := targets.CheckEnv(spec); err != nil {
		return err
	}
	seen := make(map[string]string, len(svc.Ports))
	for name, port := range svc.Ports {
		if port < 1 || port > 65535 {
			return fmt.Errorf("%w: port %q: a docker service needs the container port (1-65535), not %d", targets.ErrInvalidSpec, name, port)
		}
		v := targets.PortVar(name)
		if other, ok := seen[v]; ok || name == "" {
			return fmt.Errorf("%w: port names %q and %q both map to %s", targets.ErrInvalidSpec, other, name, v)
		}
		seen[v] = name
	}
	if _, err := parseMemory(svc.Docker.Memory); err != nil {
		return fmt.Errorf("%w: %w", targets.ErrInvalidSpec, err)
	}
	for _, m := range svc.Docker.Tmpfs {
		if p, _, _ := strings.Cut(m, ":"); !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%w: tmpfs %q: not an absolute path", targets.ErrInvalidSpec, m)
		}
	}
	return nil
}

// request is what ContainerCreate gets, plus the networks to connect.
type request struct {
	config   *container.Config
	host     *container.HostConfig
	networks []string // all of them; the first is the network mode
}

// newRequest builds the container of spec on engine e, from imageID.
// Labels are left to the caller, which needs the request to hash it.
func newRequest(spec targets.Spec, e *engine, imageID string) request {
	svc := spec.Service
	d := svc.Docker
	networks := slices.Clone(d.Networks)
	if len(networks) == 0 {
		networks = []string{defaultNetwork}
	}
	ports := make(network.PortSet, len(svc.Ports))
	bindings := make(network.PortMap, len(svc.Ports))
	hostIP := netip.MustParseAddr(e.hostIP()) // checked by Validate
	for _, n := range svc.Ports {
		p, _ := network.PortFrom(uint16(n), network.TCP)
		ports[p] = struct{}{}
		bindings[p] = []network.PortBinding{{HostIP: hostIP}} // the engine picks the host port
	}
	var tmpfs map[string]string
	for _, m := range d.Tmpfs {
		if tmpfs == nil {
			tmpfs = make(map[string]string)
		}
		path, opts, _ := strings.Cut(m, ":")
		tmpfs[path] = opts
	}
	memory, _ := parseMemory(d.Memory) // checked by checkSpec
	grace := stopSeconds(svc.StopGrace.Seconds())
	return request{
		config: &container.Config{
			Image:        imageID,
			User:         d.User,
			Env:          containerEnv(e.Name, spec),
			Cmd:          nilIfEmpty(d.Command),
			Entrypoint:   nilIfEmpty(d.Entrypoint),
			ExposedPorts: ports,
			StopTimeout:  &grace,
		},
		host: &container.HostConfig{
			NetworkMode:    container.NetworkMode(networks[0]),
			PortBindings:   bindings,
			RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
			ReadonlyRootfs: d.ReadOnlyRootfs,
			Tmpfs:          tmpfs,
			Resources: container.Resources{
				Memory:   memory,
				NanoCPUs: int64(d.CPUs * 1e9),
			},
		},
		networks: networks,
	}
}

// stopSeconds rounds a stop grace up to whole seconds, as the engine
// counts them.
func stopSeconds(s float64) int {
	n := int(s)
	if float64(n) < s {
		n++
	}
	return n
}

// containerEnv is the environment of a container of spec on engine: the
// service's env and the values of its secretEnv, then the target's own variables, which win. The image's
// env applies beneath it (the engine merges them).
func containerEnv(engine string, spec targets.Spec) []string {
	svc := spec.Service
	env := targets.ServiceEnv(spec)
	targets.InstanceEnv(env, svc.Ports, spec.Labels)
	env["MOLT_ENGINE"] = engine
	return targets.EnvList(env)
}

// parseMemory parses a Docker memory limit such as "512m" or "1g" (binary
// units, as docker run --memory) into bytes; "" is no limit.
func parseMemory(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	num := s
	switch s[len(s)-1] {
	case 'b', 'B':
		num = s[:len(s)-1]
	case 'k', 'K':
		mult, num = 1<<10, s[:len(s)-1]
	case 'm', 'M':
		mult, num = 1<<20, s[:len(s)-1]
	case 'g', 'G':
		mult, num = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("memory %q: not a size such as 512m or 1g", s)
	}
	return n * mult, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
