// Package worldtest sets up the world that end-to-end tests drive the
// reconciler's executor in, as molt runs it: a real target and a real
// router (in the test's process) in a temporary state directory, with an
// executor over them.
package worldtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/targetstest"
)

// World is a process target and a router in one state directory, and an
// executor over them.
type World struct {
	State   string          // the state directory
	Port    string          // a free port of 127.0.0.1, for a service's listen address
	Hello   string          // the hello binary (targetstest.Hello)
	Process *process.Target // the process target (what Exec drives, unless wrapped)
	Front   *router.Client
	Exec    *reconciler.Executor
	// Fleets are the fleets by revision: what Exec reads back for a
	// rollback, as it would read a commit of a repository.
	Fleets map[string]*schema.Fleet
}

// New builds a world, which t's cleanup takes down: every instance
// retired, the router stopped, the state directory removed. The executor
// drives wrap(the process target), or the process target itself when wrap
// is nil. It skips in -short mode. (A cleanup that the caller registers
// after New runs before the world's.)
func New(t *testing.T, wrap func(*process.Target) targets.Target) *World {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	state := StateDir(t, "mw")
	tgt, err := process.New(process.Options{Dir: filepath.Join(state, "instances")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	rc := StartRouter(t, state)
	t.Cleanup(func() {
		insts, _ := tgt.List(context.Background())
		for _, in := range insts {
			_ = tgt.Retire(context.Background(), in.ID)
		}
	})
	w := &World{State: state, Port: FreePort(t), Hello: targetstest.Hello(t), Process: tgt, Front: rc, Fleets: map[string]*schema.Fleet{}}
	var driven targets.Target = tgt
	if wrap != nil {
		driven = wrap(tgt)
	}
	w.Exec = NewExecutor(state, driven, rc, w.Fleets)
	return w
}

// StateDir makes a state directory that t's cleanup removes, with a short
// path under the system's temporary directory (the router's unix socket
// is in it, and their paths are limited).
func StateDir(t *testing.T, prefix string) string {
	t.Helper()
	state, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	return state
}

// StartRouter runs a router for the state directory in this process,
// until t's cleanup, and returns its client once it answers.
func StartRouter(t *testing.T, state string) *router.Client {
	t.Helper()
	srv, err := router.NewServer(router.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	rc := router.NewClient(state)
	targetstest.Eventually(t, 5*time.Second, "router up", func() bool { return rc.Ping(context.Background()) == nil })
	return rc
}

// NewExecutor returns an executor over target and front, with its
// revisions in the state directory, whose specs of a revision are
// fleets[revision].
func NewExecutor(state string, target targets.Target, front reconciler.Front, fleets map[string]*schema.Fleet) *reconciler.Executor {
	return &reconciler.Executor{
		Target: target, Front: front, Prober: reconciler.NewProber(), Revisions: reconciler.NewRevisions(state, nil),
		Tick: 50 * time.Millisecond,
		Specs: func(_ context.Context, rev string) (*schema.Fleet, error) {
			if f := fleets[rev]; f != nil {
				return f, nil
			}
			return nil, fmt.Errorf("no revision %s", rev)
		},
	}
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago.
func FreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Fleet loads src, one fleet.cue, through the real schema loader and
// keeps it in fleets as revision rev (what an executor of NewExecutor
// reads back).
func Fleet(t *testing.T, fleets map[string]*schema.Fleet, rev, src string) *schema.Fleet {
	t.Helper()
	f, err := schema.Load(fstest.MapFS{"fleet.cue": {Data: []byte(src)}}, ".")
	if err != nil {
		t.Fatalf("load fleet: %v", err)
	}
	fleets[rev] = f
	return f
}
