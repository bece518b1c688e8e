package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ensurePoll is how often EnsureRunning looks for locks and pings.
const ensurePoll = 20 * time.Millisecond

// ErrExternal wraps EnsureRunning's error when the router of the state
// directory was not started by molt (no EnvManaged in its environment, or
// STATE/router/external says a supervisor such as systemd runs it) and does
// not answer: molt neither stops nor replaces it, and waits for it.
var ErrExternal = errors.New("the router is not molt's to start or replace")

const (
	// answerGrace is how long a router process that does not answer is
	// waited for before it is replaced: longer than DefaultKeepInterval,
	// in which a router whose socket was removed makes a new one.
	answerGrace = 3 * time.Second
	// stopGrace is how long a replaced router has after SIGTERM to let its
	// requests finish, and after SIGKILL to be gone.
	stopGrace = 5 * time.Second
	// pingTimeout bounds one Ping: a stopped router's socket still accepts.
	pingTimeout = time.Second
)

// EnsureRunning makes sure a router serves stateDir. If one answers Ping it
// returns false. Otherwise it looks in /proc for the router processes of
// stateDir (FindRouters): one molt did not start makes it return an error
// wrapping ErrExternal, and so does STATE/router/external while no router
// runs; one molt started is waited for briefly (it may be making its
// socket again) and, if it still does not answer, stopped (SIGTERM, then
// SIGKILL; see stopProcess). Then it starts command (such as [molt,
// "router", "--state-dir", DIR]) detached: in a session of its own, with
// EnvManaged in its environment, stdin from /dev/null, output appended to
// STATE/router/router.log, so that it outlives the caller; then it waits
// until the router answers and returns true. A lock file
// (STATE/router/lock) keeps two callers from starting two routers; a
// router still shutting down is waited for first. It never stops a
// process that is not a router of stateDir.
//
// Cancelling ctx stops the waiting, not a router already started. While the
// caller lives, a goroutine waits for the started process, so that it does
// not linger as a zombie after it exits.
func EnsureRunning(ctx context.Context, stateDir string, command []string, logger *slog.Logger) (started bool, err error) {
	if len(command) == 0 {
		return false, errors.New("ensure router: empty command")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return false, fmt.Errorf("ensure router: %w", err)
	}
	c := NewClient(abs)
	perr := ping(ctx, c)
	if perr == nil {
		return false, nil
	}
	if errors.Is(perr, ErrProtocol) {
		// A router of an older molt: it cannot be configured by this one.
		// It stops (its listeners finish their requests); the new router
		// starts on the same addresses and the reconciler rebuilds its
		// routes from the live fleet.
		logger.Warn("replacing a router of another molt version", "error", perr)
		if err := c.Shutdown(ctx); err != nil {
			return false, fmt.Errorf("ensure router: stop the old router: %w", err)
		}
	}
	dir, err := makeDir(abs)
	if err != nil {
		return false, err
	}
	lock, err := waitLock(ctx, filepath.Join(dir, lockName))
	if err != nil {
		return false, fmt.Errorf("ensure router: %w", err)
	}
	defer lock.Close()
	// Another caller may have started a router meanwhile, or one may be
	// starting, stopping, hung, or run by someone else.
	if up, err := settle(ctx, c, abs, dir, logger); err != nil || up {
		return false, err
	}
	warnHolders(dir, logger)

	logPath := filepath.Join(dir, logName)
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("ensure router: %w", err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, EnvManaged+"=") }),
		EnvManaged+"="+abs)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("ensure router: start %s: %w", command[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logger.Info("starting router", "pid", cmd.Process.Pid, "log", logPath)

	tick := time.NewTicker(ensurePoll)
	defer tick.Stop()
	for {
		err := ping(ctx, c)
		if err == nil {
			return true, nil
		}
		select {
		case <-tick.C:
		case err := <-exited:
			return false, fmt.Errorf("ensure router: router exited before answering (%v); see %s", err, logPath)
		case <-ctx.Done():
			return false, fmt.Errorf("ensure router: wait for router to answer: %w", ctx.Err())
		}
	}
}

func ping(ctx context.Context, c *Client) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return c.Ping(pctx)
}

// settle waits until the router of abs answers (true), or until none runs
// (false): it finds the router processes of abs, refuses (ErrExternal) to
// act on one molt did not start, and stops the ones molt started that do
// not answer within answerGrace.
func settle(ctx context.Context, c *Client, abs, dir string, logger *slog.Logger) (bool, error) {
	grace := time.Now().Add(answerGrace)
	tick := time.NewTicker(ensurePoll)
	defer tick.Stop()
	for {
		if ping(ctx, c) == nil {
			return true, nil
		}
		procs, err := FindRouters(abs)
		if err != nil {
			return false, fmt.Errorf("ensure router: %w", err)
		}
		for _, p := range procs {
			if !p.Managed {
				return false, fmt.Errorf("%w: the router of %s, %s, does not answer; molt waits for it", ErrExternal, abs, p)
			}
		}
		switch {
		case len(procs) == 0:
			if what, ok := external(dir); ok {
				return false, fmt.Errorf("%w: the router of %s is run by a supervisor of its own (%s: %q) and is not running; molt waits for it (remove that file to let molt start one)",
					ErrExternal, abs, filepath.Join(dir, externalName), what)
			}
			if routerGone(dir) {
				return false, nil
			}
			if time.Now().After(grace) {
				return false, fmt.Errorf("ensure router: a router holds %s but does not answer, and no router process of %s is to be seen", filepath.Join(dir, pidName), abs)
			}
		case time.Now().After(grace):
			for _, p := range procs {
				logger.Warn("the router does not answer: replacing it", "pid", p.PID, "state-dir", abs)
				if err := stopProcess(p, stopGrace); err != nil {
					return false, fmt.Errorf("ensure router: %w", err)
				}
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false, fmt.Errorf("ensure router: wait for the router of %s to answer or stop: %w", abs, ctx.Err())
		}
	}
}

// warnHolders logs the listen addresses of the persisted table that some
// process holds already: a router about to start cannot listen there.
func warnHolders(dir string, logger *slog.Logger) {
	t, err := readTable(filepath.Join(dir, tableName))
	if err != nil {
		return
	}
	addrs := t.listenAddrs()
	if len(addrs) == 0 {
		return
	}
	held, err := ListenHolders(addrs)
	if err != nil {
		return
	}
	for addr, pid := range held {
		logger.Warn("a listen address of the routes is held by another process: the router cannot serve it until it is free",
			"listen", addr, "pid", pid)
	}
}

// waitLock takes the flock on path, polling until it is free or ctx is done.
func waitLock(ctx context.Context, path string) (*os.File, error) {
	tick := time.NewTicker(ensurePoll)
	defer tick.Stop()
	for {
		f, err := tryLock(path, os.O_CREATE)
		if !errors.Is(err, errLocked) {
			return f, err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s: %w", path, ctx.Err())
		}
	}
}
