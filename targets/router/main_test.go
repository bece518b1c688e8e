package router

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// The test binary doubles as the router command of EnsureRunning's tests
// (MOLT_ROUTER_TEST_CHILD=1: run `router --state-dir DIR`) and as a short
// lived caller of EnsureRunning (MOLT_ROUTER_TEST_LAUNCH=DIR).
// With MOLT_ROUTER_TEST_SLEEP=1 it only sleeps: a process with a router's
// command line that does not answer.
const (
	childEnv  = "MOLT_ROUTER_TEST_CHILD"
	launchEnv = "MOLT_ROUTER_TEST_LAUNCH"
	sleepEnv  = "MOLT_ROUTER_TEST_SLEEP"
)

func TestMain(m *testing.M) {
	if os.Getenv(sleepEnv) == "1" {
		time.Sleep(5 * time.Minute) // killed by the test long before
		os.Exit(0)
	}
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild(os.Args[1:]))
	}
	if dir := os.Getenv(launchEnv); dir != "" {
		os.Exit(launch(dir))
	}
	code := m.Run()
	targetstest.RemoveHello()
	os.Exit(code)
}

// runChild is `molt router` in miniature.
func runChild(args []string) int {
	if len(args) == 0 || args[0] != "router" {
		fmt.Fprintln(os.Stderr, "usage: router --state-dir DIR")
		return 2
	}
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	dir := fs.String("state-dir", "", "state directory")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewServer(Options{StateDir: *dir, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// launch starts a router for dir with EnsureRunning, then exits.
func launch(dir string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Unsetenv(launchEnv)
	os.Setenv(childEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started, err := EnsureRunning(ctx, dir, []string{exe, "router", "--state-dir", dir}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !started {
		fmt.Fprintln(os.Stderr, "router was already running")
		return 1
	}
	return 0
}
