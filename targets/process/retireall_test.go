package process

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
)

// RetireAll retires every instance as Retire does, in batches of bound
// that share one scan of /proc: 7 instances, one of them a leader that
// died while the rest of its group runs, with bound 3, take 3 scans (not
// 7); an unknown id is nothing to retire, a corrupt record an error that
// touches nothing; each retired instance's log is kept.
func TestRetireAllSharesScans(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	var ids []string
	for range 6 {
		inst := provision(t, tgt, helloService(nil))
		waitGet(t, inst.Endpoints["http"], "/healthz")
		ids = append(ids, inst.ID)
	}
	orphaned := provision(t, tgt, &schema.Service{
		Name:      "hello",
		Process:   &schema.Process{Command: []string{"sh", "-c", strconv.Quote(helloBin) + " & wait"}},
		Ports:     map[string]int{"http": 0},
		StopGrace: time.Second,
	})
	waitGet(t, orphaned.Endpoints["http"], "/healthz")
	rec := mustRecord(t, tgt, orphaned.ID)
	syscall.Kill(rec.PID, syscall.SIGKILL) // sh alone: hello lives on
	eventually(t, "sh to exit", func() bool { return !alive(rec.PID) })
	ids = append(ids, orphaned.ID)

	corrupt := "hello-0123456789abcdef-c0ffee"
	if err := os.MkdirAll(filepath.Join(tgt.dir, corrupt), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tgt.dir, corrupt, "instance.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := scans.Load()
	errs := tgt.RetireAll(t.Context(), append(ids, "hello-0000000000000000-000000", corrupt), 3)
	if n := scans.Load() - before; n != 3 {
		t.Errorf("%d scans of /proc for 9 ids in batches of 3, want 3", n)
	}
	for i, err := range errs[:len(ids)+1] {
		if err != nil {
			t.Errorf("retire %d: %v", i, err)
		}
	}
	if err := errs[len(errs)-1]; err == nil || !strings.Contains(err.Error(), corrupt) {
		t.Errorf("the corrupt record: %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(tgt.dir, corrupt, "instance.json")); err != nil {
		t.Errorf("the corrupt record was touched: %v", err)
	}
	if n := len(helloProcs(t, tgt)); n != 0 {
		t.Errorf("%d processes left", n)
	}
	kept := map[string]bool{}
	for _, rr := range tgt.retiredLogs() {
		kept[rr.ID] = true
	}
	for _, id := range ids {
		if !kept[id] {
			t.Errorf("the log of %s was not kept", id)
		}
	}
}

// TestRetireKeepsWhatItCannotSee: when /proc cannot be read for an
// instance's processes (here every read of its leader's stat fails), its
// retire fails and keeps its record, and the process runs on, rather than
// the retire dropping the record of a process it could not see (which left
// it running with nothing to name it); once /proc reads again, the retire
// stops it.
func TestRetireKeepsWhatItCannotSee(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	inst := provision(t, tgt, helloService(nil))
	waitGet(t, inst.Endpoints["http"], "/healthz")
	rec := mustRecord(t, tgt, inst.ID)
	statFault = func(pid int) error {
		if pid == rec.PID {
			return syscall.EMFILE
		}
		return nil
	}
	t.Cleanup(func() { statFault = nil })
	for _, retire := range []func() error{
		func() error { return tgt.Retire(t.Context(), inst.ID) },
		func() error { return tgt.RetireAll(t.Context(), []string{inst.ID}, 4)[0] },
	} {
		if err := retire(); err == nil || !strings.Contains(err.Error(), "cannot tell whether process") {
			t.Errorf("retire with /proc unreadable: %v, want an error", err)
		}
		if err := syscall.Kill(rec.PID, 0); err != nil { // (alive reads /proc)
			t.Fatalf("the instance's process is gone: %v", err)
		}
		if _, err := os.Stat(filepath.Join(tgt.dir, inst.ID)); err != nil {
			t.Fatalf("the instance's record is gone: %v", err)
		}
	}
	statFault = nil
	if err := tgt.Retire(t.Context(), inst.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the process to end", func() bool { return !alive(rec.PID) })
}
