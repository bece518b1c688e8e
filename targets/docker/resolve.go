package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// ResolvedImage is the key of the image content id in what Resolve returns
// and in targets.Spec.Resolved.
const ResolvedImage = "image"

// Resolve returns {"image": "sha256:..."}: the content id that the
// service's image reference names on its engines. An engine that lacks the
// image is asked to pull it first. The id must be the same on every engine
// of the service that answers; engines that do not answer are skipped (and
// logged), so that the service can carry on with the others.
//
// It fails when the image is missing and cannot be pulled ("image web:v2 is
// not on engine default and cannot be pulled: ..."), when engines disagree,
// when no engine of the service answers, and with an error wrapping
// targets.ErrInvalidSpec for a service that is not a docker service or
// that names an engine that is not configured.
func (t *Target) Resolve(ctx context.Context, svc *schema.Service) (map[string]string, error) {
	id, err := t.resolve(ctx, svc)
	if err != nil {
		return nil, err
	}
	return map[string]string{ResolvedImage: id}, nil
}

func (t *Target) resolve(ctx context.Context, svc *schema.Service) (string, error) {
	if svc == nil || svc.Docker == nil || svc.Docker.Image == "" {
		return "", fmt.Errorf("%w: not a docker service", targets.ErrInvalidSpec)
	}
	engines, err := t.enginesOf(svc)
	if err != nil {
		return "", err
	}
	ref := svc.Docker.Image
	var (
		id, idOn string
		down     []error
	)
	for _, e := range engines {
		got, _, err := t.image(ctx, e, ref, true)
		if unreachable(ctx, err) {
			t.log.Warn("docker engine does not answer; resolving without it", "engine", e.Name, "image", ref, "error", err)
			down = append(down, err)
			continue
		}
		if err != nil {
			return "", err
		}
		if id != "" && got != id {
			return "", fmt.Errorf("image %s differs between engines: %s on %s, %s on %s", ref, id, idOn, got, e.Name)
		}
		id, idOn = got, e.Name
	}
	if id == "" {
		return "", fmt.Errorf("resolve image %s: no engine of service %s answers: %w", ref, svc.Name, errors.Join(down...))
	}
	return id, nil
}

// image returns the content id and config of image ref on engine e. When
// the engine does not have it and pull is set, the engine is asked to pull
// it first.
func (t *Target) image(ctx context.Context, e *engine, ref string, pull bool) (string, *imageConfig, error) {
	id, cfg, err := t.inspectImage(ctx, e, ref)
	if err == nil || !notFound(err) {
		return id, cfg, err
	}
	if !pull {
		return "", nil, fmt.Errorf("image %s is not on engine %s", ref, e.Name)
	}
	if perr := t.pull(ctx, e, ref); perr != nil {
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, fmt.Errorf("image %s is not on engine %s and cannot be pulled: %w", ref, e.Name, perr)
	}
	id, cfg, err = t.inspectImage(ctx, e, ref)
	if notFound(err) {
		return "", nil, fmt.Errorf("image %s is not on engine %s, even after a pull", ref, e.Name)
	}
	return id, cfg, err
}

func (t *Target) inspectImage(ctx context.Context, e *engine, ref string) (string, *imageConfig, error) {
	sctx, cancel := t.short(ctx)
	defer cancel()
	res, err := e.api.ImageInspect(sctx, ref)
	if err != nil {
		if !notFound(err) && !unreachable(ctx, err) {
			err = fmt.Errorf("inspect image %s on engine %s: %w", ref, e.Name, err)
		}
		return "", nil, err
	}
	if !strings.HasPrefix(res.ID, "sha256:") {
		return "", nil, fmt.Errorf("image %s on engine %s has an unexpected id %q", ref, e.Name, res.ID)
	}
	return res.ID, imageConfigOf(res.Config), nil
}

// pull pulls ref onto engine e and waits until the engine is done.
func (t *Target) pull(ctx context.Context, e *engine, ref string) error {
	t.log.Info("pulling image", "engine", e.Name, "image", ref)
	resp, err := e.api.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}
