package faults_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/faults"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/targetstest"
	"github.com/molt-dev/molt/targets/worldtest"
)

// totals adds up the faults injected over the test run, by kind.
var totals = struct {
	sync.Mutex
	m map[faults.Kind]int
}{m: map[faults.Kind]int{}}

func TestMain(m *testing.M) {
	code := m.Run()
	targetstest.RemoveHello()
	totals.Lock()
	var parts []string
	sum := 0
	for _, k := range faults.Kinds {
		if n := totals.m[k]; n > 0 {
			sum += n
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	totals.Unlock()
	if sum > 0 {
		fmt.Printf("faults injected under load: %d (%s)\n", sum, strings.Join(parts, ", "))
	}
	os.Exit(code)
}

// world is the real executor over real hello processes (the process
// target, wrapped in faults) behind the real router, as molt runs them.
type world struct {
	*worldtest.World
	t      *testing.T
	faults *faults.Target
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t}
	w.World = worldtest.New(t, func(tgt *process.Target) targets.Target {
		w.faults = faults.Wrap(tgt)
		return w.faults
	})
	w.Exec.ProvisionTimeout = 2 * time.Second
	t.Cleanup(func() { // (before the world's own)
		w.faults.Wait()
		totals.Lock()
		for k, n := range w.faults.Injected() {
			totals.m[k] += n
		}
		totals.Unlock()
	})
	return w
}

// fleet is a one-service fleet of 3 hello instances answering VERSION,
// through the router on w.Port, with no warm previous generation.
func (w *world) fleet(rev, version, strategy string) *schema.Fleet {
	w.t.Helper()
	src := fmt.Sprintf(`
name: "faults"
services: web: {
	replicas: 3
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	stopGrace: "5s"
	rollout: {strategy: %q, maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s", keepPrevious: "0s"}
}
`, w.Hello, version, w.Port, strategy)
	return worldtest.Fleet(w.t, w.Fleets, rev, src)
}

// reconcile applies f at rev until an Apply converges without error, as
// the loop does after a fault (at most tries times).
func (w *world) reconcile(f *schema.Fleet, rev string, tries int) (reconciler.Result, []error) {
	w.t.Helper()
	var errs []error
	for range tries {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		res, err := w.Exec.Apply(ctx, f, rev)
		cancel()
		if err == nil && res.Converged {
			return res, errs
		}
		errs = append(errs, err)
	}
	w.t.Fatalf("%s did not converge in %d reconciles: %v", rev, tries, errs)
	return reconciler.Result{}, errs
}

// TestFaultsUnderLoad: a rollout from v1 to v2 through every kind of
// fault at once (a transient and a hung provision, one whose instance
// appears late, retires that fail, a failing list and stale ones), with
// requests going through the router all along: not one request fails,
// the fleet never has more live instances than the strategy allows, and
// the process target ends holding exactly v2's three instances, the late
// one cleaned up.
func TestFaultsUnderLoad(t *testing.T) {
	for _, strategy := range []string{"rolling", "blue-green"} {
		t.Run(strategy, func(t *testing.T) {
			w := newWorld(t)
			v1 := w.fleet("main@sha1:1", "v1", strategy)
			w.reconcile(v1, "main@sha1:1", 1)
			load := targetstest.StartLoad("127.0.0.1:"+w.Port, 4, 2*time.Millisecond)

			bound := 4 // rolling: replicas + maxSurge
			if strategy == "blue-green" {
				bound = 6
			}
			var mu sync.Mutex
			maxLive := 0
			w.Exec.OnObserve = func(string, []reconciler.Observed) {
				insts, _ := w.Process.List(context.Background())
				live := 0
				for _, in := range insts {
					if in.State == targets.Running {
						live++
					}
				}
				mu.Lock()
				maxLive = max(maxLive, live)
				mu.Unlock()
			}
			release := make(chan struct{}) // the late instance appears once v2 converged
			// The n-th provision of v2 (rules see calls under the
			// wrapper's lock, one at a time).
			ordinal, v2s := map[int]int{}, 0
			v2Call := func(n int) func(faults.Call) bool {
				return func(c faults.Call) bool {
					if c.Spec.Labels.Revision != "main@sha1:2" {
						return false
					}
					if _, ok := ordinal[c.N]; !ok {
						v2s++
						ordinal[c.N] = v2s
					}
					return ordinal[c.N] == n
				}
			}
			w.faults.Set(
				faults.Rule{Fault: faults.Fault{Kind: faults.ProvisionFail}, Match: v2Call(1)},
				faults.Rule{Fault: faults.Fault{Kind: faults.ProvisionLate, Hold: release}, Match: v2Call(2)},
				faults.Rule{Fault: faults.Fault{Kind: faults.ProvisionHang}, Match: v2Call(3)},
				faults.Rule{Fault: faults.Fault{Kind: faults.RetireFail}, Times: 2},
				faults.Rule{Fault: faults.Fault{Kind: faults.ListFail}, Skip: 6, Times: 1},
				faults.Rule{Fault: faults.Fault{Kind: faults.ListStale}, Match: func(c faults.Call) bool { return c.N%3 == 0 }},
			)
			v2 := w.fleet("main@sha1:2", "v2", strategy)
			w.reconcile(v2, "main@sha1:2", 4)
			close(release)
			w.faults.Wait()
			w.faults.Set() // the late instance is there; the next reconcile sees it
			again, _ := w.reconcile(v2, "main@sha1:2", 1)
			if again.Retired != 1 || again.Provisioned != 0 {
				t.Errorf("the reconcile after the late instance appeared retired %d, provisioned %d: want it retired, nothing else", again.Retired, again.Provisioned)
			}
			bodies := load.Finish(t) // fails t on any failed request

			inj := w.faults.Injected()
			for _, k := range faults.Kinds {
				if inj[k] == 0 && k != faults.ProvisionInvalid && k != faults.ProvisionSlow {
					t.Errorf("no %s injected: %v", k, inj)
				}
			}
			late := w.faults.Late()
			if len(late) != 1 {
				t.Fatalf("late instances %v, want one", late)
			}
			if inst, _ := w.Process.List(context.Background()); slices.ContainsFunc(inst, func(in targets.Instance) bool { return in.ID == late[0] }) {
				t.Errorf("the late instance %s is still there", late[0])
			}
			insts, err := w.Process.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, in := range insts {
				ids = append(ids, in.ID)
				if in.Labels.Revision != "main@sha1:2" || in.State != targets.Running {
					t.Errorf("left behind: %s of %s, %s", in.ID, in.Labels.Revision, in.State)
				}
			}
			sort.Strings(ids)
			if len(ids) != 3 {
				t.Fatalf("the target holds %v, want exactly v2's 3 instances", ids)
			}
			mu.Lock()
			defer mu.Unlock()
			if maxLive > bound {
				t.Fatalf("%d instances lived at once, want at most %d", maxLive, bound)
			}
			t.Logf("%s: %d requests, 0 failed (%v); faults %v; at most %d live; late instance %s; left %v",
				strategy, load.Total(), bodies, inj, maxLive, late[0], ids)
		})
	}
}
