package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/router"
)

// logger returns a text logger on stderr at the given level.
func logger(e *env, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l}))
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

// world is the live side of a state directory: the process target, the
// router, and the executor over them.
type world struct {
	target *process.Target
	router *router.Client
	exec   *reconciler.Executor
}

// openWorld builds the target, starts the router when none runs for this
// state directory, and wires the executor.
func openWorld(ctx context.Context, stateDir string, log *slog.Logger, startRouter bool) (*world, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	tgt, err := process.New(process.Options{Dir: filepath.Join(abs, "instances"), Logger: log})
	if err != nil {
		return nil, err
	}
	if startRouter {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find molt's executable for the router: %w", err)
		}
		started, err := router.EnsureRunning(ctx, abs, []string{exe, "router", "--state-dir", abs}, log)
		if err != nil {
			return nil, fmt.Errorf("start router: %w", err)
		}
		if started {
			log.Info("router started", "state-dir", abs)
		}
	}
	rc := router.NewClient(abs)
	return &world{
		target: tgt,
		router: rc,
		exec: &reconciler.Executor{
			Target:   targets.ByKind{Process: tgt},
			Router:   rc,
			Prober:   reconciler.NewProber(),
			Failures: reconciler.NewFailures(abs),
			Logger:   log,
		},
	}, nil
}

// yes asks a question on a terminal and reports whether the answer was yes.
func yes(e *env, question string) bool {
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(e.stdin, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
