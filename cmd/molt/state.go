package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
		if err != nil {
			w.close()
			return nil, fmt.Errorf("start router: %w", err)
		}
		if started {
			log.Info("router started", "state-dir", abs)
		}
	}
	w.router = router.NewClient(abs)
	w.stateDir = abs
	if w.haproxy, err = openHAProxy(o.haproxy, abs, o); err != nil {
		w.close()
		return nil, err
	}
	w.exec = &reconciler.Executor{
		Target:    w.target,
		Front:     trafficFront{router: w.router, haproxy: w.haproxy},
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
// not (its table comes back from STATE/router/routes.json, and the next
// reconcile sets the fleet's routes again). A router of another molt
// version is left to the next apply. up is told each verdict, for /readyz.
func (w *world) superviseRouter(ctx context.Context, interval time.Duration, log *slog.Logger, up func(error)) {
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
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := w.router.Ping(pctx)
		cancel()
		if err == nil || errors.Is(err, router.ErrProtocol) || ctx.Err() != nil {
			up(nil)
			continue
		}
		log.Warn("the router does not answer; starting it again", "error", err)
		started, serr := router.EnsureRunning(ctx, w.stateDir, w.routerCmd, log)
		switch {
		case serr != nil:
			log.Error("cannot start the router", "error", serr)
			up(fmt.Errorf("the router does not answer and cannot be started: %w", serr))
		case started:
			log.Info("router started again", "state-dir", w.stateDir)
			up(nil)
		default:
			up(nil)
		}
	}
}
