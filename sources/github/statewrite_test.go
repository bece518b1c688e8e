package github

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// writeLog records what an OnWrite / ReportWrites hook heard.
type writeLog struct {
	mu  sync.Mutex
	got []error
}

func (w *writeLog) report(path string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, err)
}

func (w *writeLog) last() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.got) == 0 {
		return fmt.Errorf("nothing heard")
	}
	return w.got[len(w.got)-1]
}

// TestDeliveriesGoOnWhenTheFileCannotBeWritten: with OnWrite, a delivery
// file that cannot be written (here: its directory is gone) is reported,
// not an error, even at start; the ids are kept in memory and written
// whole once the file can be written again.
func TestDeliveriesGoOnWhenTheFileCannotBeWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "github-deliveries")
	w := &writeLog{}
	d := newDeliveries(10)
	if err := d.persist(path, slog.New(slog.DiscardHandler), w.report); err != nil {
		t.Fatalf("persist on a directory that cannot be written: %v, want it reported", err)
	}
	if w.last() == nil {
		t.Fatal("the failed write at start was not reported")
	}
	if !d.add("a") || d.add("a") {
		t.Fatal("deduplication does not work while the file cannot be written")
	}
	if w.last() == nil {
		t.Fatal("the failed write of an id was not reported")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if !d.add("b") {
		t.Fatal("b not new")
	}
	if err := w.last(); err != nil {
		t.Fatalf("the write once it could be done reported %v", err)
	}
	again := newDeliveries(10)
	if err := again.persist(path, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	if again.add("a") || again.add("b") {
		t.Error("the ids kept in memory were not written once the file could be written")
	}
}

// TestQueueReportsItsWrites: a queue file that cannot be written is
// reported to ReportWrites (and counted), the queue goes on in memory,
// and the next change writes it.
func TestQueueReportsItsWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	q := newTestQueue(t, dir, LogReporter{Logger: slog.New(slog.DiscardHandler)}, newFakeClock(), nil)
	w := &writeLog{}
	q.ReportWrites(w.report)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	q.Enqueue(statusReport("1111111111111111111111111111111111111111", "pending"))
	if w.last() == nil || q.Counts().SaveErrors != 1 || q.Counts().Pending != 1 {
		t.Fatalf("a failed save: heard %v, counts %+v", w.last(), q.Counts())
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	q.Enqueue(statusReport("2222222222222222222222222222222222222222", "pending"))
	if err := w.last(); err != nil {
		t.Fatalf("the save once it could be done reported %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, QueueFile)); err != nil {
		t.Errorf("the queue was not written once it could be: %v", err)
	}
}
