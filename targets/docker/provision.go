package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets"
)

// createTimeout bounds the create and the start of a container: longer
// than the short calls (a create may wait for the engine's own work), but
// never unbounded.
func (t *Target) createTimeout() time.Duration { return 6 * t.timeout }

// cleanupTimeout bounds the removal of a container that a failed
// Provision leaves, which runs even when the caller's context is done.
const cleanupTimeout = 30 * time.Second

// Provision creates and starts one container for spec and returns once it
// has started (not once it listens or is healthy).
//
// The container is made from spec.Resolved["image"], the content id that
// Resolve returned; when spec.Resolved is nil, Provision resolves the
// image itself, the same way. It goes to the engine the plan placed it on
// (spec.Engine), or else to the engine of the service that has the image
// and the fewest running instances of the service (counting provisions in
// flight); engines that do not answer, or whose capacity (Engine.Max) is
// full, are skipped (a full engine is a transient error). A spec
// the target cannot run returns an error wrapping targets.ErrInvalidSpec
// before anything is created.
//
// The values of the service's secretEnv (spec.SecretEnv) go into the
// container's environment, where the engine keeps them (docker inspect
// shows them: access to the engine is access to them); no label holds one,
// nor a hash of one (LabelConfig leaves them out, LabelSecretEnv names
// them), and nothing logs them.
//
// A cancelled ctx stops Provision before the container starts; once it has
// started, the instance is complete and ctx no longer matters. On error
// nothing is left behind: a container created and not started is removed.
func (t *Target) Provision(ctx context.Context, spec targets.Spec) (targets.Instance, error) {
	inst, err := t.provision(ctx, spec)
	if err != nil {
		return targets.Instance{}, fmt.Errorf("provision %s: %w", spec.Labels.Service, err)
	}
	return inst, nil
}

func (t *Target) provision(ctx context.Context, spec targets.Spec) (targets.Instance, error) {
	if err := checkSpec(spec); err != nil {
		return targets.Instance{}, err
	}
	if err := ctx.Err(); err != nil {
		return targets.Instance{}, err
	}
	engines, err := t.enginesOf(spec.Service)
	if err != nil {
		return targets.Instance{}, err
	}
	imageID := spec.Resolved[ResolvedImage]
	switch {
	case spec.Resolved == nil:
		if imageID, err = t.resolve(ctx, spec.Service); err != nil {
			return targets.Instance{}, err
		}
	case !validImageID(imageID):
		return targets.Instance{}, fmt.Errorf("%w: resolved image %q is not a content id", targets.ErrInvalidSpec, imageID)
	}
	e, img, release, err := t.place(ctx, spec, engines, imageID)
	if err != nil {
		return targets.Instance{}, err
	}
	defer release()

	req := newRequest(spec, e, imageID)
	if err := t.networkNames(ctx, e, &req); err != nil {
		return targets.Instance{}, err
	}
	config := fingerprint(withoutSecrets(req.config, secretNames(spec)), req.host, req.networks, img)
	req.config.Labels = containerLabels(spec, e.Name, imageID, config)
	name, err := containerName(spec.Labels)
	if err != nil {
		return targets.Instance{}, err
	}
	// An engine that takes the create and never answers must not hold the
	// rollout: the call is bounded, and its deadline is a transient error.
	cctx, cancel := context.WithTimeout(ctx, t.createTimeout())
	defer cancel()
	created, err := e.api.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name: name, Config: req.config, HostConfig: req.host,
	})
	if err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("engine did not answer within %s: %w", t.createTimeout(), err)
		}
		if cctx.Err() != nil {
			// The engine may have created it before the cancellation
			// reached it: remove it by its (random, molt-made) name.
			t.discard(ctx, e, name)
		}
		return targets.Instance{}, fmt.Errorf("create container on engine %s: %w", e.Name, err)
	}
	id := instanceID(e.Name, created.ID)
	sctx, scancel := context.WithTimeout(ctx, t.createTimeout())
	defer scancel()
	info, err := t.start(sctx, e, created.ID, req.networks[1:])
	if err != nil {
		t.discard(ctx, e, created.ID)
		return targets.Instance{}, err
	}
	inst := t.instance(e, info.ID, req.config.Labels, info.State != nil && info.State.Running,
		publishedPorts(info), fmt.Sprintf("engine %s, container %s", e.Name, name))
	t.log.Info("provisioned instance", "instance", id, "service", spec.Labels.Service,
		"image", spec.Service.Docker.Image, "imageID", imageID, "endpoints", inst.Endpoints)
	return inst, nil
}

// start connects container id to the extra networks, starts it and
// inspects it. The cancellation of ctx is honoured up to the start.
func (t *Target) start(ctx context.Context, e *engine, id string, networks []string) (container.InspectResponse, error) {
	for _, n := range networks {
		if _, err := e.api.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: id}); err != nil {
			return container.InspectResponse{}, fmt.Errorf("connect to network %s on engine %s: %w", n, e.Name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return container.InspectResponse{}, err
	}
	if _, err := e.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return container.InspectResponse{}, fmt.Errorf("start container on engine %s: %w", e.Name, err)
	}
	// Started: from here on the instance is complete, whatever ctx says.
	ictx, cancel := t.short(context.WithoutCancel(ctx))
	defer cancel()
	res, err := e.api.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("inspect started container on engine %s: %w", e.Name, err)
	}
	return res.Container, nil
}

// networkNames replaces the networks of req, which a service may name by
// id, with their names, as an inspect of the container will name them
// (the configuration hash depends on it). It fails when a network does not
// exist on engine e.
func (t *Target) networkNames(ctx context.Context, e *engine, req *request) error {
	for i, n := range req.networks {
		switch n {
		case "default":
			req.networks[i] = defaultNetwork
			continue
		case defaultNetwork, "host", "none":
			continue
		}
		sctx, cancel := t.short(ctx)
		res, err := e.api.NetworkInspect(sctx, n, client.NetworkInspectOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("network %s on engine %s: %w", n, e.Name, err)
		}
		req.networks[i] = res.Network.Name
	}
	req.host.NetworkMode = container.NetworkMode(req.networks[0])
	return nil
}

// discard removes a container that a failed Provision created, named by
// id or by the name Provision gave it.
func (t *Target) discard(ctx context.Context, e *engine, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := e.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !notFound(err) {
		t.log.Error("cannot remove the container of a failed provision", "engine", e.Name, "container", id, "error", err)
	}
}

// place picks the engine for a new instance of spec among engines: the
// one the plan placed it on (spec.Engine), else one that answers and has
// image imageID, with the fewest running instances of the service plus
// provisions in flight, the first in order on a tie. An engine with a
// capacity (Engine.Max) that its running molt containers and provisions
// in flight fill is skipped. It counts the new instance as in flight
// until release is called, and returns the image's config.
func (t *Target) place(ctx context.Context, spec targets.Spec, engines []*engine, imageID string) (*engine, *imageConfig, func(), error) {
	type candidate struct {
		e       *engine
		img     *imageConfig
		running int
		all     int // molt containers running on e, of every fleet
	}
	if spec.Engine != "" {
		i := slices.IndexFunc(engines, func(e *engine) bool { return e.Name == spec.Engine })
		if i < 0 {
			return nil, nil, nil, fmt.Errorf("%w: service %s was placed on engine %q, which is not one of its engines", targets.ErrInvalidSpec, spec.Labels.Service, spec.Engine)
		}
		engines = engines[i : i+1]
	}
	var (
		cands []candidate
		errs  []error
	)
	for _, e := range engines {
		_, img, err := t.image(ctx, e, imageID, false)
		var all, n int
		if err == nil {
			all, err = t.molt(ctx, e)
		}
		if err == nil {
			n, err = t.running(ctx, e, spec.Labels)
			cands = append(cands, candidate{e, img, n, all})
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, nil, ctx.Err()
			}
			t.log.Warn("docker engine skipped for a new instance", "engine", e.Name, "service", spec.Labels.Service, "error", err)
			errs = append(errs, err)
		}
	}
	if len(cands) == 0 {
		return nil, nil, nil, fmt.Errorf("no engine can run image %s (%s): %w", spec.Service.Docker.Image, imageID, errors.Join(errs...))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	best, bestLoad := -1, 0
	var full []string
	for i, c := range cands {
		if c.e.Max > 0 {
			if n := c.all + t.pendingOn(c.e.Name); n >= c.e.Max {
				full = append(full, fmt.Sprintf("engine %s is full (%d molt instances running or starting, max=%d)", c.e.Name, n, c.e.Max))
				continue
			}
		}
		load := c.running + t.pending[placement{c.e.Name, spec.Labels.Fleet, spec.Labels.Service}]
		if best < 0 || load < bestLoad {
			best, bestLoad = i, load
		}
	}
	if best < 0 {
		return nil, nil, nil, fmt.Errorf("no engine has room for a new instance: %s", strings.Join(full, "; "))
	}
	c := cands[best]
	key := placement{c.e.Name, spec.Labels.Fleet, spec.Labels.Service}
	t.pending[key]++
	release := func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.pending[key]--; t.pending[key] <= 0 {
			delete(t.pending, key)
		}
	}
	return c.e, c.img, release, nil
}

// molt counts the running molt containers of every fleet on engine e,
// when e has a capacity (Engine.Max); 0 otherwise.
func (t *Target) molt(ctx context.Context, e *engine) (int, error) {
	if e.Max == 0 {
		return 0, nil
	}
	sctx, cancel := t.short(ctx)
	defer cancel()
	res, err := e.api.ContainerList(sctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", LabelFleet, LabelService, LabelSpecHash),
	})
	if err != nil {
		return 0, fmt.Errorf("list containers on engine %s: %w", e.Name, err)
	}
	return len(res.Items), nil
}

// pendingOn counts the provisions in flight on engine name. t.mu is held.
func (t *Target) pendingOn(name string) int {
	n := 0
	for k, p := range t.pending {
		if k.engine == name {
			n += p
		}
	}
	return n
}

// running counts the running containers of a service that molt created
// through engine e.
func (t *Target) running(ctx context.Context, e *engine, l targets.Labels) (int, error) {
	sctx, cancel := t.short(ctx)
	defer cancel()
	f := make(client.Filters).Add("label", LabelFleet+"="+l.Fleet, LabelService+"="+l.Service, LabelEngine+"="+e.Name)
	res, err := e.api.ContainerList(sctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list containers on engine %s: %w", e.Name, err)
	}
	return len(res.Items), nil
}

// publishedPorts maps container ports to the host ports that the engine
// chose for a container as inspected.
func publishedPorts(c container.InspectResponse) map[uint16]uint16 {
	out := map[uint16]uint16{}
	if c.NetworkSettings == nil {
		return out
	}
	for p, bs := range c.NetworkSettings.Ports {
		for _, b := range bs {
			if hp, err := strconv.ParseUint(b.HostPort, 10, 16); err == nil && p.Proto() == "tcp" {
				out[p.Num()] = uint16(hp)
			}
		}
	}
	return out
}

// instance builds the Instance of a molt container on engine e.
func (t *Target) instance(e *engine, containerID string, labels map[string]string, running bool, published map[uint16]uint16, detail string) targets.Instance {
	l, _ := labelsOf(labels)
	inst := targets.Instance{
		ID:        instanceID(e.Name, containerID),
		Labels:    l,
		State:     targets.Dead,
		Endpoints: map[string]string{},
		Detail:    detail,
		Engine:    e.Name,
	}
	if running {
		inst.State = targets.Running
	}
	for name, port := range portsOf(labels) {
		if hp, ok := published[uint16(port)]; ok && hp != 0 {
			inst.Endpoints[name] = net.JoinHostPort(e.hostIP(), strconv.Itoa(int(hp)))
		}
	}
	return inst
}

// containerName is a name for people ("docker ps"); molt never looks a
// container up by it. It is "molt-<service>-<spec hash[:8]>-<6 hex>".
func containerName(l targets.Labels) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	hash := l.SpecHash
	if len(hash) > 8 {
		hash = hash[:8]
	}
	return fmt.Sprintf("molt-%s-%s-%x", nameSafe(l.Service), nameSafe(hash), b), nil
}

// nameSafe keeps what a container name may hold and replaces the rest.
func nameSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if validName(string(r)) {
			return r
		}
		return '-'
	}, s)
}

// validImageID reports whether s is "sha256:" and 64 hex digits.
func validImageID(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && isHex(h)
}
