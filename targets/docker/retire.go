package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ErrNotMolt is returned (wrapped) by Retire and Drift for a container that
// does not carry molt's labels: molt refuses to touch it.
var ErrNotMolt = errors.New("not a molt container")

// Retire stops the container of instance id (SIGTERM, or the image's stop
// signal, then SIGKILL after the service's stop grace, as recorded in
// LabelStopGrace) and removes it with its anonymous volumes. With a log
// directory (SetLogDir) it first copies the last of the container's log
// there (see Logs).
//
// An id without a "/" names no container of this target, and a container
// that is already gone is fine: both return nil. A container without
// molt's labels is refused with an error wrapping ErrNotMolt, and left
// untouched. Cancelling ctx abandons the wait; the engine still stops the
// container if the stop request reached it.
func (t *Target) Retire(ctx context.Context, id string) error {
	if err := t.retire(ctx, id); err != nil {
		return fmt.Errorf("retire %s: %w", id, err)
	}
	return nil
}

func (t *Target) retire(ctx context.Context, id string) error {
	e, c, err := t.lookup(ctx, id)
	if err != nil || e == nil {
		return err
	}
	grace := stopSeconds(stopGraceOf(c.Config.Labels).Seconds())
	t.expectExit(id) // not a death to report (exits.go)
	if c.State != nil && (c.State.Running || c.State.Paused || c.State.Restarting) {
		_, err := e.api.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &grace})
		if err != nil && !notFound(err) {
			return fmt.Errorf("stop container on engine %s: %w", e.Name, err)
		}
	}
	if l, ok := labelsOf(c.Config.Labels); ok {
		t.keepLog(ctx, e, id, c.ID, l) // (with SetLogDir only)
	}
	_, err = e.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !notFound(err) && !removing(err) {
		return fmt.Errorf("remove container on engine %s: %w", e.Name, err)
	}
	t.log.Info("retired instance", "instance", id, "service", c.Config.Labels[LabelService])
	return nil
}

// lookup inspects the container of instance id. It returns a nil engine
// and no error when id cannot name a container of this target or the
// container is gone, and an error wrapping ErrNotMolt when the container
// is not molt's.
func (t *Target) lookup(ctx context.Context, id string) (*engine, container.InspectResponse, error) {
	name, cid, ok, err := parseID(id)
	if !ok {
		return nil, container.InspectResponse{}, err
	}
	e, known := t.byName[name]
	if !known {
		return nil, container.InspectResponse{}, fmt.Errorf("engine %q is not configured", name)
	}
	sctx, cancel := t.short(ctx)
	defer cancel()
	res, err := e.api.ContainerInspect(sctx, cid, client.ContainerInspectOptions{})
	if notFound(err) {
		return nil, container.InspectResponse{}, nil
	}
	if err != nil {
		return nil, container.InspectResponse{}, fmt.Errorf("inspect container on engine %s: %w", e.Name, err)
	}
	c := res.Container
	// The engine also resolves names and id prefixes: make sure it found
	// the container the id names.
	if !strings.HasPrefix(c.ID, cid) {
		return nil, container.InspectResponse{}, nil
	}
	if c.Config == nil {
		return nil, container.InspectResponse{}, fmt.Errorf("container %s on engine %s: %w", cid, e.Name, ErrNotMolt)
	}
	if _, ok := labelsOf(c.Config.Labels); !ok {
		return nil, container.InspectResponse{}, fmt.Errorf("container %s on engine %s: %w: refusing to touch it", cid, e.Name, ErrNotMolt)
	}
	return e, c, nil
}

// removing reports whether err says that a removal of the container is
// already in progress (a concurrent Retire).
func removing(err error) bool {
	return strings.Contains(err.Error(), "already in progress")
}
