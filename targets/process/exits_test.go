//go:build linux

package process

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// watch runs tgt.WatchExits until the test ends, and returns what it
// reports.
func watch(t *testing.T, tgt *Target) <-chan []string {
	t.Helper()
	got := targetstest.WatchExits(t, tgt)
	eventually(t, "the watch to start", func() bool {
		tgt.mu.Lock()
		defer tgt.mu.Unlock()
		return tgt.notes.watching
	})
	return got
}

// next returns the next report, failing after 10 seconds.
func next(t *testing.T, got <-chan []string) []string {
	t.Helper()
	return targetstest.NextExit(t, got, 10*time.Second)
}

func sigkill(t *testing.T, tgt *Target, id string) {
	t.Helper()
	if err := syscall.Kill(mustRecord(t, tgt, id).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func watched(tgt *Target, id string) bool {
	tgt.mu.Lock()
	defer tgt.mu.Unlock()
	return tgt.reapers[id] != nil
}

// The exit of an instance is reported once, whether this Target started
// it or found it started by another (an earlier molt); a retired
// instance is no longer watched and its end is not reported.
func TestWatchExits(t *testing.T) {
	for _, adopted := range []bool{false, true} {
		name := map[bool]string{false: "child", true: "adopted"}[adopted]
		t.Run(name, func(t *testing.T) {
			state := t.TempDir()
			tgt := newTarget(t, state)
			a := provision(t, tgt, helloService(nil))
			b := provision(t, tgt, helloService(nil))
			c := provision(t, tgt, helloService(nil))
			if adopted {
				tgt.Close()
				tgt = newTarget(t, state)
			}
			got := watch(t, tgt)
			if adopted {
				// WatchExits adopts the recorded instances right after it
				// starts watching (what watch waits for).
				for _, in := range []string{a.ID, b.ID, c.ID} {
					eventually(t, in+", started by another Target, to be watched", func() bool { return watched(tgt, in) })
				}
			}

			// Retired: not reported, no longer watched.
			if err := tgt.Retire(t.Context(), a.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the retired instance unwatched", func() bool { return !watched(tgt, a.ID) })

			sigkill(t, tgt, b.ID)
			if ids := next(t, got); !slices.Equal(ids, []string{b.ID}) {
				t.Fatalf("reported %v, want [%s] (the retire is not an exit to report)", ids, b.ID)
			}
			// Once: the next report is of the next exit only.
			sigkill(t, tgt, c.ID)
			if ids := next(t, got); !slices.Equal(ids, []string{c.ID}) {
				t.Fatalf("reported %v, want [%s] only", ids, c.ID)
			}
			if adopted {
				eventually(t, "the exited instances unwatched", func() bool { return !watched(tgt, b.ID) && !watched(tgt, c.ID) })
			}
		})
	}
}

// A List of a Target that watches exits watches the running instances it
// lists, found or recorded after the watch started.
func TestListWatchesExits(t *testing.T) {
	state := t.TempDir()
	w := newTarget(t, state)
	got := watch(t, w)
	other := newTarget(t, state) // another molt: watches nothing
	inst := provision(t, other, helloService(nil))
	if watched(w, inst.ID) {
		t.Fatal("watched before any List")
	}
	if _, err := w.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !watched(w, inst.ID) {
		t.Fatal("a running instance that List saw is not watched")
	}
	sigkill(t, w, inst.ID)
	if ids := next(t, got); !slices.Equal(ids, []string{inst.ID}) {
		t.Fatalf("reported %v, want [%s]", ids, inst.ID)
	}
}

// Exits that come together are reported in one call.
func TestWatchExitsCoalesces(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	got := watch(t, tgt)
	tgt.mu.Lock()
	for _, id := range []string{"a", "b", "c"} {
		tgt.noted(id)
	}
	tgt.mu.Unlock()
	if ids := next(t, got); !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Fatalf("reported %v, want [a b c] in one call", ids)
	}
	select {
	case ids := <-got:
		t.Fatalf("a second report %v for one burst", ids)
	case <-time.After(10 * exitSettle):
	}
	if err := tgt.WatchExits(t.Context(), func([]string) {}); err == nil {
		t.Error("a second WatchExits at once did not fail")
	}
}
