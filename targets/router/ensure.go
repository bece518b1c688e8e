package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ensurePoll is how often EnsureRunning looks for locks and pings.
const ensurePoll = 20 * time.Millisecond

// EnsureRunning makes sure a router serves stateDir. If one answers Ping it
// returns false. Otherwise it starts command (such as [molt, "router",
// "--state-dir", DIR]) detached: in a session of its own, stdin from
// /dev/null, output appended to STATE/router/router.log, so that it
// outlives the caller; then it waits until the router answers and returns
// true. A lock file (STATE/router/lock) keeps two callers from starting two
// routers; a router still shutting down is waited for first.
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
	c := NewClient(stateDir)
	perr := c.Ping(ctx)
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
	dir, err := makeDir(stateDir)
	if err != nil {
		return false, err
	}
	lock, err := waitLock(ctx, filepath.Join(dir, lockName))
	if err != nil {
		return false, fmt.Errorf("ensure router: %w", err)
	}
	defer lock.Close()
	// Another caller may have started a router meanwhile, or one may be
	// starting or stopping: wait until it answers or is gone.
	if up, err := waitUpOrGone(ctx, c, dir); err != nil || up {
		return false, err
	}

	logPath := filepath.Join(dir, logName)
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("ensure router: %w", err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(command[0], command[1:]...)
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
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx)
		cancel()
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

// waitUpOrGone waits until the router of dir answers (true) or no router
// holds the directory's pid lock (false).
func waitUpOrGone(ctx context.Context, c *Client, dir string) (bool, error) {
	tick := time.NewTicker(ensurePoll)
	defer tick.Stop()
	for {
		if c.Ping(ctx) == nil {
			return true, nil
		}
		if routerGone(dir) {
			return false, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false, fmt.Errorf("ensure router: a router holds %s but does not answer: %w", filepath.Join(dir, pidName), ctx.Err())
		}
	}
}
