package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

var (
	_ targets.Target         = (*Target)(nil)
	_ targets.Resolver       = (*Target)(nil)
	_ targets.DriftInspector = (*Target)(nil)
	_ targets.LogReader      = (*Target)(nil)
)

// Target runs instances as containers on its engines. Its methods are safe
// for concurrent use. Dropping or closing a Target never stops a container.
type Target struct {
	engines []*engine // in the order of Options.Engines
	byName  map[string]*engine
	log     *slog.Logger
	timeout time.Duration

	mu       sync.Mutex
	pending  map[placement]int // provisions in flight, not listed yet
	seen     map[string]seen   // by engine name: what the last List saw
	logDir   string            // see SetLogDir
	keepLogs time.Duration
	expected map[string]time.Time // instances Retire stopped lately, by id (exits.go)
}

// engine is one configured engine and its API client.
type engine struct {
	Engine
	api *client.Client
}

// seen is what the last List saw of one engine.
type seen struct {
	up      bool
	running int // molt containers running on it, of every fleet
}

// placement is a service's share of one engine.
type placement struct {
	engine, fleet, service string
}

// New returns a Target over opts.Engines. It pings every engine once, one
// after the other and each within opts.Timeout, which negotiates the API
// version, and logs the engines that do not answer; an engine that does not
// answer is not an error (it may come back, and negotiation is retried on
// its next call), so New fails only on invalid options. It starts no
// goroutine. Close releases its connections.
func New(ctx context.Context, opts Options) (*Target, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Target{
		byName:  make(map[string]*engine, len(opts.Engines)),
		log:     log.With("target", "docker"),
		timeout: opts.Timeout,
		pending: make(map[placement]int),
		seen:    make(map[string]seen, len(opts.Engines)),
	}
	if t.timeout == 0 {
		t.timeout = defaultTimeout
	}
	for _, e := range opts.Engines {
		o := []client.Opt{client.WithHost(e.Host)}
		if e.tls() {
			o = append(o, client.WithTLSClientConfig(e.CACert, e.Cert, e.Key))
		}
		api, err := client.New(o...)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("docker target: engine %s: %w", e.Name, err)
		}
		eng := &engine{Engine: e, api: api}
		t.engines = append(t.engines, eng)
		t.byName[e.Name] = eng
	}
	for _, e := range t.engines {
		v, err := t.ping(ctx, e)
		t.seen[e.Name] = seen{up: err == nil}
		if err != nil {
			t.log.Warn("docker engine does not answer", "engine", e.Name, "host", e.Host, "error", err)
		} else {
			t.log.Debug("docker engine answers", "engine", e.Name, "host", e.Host, "api", v)
		}
	}
	return t, nil
}

// Ping asks every engine whether it answers and returns nil when all do,
// else an error naming each engine that does not.
func (t *Target) Ping(ctx context.Context) error {
	var errs []error
	for _, e := range t.engines {
		if _, err := t.ping(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ping pings e, negotiating the API version, and returns that version.
func (t *Target) ping(ctx context.Context, e *engine) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if _, err := e.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", fmt.Errorf("engine %s (%s): %w", e.Name, e.Host, err)
	}
	return e.api.ClientVersion(), nil
}

// Engines returns the target's engines in the order of Options.Engines,
// as its last List saw them (as New's ping saw them before any List):
// whether each answered, its capacity (Engine.Max) and how many molt
// containers, of every fleet, were running on it. It does no I/O.
func (t *Target) Engines() []targets.Engine {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]targets.Engine, 0, len(t.engines))
	for _, e := range t.engines {
		st := t.seen[e.Name]
		out = append(out, targets.Engine{Name: e.Name, Up: st.up, Max: e.Max, Running: st.running})
	}
	return out
}

// Close releases the engines' idle connections. Containers keep running.
// It is idempotent and always returns nil.
func (t *Target) Close() error {
	for _, e := range t.engines {
		e.api.Close()
	}
	return nil
}

// enginesOf returns the engines a service may run on: those its
// docker.engines names, in that order, or all of them.
func (t *Target) enginesOf(svc *schema.Service) ([]*engine, error) {
	if len(svc.Docker.Engines) == 0 {
		return t.engines, nil
	}
	out := make([]*engine, 0, len(svc.Docker.Engines))
	for _, name := range svc.Docker.Engines {
		e, ok := t.byName[name]
		if !ok {
			return nil, fmt.Errorf("%w: service %s asks for engine %q, which is not configured", targets.ErrInvalidSpec, svc.Name, name)
		}
		out = append(out, e)
	}
	return out, nil
}

// short returns a context for one short call to an engine.
func (t *Target) short(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.timeout)
}

// unreachable reports whether err says that the engine did not answer (as
// opposed to an answer that is an error). parent is the caller's context:
// its own cancellation is never "unreachable".
func unreachable(parent context.Context, err error) bool {
	if err == nil || parent.Err() != nil {
		return false
	}
	return client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded)
}

func notFound(err error) bool { return cerrdefs.IsNotFound(err) }
