package targets

import (
	"context"
	"fmt"
	"strings"

	"github.com/molt-dev/molt/schema"
)

// ByKind sends each service to the target of its kind: docker services to
// Docker, process services to Process. Either may be nil when that kind is
// not available. Docker instance ids contain a "/" (engine/container) and
// process ids never do, which is how Retire finds the owner.
type ByKind struct {
	Process Target
	Docker  Target
}

var (
	_ Target         = ByKind{}
	_ Resolver       = ByKind{}
	_ DriftInspector = ByKind{}
)

func (k ByKind) pick(docker bool) (Target, error) {
	if docker {
		if k.Docker == nil {
			return nil, fmt.Errorf("%w: no docker engine configured", ErrInvalidSpec)
		}
		return k.Docker, nil
	}
	if k.Process == nil {
		return nil, fmt.Errorf("%w: no process target configured", ErrInvalidSpec)
	}
	return k.Process, nil
}

// List returns the instances of both targets.
func (k ByKind) List(ctx context.Context) ([]Instance, error) {
	var all []Instance
	for _, t := range []Target{k.Process, k.Docker} {
		if t == nil {
			continue
		}
		insts, err := t.List(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, insts...)
	}
	return all, nil
}

// Provision provisions on the target of the service's kind.
func (k ByKind) Provision(ctx context.Context, spec Spec) (Instance, error) {
	t, err := k.pick(spec.Service.Docker != nil)
	if err != nil {
		return Instance{}, err
	}
	return t.Provision(ctx, spec)
}

// Retire retires on the target that owns the id.
func (k ByKind) Retire(ctx context.Context, id string) error {
	t, err := k.pick(strings.Contains(id, "/"))
	if err != nil {
		return err
	}
	return t.Retire(ctx, id)
}

// Resolve asks the service's target, when it resolves anything.
func (k ByKind) Resolve(ctx context.Context, svc *schema.Service) (map[string]string, error) {
	t, err := k.pick(svc.Docker != nil)
	if err != nil {
		return nil, err
	}
	if r, ok := t.(Resolver); ok {
		return r.Resolve(ctx, svc)
	}
	return nil, nil
}

// Drift asks the instance's target, when it inspects drift.
func (k ByKind) Drift(ctx context.Context, inst Instance) (string, error) {
	t, err := k.pick(strings.Contains(inst.ID, "/"))
	if err != nil {
		return "", err
	}
	if d, ok := t.(DriftInspector); ok {
		return d.Drift(ctx, inst)
	}
	return "", nil
}

// Engines returns the docker target's engines, when it reports them (see
// Engine); the process target runs everything in one place.
func (k ByKind) Engines() []Engine {
	if r, ok := k.Docker.(interface{ Engines() []Engine }); ok {
		return r.Engines()
	}
	return nil
}
