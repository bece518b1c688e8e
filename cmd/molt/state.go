package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/haproxy"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/router"
	"github.com/spf13/pflag"
)

// logger returns a logger on stderr at the given level, in the format of
// --log-format: text or JSON (one object a line), by default text on a
// terminal and JSON otherwise.
func logger(e *env, level string) *slog.Logger {
	l, err := parseLevel(level)
	if err != nil {
		l = slog.LevelInfo // checked before any command runs
	}
	format, err := parseLogFormat(e.logFormat)
	if err != nil {
		format = "text" // checked before any command runs
	}
	if format == "" {
		format = "json"
		if isTerminal(e.stderr) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

// parseLogFormat validates a --log-format value ("" is the default).
func parseLogFormat(format string) (string, error) {
	switch format {
	case "", "text", "json":
		return format, nil
	}
	return "", &usageError{fmt.Errorf("--log-format %q: want text or json", format)}
}

// lockState takes the state directory's lock so that only one molt acts on
// it at a time. The lock goes with the process: a killed molt leaves none.
func lockState(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state dir %s is in use by another molt (apply, serve or down)", dir)
	}
	return func() { f.Close() }, nil
}

// worldOptions say which state directory and engines a command acts on.
type worldOptions struct {
	stateDir    string
	log         *slog.Logger
	startRouter bool
	// dockerEngines are --docker-engine values (NAME=URL[,ca=..]); none
	// means the default engine (DOCKER_HOST, else the local socket) when
	// it answers, and no docker target when it does not.
	dockerEngines []string
	// haproxy is --haproxy: HAProxy's Runtime API ("" for none).
	haproxy string
}

// registerDocker adds the --docker-engine flag.
func registerDocker(fs *pflag.FlagSet, engines *[]string) {
	fs.StringArrayVar(engines, "docker-engine", nil,
		"a Docker Engine for docker services: NAME=URL[,ca=FILE,cert=FILE,key=FILE][,host-ip=IP][,max=N] (repeatable; default: DOCKER_HOST or the local socket)")
}

// world is the live side of a state directory: the targets, the router,
// and the executor over them.
type world struct {
	process *process.Target
	docker  *docker.Target // nil without an engine
	target  targets.ByKind
	router  *router.Client
	// routerCmd starts the router ("" when this world does not start one);
	// stateDir is the absolute state directory.
	routerCmd []string
	stateDir  string
	haproxy   *haproxy.Front // nil without --haproxy
	exec      *reconciler.Executor
	// health is what the last check of the router found (for /readyz);
	// checkMu serializes the checks of serve's ticker and of the passes.
	health  routerHealth
	checkMu sync.Mutex
}

func (w *world) close() {
	w.process.Close()
	if w.docker != nil {
		w.docker.Close()
	}
}

// openWorld builds the targets, starts the router when none runs for this
// state directory (if asked), and wires the executor.
func openWorld(ctx context.Context, o worldOptions) (*world, error) {
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(o.stateDir)
	if err != nil {
		return nil, err
	}
	proc, err := process.New(process.Options{Dir: filepath.Join(abs, "instances"), Logger: log})
	if err != nil {
		return nil, err
	}
	w := &world{process: proc}
	if w.docker, err = openDocker(ctx, o.dockerEngines, log); err != nil {
		proc.Close()
		return nil, err
	}
	w.target = targets.ByKind{Process: proc}
	if w.docker != nil {
		w.target.Docker = w.docker
	}
	if o.startRouter {
		exe, err := os.Executable()
		if err != nil {
			w.close()
			return nil, fmt.Errorf("find molt's executable for the router: %w", err)
		}
		w.routerCmd = []string{exe, "router", "--state-dir", abs}
		started, err := router.EnsureRunning(ctx, abs, w.routerCmd, log)
		switch {
		case errors.Is(err, router.ErrExternal):
			// Not molt's to start: every pass waits for it (supervisedRouter).
			log.Warn("the router is run by someone else and does not answer; waiting for it", "error", err)
			w.health.set(err, time.Now())
		case err != nil:
			w.close()
			return nil, fmt.Errorf("start router: %w", err)
		default:
			w.health.set(nil, time.Now())
		}
		if started {
			log.Info("router started", "state-dir", abs)
		}
	}
	w.router = router.NewClient(abs)
	w.stateDir = abs
	var front reconciler.Front = w.router
	if len(w.routerCmd) > 0 {
		front = supervisedRouter{w: w, log: log}
	}
	if w.haproxy, err = openHAProxy(o.haproxy, abs, o); err != nil {
		w.close()
		return nil, err
	}
	w.exec = &reconciler.Executor{
		Target:    w.target,
		Front:     trafficFront{router: front, haproxy: w.haproxy},
		Prober:    reconciler.NewProber(),
		Revisions: reconciler.NewRevisions(abs, log),
		Decisions: reconciler.NewDecisions(abs, log),
		Logger:    log,
	}
	keepDockerLogs(w, abs) // the last log of a retired container stays readable (molt logs), whoever retires it
	return w, nil
}

// openDocker connects to the configured engines, or to the default one
// when it answers; it returns nil when there is none to use.
func openDocker(ctx context.Context, flags []string, log *slog.Logger) (*docker.Target, error) {
	var engines []docker.Engine
	for _, f := range flags {
		e, err := docker.ParseEngine(f)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--docker-engine %q: %w", f, err)}
		}
		engines = append(engines, e)
	}
	explicit := len(engines) > 0
	if !explicit {
		engines = []docker.Engine{docker.DefaultEngine(os.Getenv)}
	}
	t, err := docker.New(ctx, docker.Options{Engines: engines, Logger: log})
	if err != nil {
		return nil, err
	}
	if !explicit {
		if err := t.Ping(ctx); err != nil {
			t.Close()
			log.Debug("no Docker engine: docker services cannot be provisioned", "error", err)
			return nil, nil
		}
	}
	return t, nil
}

// yes asks a question on a terminal and reports whether the answer was yes.
func yes(e *env, question string) bool {
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(e.stdin, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

// superviseRouter checks every interval, until ctx ends, that the router
// of the state directory answers, and starts it again at once when it does
// not (see checkRouter). Every pass of the executor checks it too
// (supervisedRouter), so apply does without this ticker.
func (w *world) superviseRouter(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if len(w.routerCmd) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = w.checkRouter(ctx, log)
	}
}

// checkRouter pings the router and, when it does not answer, has
// router.EnsureRunning start it again at once: its table comes back from
// STATE/router/routes.json, or, when that is lost, from the live fleet at
// the next pass (which sets the fleet's routes again). A router molt did
// not start is never stopped or replaced: the error wraps
// router.ErrExternal, and molt waits for it. A router of another molt
// version counts as answering (the next apply replaces it). The verdict
// goes to w.health, and to the log when it changes.
func (w *world) checkRouter(ctx context.Context, log *slog.Logger) error {
	if len(w.routerCmd) == 0 {
		return nil
	}
	w.checkMu.Lock()
	defer w.checkMu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := w.router.Ping(pctx)
	cancel()
	if err == nil || errors.Is(err, router.ErrProtocol) {
		if w.health.set(nil, time.Now()) {
			log.Info("the router answers again", "state-dir", w.stateDir)
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !w.health.isExternal() {
		log.Warn("the router does not answer; starting it again", "error", err)
		w.health.set(fmt.Errorf("the router does not answer: %w", err), time.Now())
	}
	started, serr := router.EnsureRunning(ctx, w.stateDir, w.routerCmd, log)
	switch {
	case errors.Is(serr, router.ErrExternal):
		if w.health.set(serr, time.Now()) {
			log.Warn("the router is not molt's to start or replace and does not answer; waiting for it", "error", serr)
		}
	case serr != nil:
		log.Error("cannot start the router", "error", serr)
		w.health.set(fmt.Errorf("the router does not answer and cannot be started: %w", serr), time.Now())
	case started:
		log.Info("router started again", "state-dir", w.stateDir)
		w.health.set(nil, time.Now())
	default:
		w.health.set(nil, time.Now())
	}
	return serr
}

// externalWait is how often a pass looks again for a router that molt may
// not start while it does not answer, and externalPatience how long one
// pass waits for it before it fails (serve's loop retries it with backoff;
// a pass that waited longer would hold up serve's stop).
const (
	externalWait     = time.Second
	externalPatience = 10 * time.Second
)

// supervisedRouter is the executor's router: before each pass reads the
// fleet's routes (the first thing a pass asks of its front) it checks that
// the router answers, starting it again at once when it does not, so that
// apply heals a dead router on its next pass, not only serve's ticker. A
// router molt may not replace (router.ErrExternal) is waited for, for up
// to externalPatience per pass.
type supervisedRouter struct {
	w   *world
	log *slog.Logger
}

func (s supervisedRouter) Routes(ctx context.Context, fleet string) ([]targets.Route, error) {
	wctx, cancel := context.WithTimeout(ctx, externalPatience)
	defer cancel()
	for {
		err := s.w.checkRouter(ctx, s.log)
		if err == nil {
			break
		}
		if !errors.Is(err, router.ErrExternal) {
			return nil, fmt.Errorf("router: %w", err)
		}
		select {
		case <-time.After(externalWait):
		case <-wctx.Done():
			return nil, fmt.Errorf("router: %w", err)
		}
	}
	var out []targets.Route
	err := s.again(ctx, func() error {
		var err error
		out, err = s.w.router.Routes(ctx, fleet)
		return err
	})
	return out, err
}

func (s supervisedRouter) SetRoutes(ctx context.Context, fleet string, routes []targets.Route) error {
	return s.again(ctx, func() error { return s.w.router.SetRoutes(ctx, fleet, routes) })
}

// again calls fn, and once more after checking the router (which starts
// it again) when fn found no router or lost it mid-call (the connection
// reset or cut: it died while it answered): one that died between the
// pass's check and its call is not a failed pass. Both calls are
// idempotent (a read, a whole table set).
func (s supervisedRouter) again(ctx context.Context, fn func() error) error {
	err := fn()
	if !routerLost(err) || ctx.Err() != nil {
		return err
	}
	s.log.Warn("the router went away during the pass; starting it again", "error", err)
	if cerr := s.w.checkRouter(ctx, s.log); cerr != nil {
		return fmt.Errorf("%w (and the router cannot be started: %v)", err, cerr)
	}
	return fn()
}

// routerLost reports whether err says that the router was not there, or
// went away during the call: the call failed on its connection (reset,
// cut, closed before the answer: net/http says "server closed idle
// connection" then), not by a refusal the router answered.
func routerLost(err error) bool {
	var ue *url.Error
	return errors.Is(err, router.ErrNotRunning) || errors.As(err, &ue) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func (s supervisedRouter) Drain(ctx context.Context, addrs []string) error {
	return s.w.router.Drain(ctx, addrs)
}

func (s supervisedRouter) Counts(ctx context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error) {
	return s.w.router.Counts(ctx, fleet, since)
}

var (
	_ reconciler.Front   = supervisedRouter{}
	_ reconciler.Counter = supervisedRouter{}
)

// routerHealth is the router's state as the checks found it.
type routerHealth struct {
	mu       sync.Mutex
	checked  bool
	err      error     // nil: the router answers
	external bool      // err wraps router.ErrExternal
	since    time.Time // when it last changed between up and down
}

// set records a verdict (nil: up) and reports whether it changed the
// state (up, down, external and down).
func (h *routerHealth) set(err error, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ext := errors.Is(err, router.ErrExternal)
	changed := !h.checked || (h.err == nil) != (err == nil) || h.external != ext
	if changed {
		h.since = now
	}
	h.checked, h.err, h.external = true, err, ext
	return changed
}

func (h *routerHealth) isExternal() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.external
}

// routerState is a copy of the last verdict.
type routerState struct {
	Checked  bool // false before the first check
	Err      error
	External bool
	Since    time.Time
}

func (h *routerHealth) get() routerState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return routerState{Checked: h.checked, Err: h.err, External: h.external, Since: h.since}
}
