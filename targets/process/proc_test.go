//go:build linux

package process

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

func TestParseStat(t *testing.T) {
	// Fields 7 to 21 and 23 on do not matter here; 6 is the session.
	const mid = " 66 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"
	tests := []struct {
		name string
		in   string
		want procStat
		ok   bool
	}{
		{"plain", "123 (hello) S 1 777" + mid + " 4242 23 24\n", procStat{state: 'S', pgrp: 777, session: 66, startTime: 4242}, true},
		{"command with spaces and parens", "9 (a) b (c) Z 1 9" + mid + " 4242 23\n", procStat{state: 'Z', pgrp: 9, session: 66, startTime: 4242}, true},
		{"no command", "9 a S 1 9" + mid + " 4242 23\n", procStat{}, false},
		{"truncated", "9 (a) S 1 9 6 7", procStat{}, false},
		{"bad start time", "9 (a) S 1 9" + mid + " x 23\n", procStat{}, false},
		{"bad pgrp", "9 (a) S 1 x" + mid + " 4242 23\n", procStat{}, false},
		{"bad session", "9 (a) S 1 9 x 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 4242 23\n", procStat{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseStat(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestReadStatSelf(t *testing.T) {
	st, err := readStat(os.Getpid())
	if err != nil || st.startTime == 0 || st.exited() {
		t.Fatalf("readStat(self) = %+v, %v", st, err)
	}
}

// The reaper notices an exit with or without a pidfd, and halting it
// leaves the child alone.
func TestReaper(t *testing.T) {
	for _, pidfd := range []bool{true, false} {
		name := map[bool]string{true: "pidfd", false: "polling /proc"}[pidfd]
		t.Run(name, func(t *testing.T) {
			newReaper := func(cmd *exec.Cmd) *reaper {
				r := &reaper{stop: make(chan struct{})}
				if pidfd {
					if r.pidfd = openPidfd(cmd.Process.Pid); r.pidfd == nil {
						t.Skip("no pidfd on this kernel")
					}
				}
				return r
			}

			exits := exec.Command("true")
			if err := exits.Start(); err != nil {
				t.Fatal(err)
			}
			r := newReaper(exits)
			if !r.waitExit(exits.Process.Pid) {
				t.Error("waitExit = false for a child that exited")
			}
			r.halt()
			if err := exits.Wait(); err != nil {
				t.Error(err)
			}

			sleep := startSleep(t)
			r = newReaper(sleep)
			done := make(chan bool)
			go func() { done <- r.waitExit(sleep.Process.Pid) }()
			r.halt()
			if <-done {
				t.Error("waitExit = true after halt, for a child still running")
			}
			if !alive(sleep.Process.Pid) {
				t.Error("halting the reaper stopped the child")
			}
		})
	}
}

// Ids that cannot name an instance directory are unknown: Retire touches
// nothing.
func TestRetireInvalidIDs(t *testing.T) {
	state := t.TempDir()
	tgt := newTarget(t, state)
	_, untouched := strayFile(t, state, "outside", recordFile, "{}")
	for _, id := range []string{"", ".", "..", "../outside", ".hidden", "a/b", "/etc"} {
		if err := tgt.Retire(t.Context(), id); err != nil {
			t.Errorf("Retire(%q) = %v, want nil", id, err)
		}
	}
	untouched(t)
}

// A corrupt instance.json is skipped by List and refused by Retire, and
// left as it is.
func TestCorruptRecord(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	id, untouched := strayFile(t, tgt.dir, "hello-00000000-000000", recordFile, `{"version":1}`)
	if insts, err := tgt.List(t.Context()); err != nil || len(insts) != 0 {
		t.Errorf("List = %v, %v; want nothing", insts, err)
	}
	if err := tgt.Retire(t.Context(), id); err == nil {
		t.Error("Retire of a corrupt record = nil, want an error")
	}
	untouched(t)
}

// Retire sends SIGTERM first; if its context ends during the stop grace it
// leaves the instance in place, and retiring again finishes the job.
func TestRetireCancelled(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	scratch := t.TempDir()
	ready, mark := filepath.Join(scratch, "ready"), filepath.Join(scratch, "mark")
	inst := provision(t, tgt, &schema.Service{
		Name: "stubborn",
		Process: &schema.Process{Command: []string{"sh", "-c",
			`trap 'echo TERM >> "$MARK"' TERM; echo > "$READY"; while :; do sleep 1; done`}},
		Env:       map[string]string{"READY": ready, "MARK": mark},
		StopGrace: time.Hour,
	})
	exists := func(p string) func() bool {
		return func() bool { _, err := os.Stat(p); return err == nil }
	}
	eventually(t, "the script to set its trap", exists(ready))

	ctx, cancel := context.WithCancel(t.Context())
	retired := make(chan error, 1)
	go func() { retired <- tgt.Retire(ctx, inst.ID) }()
	eventually(t, "the script to note SIGTERM", exists(mark))
	cancel()
	if err := <-retired; err == nil {
		t.Fatal("Retire with a context that ends inside the stop grace = nil")
	}
	insts, err := tgt.List(t.Context())
	if err != nil || len(insts) != 1 || insts[0].State != targets.Running {
		t.Fatalf("after a cancelled Retire, List = %+v, %v; want the instance running", insts, err)
	}

	// Finish with no grace, so that the test does not wait an hour.
	rec := mustRecord(t, tgt, inst.ID)
	rec.StopGrace = 0
	if err := writeRecord(filepath.Join(tgt.dir, inst.ID), rec); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Retire(t.Context(), inst.ID); err != nil {
		t.Fatalf("second Retire: %v", err)
	}
	if alive(rec.PID) || groupAlive(rec.PID) {
		t.Error("process group still alive")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello-01234567-abcdef")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	l := labels("hello")
	l.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	want := &record{
		Version: recordVersion, ID: filepath.Base(dir), Labels: l,
		Command: []string{"/bin/hello", "-x"}, PID: 42, StartTime: 99, BootID: "b",
		Host: "127.0.0.1", Ports: map[string]int{"http": 1234}, StopGrace: duration(1500 * time.Millisecond),
	}
	if err := writeRecord(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Labels.CreatedAt.Equal(want.Labels.CreatedAt) || got.StopGrace != want.StopGrace ||
		got.PID != want.PID || got.StartTime != want.StartTime || got.Ports["http"] != 1234 {
		t.Errorf("round trip: got %+v, want %+v", got, want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, recordFile))
	t.Logf("%s", b)
}
