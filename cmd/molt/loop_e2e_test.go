package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/targets/targetstest"
)

// loopSnapshots is a Source whose newest snapshot the test sets.
type loopSnapshots struct {
	mu    sync.Mutex
	snap  reconciler.Snapshot
	calls atomic.Int64
}

func (s *loopSnapshots) set(sn reconciler.Snapshot) { s.mu.Lock(); s.snap = sn; s.mu.Unlock() }

func (s *loopSnapshots) Latest(context.Context) (reconciler.Snapshot, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, nil
}

// TestLoopPreemptsForNewerRevision: a rollout in progress finishes its
// step, then the loop moves to the newer revision; triggers that arrive
// meanwhile coalesce into one more reconcile.
func TestLoopPreemptsForNewerRevision(t *testing.T) {
	w := newExecWorld(t)
	v1 := w.fleet("main@sha1:1111", "v1", "rolling", "")
	w.apply(v1, "main@sha1:1111")

	src := &loopSnapshots{}
	slow := w.fleet("main@sha1:2222", "v2", "rolling", "")
	slow.Services["web"].Rollout.MinHealthyFor = 2 * time.Second // three batches: > 6s
	src.set(reconciler.Snapshot{Fleet: slow, Revision: "main@sha1:2222", Specs: w.Exec.Specs})

	var mu sync.Mutex
	var outcomes []reconciler.Outcome
	loop := &reconciler.Loop{Source: src, Executor: w.Exec, OnResult: func(o reconciler.Outcome) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	defer func() { cancel(); <-done }()

	h2 := w.hash(slow)
	targetstest.Eventually(t, 20*time.Second, "the v2 rollout to start", func() bool {
		return execCount(w.instances(), ofGeneration(h2)) >= 1
	})
	v3 := w.fleet("main@sha1:3333", "v3", "rolling", "")
	src.set(reconciler.Snapshot{Fleet: v3, Revision: "main@sha1:3333", Specs: w.Exec.Specs})
	before := src.calls.Load()
	for range 100 {
		loop.Trigger("burst")
	}
	h3 := w.hash(v3)
	targetstest.Eventually(t, 30*time.Second, "v3 converged", func() bool {
		insts := w.instances()
		return execCount(insts, runningOf(h3)) == 3 &&
			execCount(insts, ofGeneration(h2)) == 0 &&
			w.answer() == "hello from v3"
	})
	targetstest.Eventually(t, 10*time.Second, "the loop to go idle", func() bool { return loop.Status().Running.IsZero() })
	if n := src.calls.Load() - before; n > 2 {
		t.Errorf("100 triggers during a reconcile caused %d more reconciles; want at most 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	preempted := false
	for _, o := range outcomes {
		if o.Revision == "main@sha1:2222" && o.Result.Preempted {
			preempted = true
		}
		if o.Err != nil {
			t.Errorf("reconcile %s: %v", o.Reason, o.Err)
		}
	}
	if !preempted {
		t.Errorf("the v2 rollout was not preempted: %+v", outcomes)
	}
}
