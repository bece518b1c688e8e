package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/prometheus/client_golang/prometheus"
)

func erofs(path string) error { return &os.PathError{Op: "open", Path: path, Err: syscall.EROFS} }

// TestStateWritesSayItOnce: failed writes of a state file are logged once
// per file and cause (not once per write), all counted, shown by
// problem() with the file and the cause, and cleared, with one line, when
// the file is written again.
func TestStateWritesSayItOnce(t *testing.T) {
	var logs bytes.Buffer
	dir := t.TempDir()
	w := newStateWrites(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	rev := filepath.Join(dir, "revisions.json")
	for range 50 {
		w.report(rev, fmt.Errorf("write revision record: %w", erofs(rev)))
	}
	if n := strings.Count(logs.String(), "cannot write a state file"); n != 1 {
		t.Errorf("50 failed writes logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), rev) || !strings.Contains(logs.String(), "read-only") {
		t.Errorf("the log does not name the file and the cause:\n%s", logs.String())
	}
	if err := w.problem(); err == nil || !strings.Contains(err.Error(), "revisions.json") || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("problem() = %v, want the file and the cause", err)
	}
	w.report(rev, &os.PathError{Op: "write", Path: rev, Err: syscall.ENOSPC}) // another cause: said again
	if n := strings.Count(logs.String(), "cannot write a state file"); n != 2 {
		t.Errorf("a new cause logged %d times in all, want 2", n)
	}
	reg := prometheus.NewRegistry()
	w.register(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[mf.GetName()+"{"+m.GetLabel()[0].GetValue()+"}"] = v
		}
	}
	if got["molt_state_write_errors_total{revisions.json}"] != 51 || got["molt_state_write_failing{revisions.json}"] != 1 {
		t.Errorf("metrics = %v, want 51 errors and failing for revisions.json", got)
	}
	w.report(rev, nil)
	if err := w.problem(); err != nil {
		t.Errorf("problem() = %v after the file was written", err)
	}
	if !strings.Contains(logs.String(), "state file written again") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
}

// TestStateWritesProbe: the probe sees a directory that cannot be written
// even when nothing else writes, and once it can write again it clears
// the failures of the other files that had the same directory-wide cause
// (not those of another cause).
func TestStateWritesProbe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	w := newStateWrites(dir, nil)
	w.probe() // the directory does not exist: cannot be written
	if err := w.problem(); err == nil || !strings.Contains(err.Error(), probeFile) {
		t.Fatalf("problem() = %v, want the probe's failure", err)
	}
	q := filepath.Join(dir, "github-queue.json")
	w.report(q, erofs(q))
	odd := filepath.Join(dir, "events.jsonl")
	w.report(odd, &os.PathError{Op: "open", Path: odd, Err: syscall.EIO})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.probe()
	err := w.problem()
	if err == nil || !strings.Contains(err.Error(), "events.jsonl") || strings.Contains(err.Error(), "github-queue.json") || strings.Contains(err.Error(), probeFile) {
		t.Errorf("problem() = %v, want only events.jsonl (a failure of its own)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, probeFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the probe file was left behind: %v", err)
	}
}

// TestEventsKeptInMemoryWhenTheFileCannotBeWritten: an event that cannot
// be written to the file is reported, still handed to subscribers and
// kept in the history served; the file gets the events again once it
// can be written.
func TestEventsKeptInMemoryWhenTheFileCannotBeWritten(t *testing.T) {
	dir := t.TempDir()
	s, err := openEvents(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var heard []error
	s.onWrite = func(_ string, err error) { heard = append(heard, err) }
	var got []apiEvent
	s.subscribe(func(ev apiEvent) { got = append(got, ev) })
	// The file's place is taken by a directory: every append fails.
	path := filepath.Join(dir, eventsFile)
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	s.append(apiEvent{Kind: "deploy", Fleet: "shop", Time: time.Now()})
	if len(heard) != 1 || heard[0] == nil {
		t.Fatalf("the failed write was not reported: %v", heard)
	}
	if len(got) != 1 || len(s.recent(0)) != 1 {
		t.Fatalf("the event was dropped: subscribers got %d, history holds %d", len(got), len(s.recent(0)))
	}
	os.Remove(path)
	s.append(apiEvent{Kind: "deploy", Fleet: "shop", Time: time.Now()})
	if heard[len(heard)-1] != nil {
		t.Fatalf("the write once it could be done reported %v", heard[len(heard)-1])
	}
	if ids := s.recent(0); len(ids) != 2 || ids[0].ID != 2 {
		t.Errorf("history = %+v, want the two events", ids)
	}
}

func TestHookLimitFlagsValidate(t *testing.T) {
	good := hookLimitFlags{maxRequests: 1, maxInflight: 1, bodyTimeout: 1, headerTimeout: 1, idleTimeout: 1}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*hookLimitFlags){
		func(h *hookLimitFlags) { h.maxRequests = 0 },
		func(h *hookLimitFlags) { h.maxInflight = -1 },
		func(h *hookLimitFlags) { h.bodyTimeout = 0 },
		func(h *hookLimitFlags) { h.headerTimeout = 0 },
		func(h *hookLimitFlags) { h.idleTimeout = 0 },
	} {
		h := good
		bad(&h)
		if err := h.validate(); err == nil || !strings.HasPrefix(err.Error(), "--webhook-") {
			t.Errorf("validate(%+v) = %v, want an error naming the flag", h, err)
		}
	}
}

// TestReadyzSaysTheStateDirectory: /readyz stays 200 (degraded, serving
// from memory) while the state directory cannot be written, and says so
// in its text (a "state:" line) and JSON (stateDir); nothing once it can.
func TestReadyzSaysTheStateDirectory(t *testing.T) {
	dir := t.TempDir()
	w := newStateWrites(dir, nil)
	r := &readiness{loop: func() reconciler.Status { return reconciler.Status{Fetched: true, Revision: "main@sha1:abc"} },
		timeout: time.Minute, state: w.problem}
	get := func(target string) (int, string) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec.Code, rec.Body.String()
	}
	q := filepath.Join(dir, "github-queue.json")
	w.report(q, erofs(q))
	code, text := get("/readyz")
	if code != 200 || !strings.Contains(text, "state: degraded: state directory "+dir+" cannot be written: the state directory is read-only") ||
		!strings.Contains(text, "github-queue.json") {
		t.Errorf("/readyz while the queue cannot be written: %d\n%s", code, text)
	}
	code, body := get("/readyz?format=json")
	var d readyDoc
	if err := json.Unmarshal([]byte(body), &d); err != nil || code != 200 || !d.Ready || !strings.Contains(d.State, "read-only") {
		t.Errorf("/readyz?format=json: %d %v\n%s", code, err, body)
	}
	w.report(q, nil)
	if _, text := get("/readyz"); strings.Contains(text, "state:") {
		t.Errorf("/readyz once the queue was written:\n%s", text)
	}
}
