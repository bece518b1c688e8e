package reconciler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flakyWriter fails every write with err while err is set.
type flakyWriter struct{ err error }

func (f *flakyWriter) write(path, what string, v any) error {
	if f.err != nil {
		return fmt.Errorf("write %s: %w", what, &os.PathError{Op: "open", Path: path, Err: f.err})
	}
	return writeState(path, what, v)
}

// reports records what a WriteReporter heard.
type reports struct{ got []error }

func (r *reports) report(path string, err error) {
	if !strings.HasSuffix(path, ".json") {
		err = fmt.Errorf("reported for %q, not a record's file", path)
	}
	r.got = append(r.got, err)
}

func (r *reports) last() error { return r.got[len(r.got)-1] }

// TestRevisionsGoOnFromMemory: with a reporter, a revision record whose
// file cannot be written (a read-only or full state directory) keeps the
// failure in memory, so the failed revision is still known to have
// failed (no retry loop), reports the error instead of returning it, and
// writes the record at its first use once the file can be written.
func TestRevisionsGoOnFromMemory(t *testing.T) {
	for _, cause := range []error{syscall.EROFS, syscall.ENOSPC} {
		dir := t.TempDir()
		w := &flakyWriter{err: cause}
		rep := &reports{}
		r := NewRevisions(dir, nil)
		r.write = w.write
		r.ReportWrites(rep.report)
		fl := Failure{Fleet: "shop", Service: "web", Revision: "r2", Hash: "h2", Reason: "unhealthy"}
		if err := r.RecordFailure(fl); err != nil {
			t.Fatalf("%v: RecordFailure returned %v, want it reported instead", cause, err)
		}
		if !errors.Is(rep.last(), cause) {
			t.Fatalf("%v: the reporter heard %v", cause, rep.last())
		}
		got, err := r.ForRevision("shop", "r2")
		if err != nil || got["web"].Reason != "unhealthy" {
			t.Fatalf("%v: ForRevision = %v, %v: the failure is forgotten", cause, got, err)
		}
		if err := r.RecordGood("shop", "web", Good{Revision: "r1", Hash: "h1", Replicas: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "revisions.json")); !os.IsNotExist(err) {
			t.Fatalf("%v: a file was written while writes failed: %v", cause, err)
		}
		w.err = nil // the directory can be written again
		if g, err := r.Good("shop"); err != nil || g["web"].Revision != "r1" {
			t.Fatalf("%v: Good = %v, %v", cause, g, err)
		}
		if rep.last() != nil {
			t.Errorf("%v: the reporter did not hear the write that succeeded: %v", cause, rep.last())
		}
		// A new record of the same directory (a restart) sees both.
		again := NewRevisions(dir, nil)
		if f, _ := again.ForRevision("shop", "r2"); f["web"].Hash != "h2" {
			t.Errorf("%v: the failure was not written once it could be: %v", cause, f)
		}
		if g, _ := again.Good("shop"); g["web"].Replicas != 2 {
			t.Errorf("%v: the good revision was not written once it could be: %v", cause, g)
		}
	}
}

// TestRevisionsWithoutReporterReturnTheError: without a reporter (molt
// apply), a write that fails is an error, as before.
func TestRevisionsWithoutReporterReturnTheError(t *testing.T) {
	r := NewRevisions(t.TempDir(), nil)
	r.write = (&flakyWriter{err: syscall.EROFS}).write
	err := r.RecordFailure(Failure{Fleet: "shop", Service: "web", Revision: "r2"})
	if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "revisions.json") {
		t.Errorf("RecordFailure = %v, want the write error naming the file", err)
	}
}

// TestDecisionsGoOnFromMemory: the same for operators' decisions.
func TestDecisionsGoOnFromMemory(t *testing.T) {
	dir := t.TempDir()
	w := &flakyWriter{err: syscall.EROFS}
	rep := &reports{}
	d := NewDecisions(dir, nil)
	d.writeFile = w.write
	d.ReportWrites(rep.report)
	if err := d.Record(Decision{Fleet: "shop", Service: "web", Action: ActionPromote}); err != nil {
		t.Fatalf("Record returned %v, want it reported instead", err)
	}
	if !errors.Is(rep.last(), syscall.EROFS) {
		t.Fatalf("the reporter heard %v", rep.last())
	}
	if ds, err := d.For("shop"); err != nil || ds["web"].Action != ActionPromote {
		t.Fatalf("For = %v, %v: the decision is forgotten", ds, err)
	}
	w.err = nil
	if ds, err := d.For("shop"); err != nil || ds["web"].Action != ActionPromote || rep.last() != nil {
		t.Fatalf("For = %v, %v, last report %v", ds, err, rep.last())
	}
	if ds, _ := NewDecisions(dir, nil).For("shop"); ds["web"].Action != ActionPromote {
		t.Errorf("the decision was not written once it could be: %v", ds)
	}
	if err := d.Drop("shop", "web"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := NewDecisions(dir, nil).For("shop"); len(ds) != 0 {
		t.Errorf("a dropped decision is still written: %v", ds)
	}
}

// TestUnreadableRecordThatCannotBeMovedAside: a failure record that
// cannot be read, in a directory where it cannot be moved aside either
// (read-only: here its aside name is taken by a directory), never blocks
// a reconcile: the record is unknown, which means nothing failed.
func TestUnreadableRecordThatCannotBeMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "revisions.json")
	if err := os.WriteFile(path, []byte("{garbled"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	for s := now - 1; s <= now+3; s++ { // whichever second the read happens in
		if err := os.MkdirAll(filepath.Join(fmt.Sprintf("%s.unreadable-%d", path, s), "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRevisions(dir, nil)
	f, err := r.ForRevision("shop", "r2")
	if err != nil || len(f) != 0 {
		t.Fatalf("ForRevision on an unreadable record that cannot be moved aside = %v, %v; want no failure and no error", f, err)
	}
	if g, err := r.Good("shop"); err != nil || len(g) != 0 {
		t.Fatalf("Good = %v, %v", g, err)
	}
}
