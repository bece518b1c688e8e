//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
)

// stopOf finds the group of instance id as Retire does and stops it with
// grace, returning the group (for its counts) and how it was stopped.
func stopOf(t *testing.T, tgt *Target, id string, grace time.Duration) (*group, string) {
	t.Helper()
	g, err := tgt.groupOf(id, mustRecord(t, tgt, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	how, err := tgt.stop(t.Context(), g, grace)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	return g, how
}

// A retire whose process ends on SIGTERM returns on its exit: it looks at
// the group once before and once after, and never waits for a poll tick.
func TestRetireWaitsOnExit(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	inst := provision(t, tgt, helloService(nil))
	waitGet(t, inst.Endpoints["http"], "/healthz")
	rec := mustRecord(t, tgt, inst.ID)

	g, how := stopOf(t, tgt, inst.ID, 5*time.Second)
	if how != "terminated" {
		t.Errorf("stopped %q, want terminated", how)
	}
	if g.ticks != 0 || g.looks > 3 {
		t.Errorf("waited %d poll tick(s) over %d look(s), want none over at most 3", g.ticks, g.looks)
	}
	if alive(rec.PID) || groupAlive(rec.PID) {
		t.Errorf("process group %d still alive after stop", rec.PID)
	}
}

// A process of the instance that outlives its leader delays the retire
// until it is gone, whether it stayed in the leader's group (seen by
// looking at the group) or left it (held by its pidfd: no tick needed).
func TestRetireWaitsForMemberOutlivingLeader(t *testing.T) {
	tests := []struct {
		name   string
		spawn  string // how the leader starts the stubborn child
		ticked bool   // whether the wait must fall back to poll ticks
	}{
		{"in the group", "sh -c", true},
		{"in a session of its own", "setsid sh -c", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, t.TempDir())
			scratch := t.TempDir()
			ready, done := filepath.Join(scratch, "ready"), filepath.Join(scratch, "done")
			// The child ignores SIGTERM and ends 0.3 s after its leader
			// has died (it is reparented then, even before the leader is
			// reaped): never before the stop began, however slow the
			// machine.
			child := `'trap "" TERM; leader=$PPID; echo > "$READY"; while [ "$(cut -d" " -f4 /proc/$$/stat)" = "$leader" ]; do sleep 0.02; done; sleep 0.3; echo > "$DONE"'`
			inst := provision(t, tgt, &schema.Service{
				Name:      "lingering",
				Process:   &schema.Process{Command: []string{"sh", "-c", tc.spawn + " " + child + " & wait"}},
				Env:       map[string]string{"READY": ready, "DONE": done},
				StopGrace: 10 * time.Second,
			})
			eventually(t, "the child to set its trap", func() bool { _, err := os.Stat(ready); return err == nil })
			rec := mustRecord(t, tgt, inst.ID)

			g, how := stopOf(t, tgt, inst.ID, 10*time.Second)
			if how != "terminated" {
				t.Errorf("stopped %q, want terminated (the child ends on its own)", how)
			}
			if _, err := os.Stat(done); err != nil {
				t.Errorf("stop returned before the child that outlived its leader ended: %v", err)
			}
			if n := len(helloProcs(t, tgt)); n != 0 || alive(rec.PID) || groupAlive(rec.PID) {
				t.Errorf("%d process(es) of the instance left after stop", n)
			}
			if got := g.ticks > 0; got != tc.ticked {
				t.Errorf("waited %d poll tick(s); want ticks %v", g.ticks, tc.ticked)
			}
		})
	}
}
