package reconciler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// fixedSource always gives the same snapshot.
type fixedSource struct{ snap Snapshot }

func (s fixedSource) Latest(context.Context) (Snapshot, error) { return s.snap, nil }

// hourly is a poll schedule that would show: a tick an hour away.
type hourly struct{}

func (hourly) Next(t time.Time) time.Time { return t.Add(time.Hour) }

// An instance that stays up but stops answering its checks between two
// polls an hour apart is replaced after unhealthyThreshold failed probes
// when the loop watches health (as serve does), and only at the next poll
// when it does not.
func TestLoopReplacesAnInstanceThatTurnsUnhealthy(t *testing.T) {
	for _, watch := range []bool{true, false} {
		name := "watched"
		if !watch {
			name = "not watched"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newMemWorld(t)
				var mu sync.Mutex
				hung := ""
				w.exec.Prober.probe = func(_ context.Context, inst targets.Instance, _ schema.Health) error {
					mu.Lock()
					defer mu.Unlock()
					if inst.ID == hung {
						return errors.New("timeout")
					}
					return nil
				}
				f := w.fleet("shop", "main@sha1:1", "v1", 2, schema.Rolling)
				f.Services["web"].Health = startCheck(time.Second, 1, 2, 0)
				var reasons []string
				loop := &Loop{Source: fixedSource{Snapshot{Fleet: f, Revision: "main@sha1:1", Specs: w.exec.Specs}},
					Executor: w.exec, Schedule: hourly{}, WatchHealth: watch,
					OnResult: func(o Outcome) {
						if o.Err != nil {
							t.Errorf("reconcile (%s): %v", o.Reason, o.Err)
						}
						reasons = append(reasons, o.Reason)
					}}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- loop.Run(ctx) }()
				defer func() { cancel(); <-done }()

				time.Sleep(time.Second)
				synctest.Wait()
				ids := w.ids("shop")
				if len(ids) != 2 || !slices.Equal(reasons, []string{"start"}) {
					t.Fatalf("after the start: instances %v, reconciles %v", ids, reasons)
				}
				mu.Lock()
				hung = ids[0]
				mu.Unlock()
				// Two failed probes an interval apart, then the reconcile.
				time.Sleep(5 * time.Second)
				synctest.Wait()
				now := w.ids("shop")
				replaced := len(now) == 2 && !slices.Contains(now, hung)
				if watch && (!replaced || !slices.Contains(reasons, ReasonHealth)) {
					t.Fatalf("5s after %s stopped answering: instances %v, reconciles %v; want it replaced by a %q reconcile",
						hung, now, reasons, ReasonHealth)
				}
				if !watch && (replaced || len(reasons) != 1) {
					t.Fatalf("without the watch: instances %v, reconciles %v; want nothing before the poll", now, reasons)
				}
			})
		})
	}
}
