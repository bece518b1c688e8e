package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateWrites follows the writes of serve's state files (the revision
// and decision records, the GitHub queue, the delivery ids, the events,
// the notification queue) and of a probe file, so that a state directory
// that cannot be written (mounted read-only, full) is said clearly and
// once, counted, and shown on /readyz, while serve goes on from memory:
// every writer keeps what it could not write and writes it when it can.
//
// It logs an error naming the file and the cause when a file's writes
// start failing (or fail for another cause), and one line when they
// succeed again; not at every failed write. Safe for concurrent use;
// report is quick and takes no other lock, so writers may call it with
// their own locks held.
type stateWrites struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	failing map[string]stateWriteFailure // by file, relative to dir
	total   map[string]int64             // failed writes by file, for the metric
}

type stateWriteFailure struct {
	err   error
	cause string
	since time.Time
}

// probeFile is written, synced and removed by probe.
const probeFile = ".molt-write-check"

func newStateWrites(dir string, log *slog.Logger) *stateWrites {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &stateWrites{dir: dir, log: log, failing: map[string]stateWriteFailure{}, total: map[string]int64{}}
}

// report records the outcome of one write of path (err nil: written).
func (s *stateWrites) report(path string, err error) {
	file := s.name(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, was := s.failing[file]
	if err == nil {
		if was {
			delete(s.failing, file)
			s.log.Info("state file written again", "file", filepath.Join(s.dir, file), "failing-since", old.since.Format(time.RFC3339))
		}
		return
	}
	s.total[file]++
	cause := writeCause(err)
	if was && old.cause == cause {
		return
	}
	s.failing[file] = stateWriteFailure{err: err, cause: cause, since: time.Now()}
	s.log.Error("cannot write a state file: serve goes on from memory and writes it when it can",
		"file", filepath.Join(s.dir, file), "cause", cause, "error", err)
}

// name is the file's name relative to the state directory: a bounded set
// of names, fit for a metric label.
func (s *stateWrites) name(path string) string {
	if rel, err := filepath.Rel(s.dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(rel)
	}
	return filepath.Base(path)
}

// writeCause names why a write failed, in a few words.
func writeCause(err error) string {
	switch {
	case errors.Is(err, syscall.EROFS):
		return "the state directory is read-only"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "the state directory is full"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission denied"
	}
	return "write failed"
}

// dirWide reports whether a cause is the directory's rather than one
// file's: a probe written again clears it for every file.
func dirWide(cause string) bool {
	return cause == "the state directory is read-only" || cause == "the state directory is full"
}

// problem is what /readyz says about the state directory: nil when every
// file was written last time, or an error naming the failing files, the
// cause and since when. serve stays ready: it goes on from memory.
func (s *stateWrites) problem() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failing) == 0 {
		return nil
	}
	files := make([]string, 0, len(s.failing))
	for f := range s.failing {
		files = append(files, f)
	}
	slices.Sort(files)
	first := s.failing[files[0]]
	var parts []string
	for _, f := range files {
		parts = append(parts, fmt.Sprintf("%s (%s since %s)", f, s.failing[f].cause, s.failing[f].since.Format(time.RFC3339)))
	}
	return fmt.Errorf("state directory %s cannot be written: %s; serving from memory: %s", s.dir, first.cause, strings.Join(parts, ", "))
}

// counts returns the failed writes so far, by file.
func (s *stateWrites) counts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.total))
	for f, n := range s.total {
		out[f] = n
	}
	return out
}

// probe writes a few bytes to a file of the state directory, syncs and
// removes it: a directory mounted read-only or full is seen even when no
// state file happens to change. Once it can be written again, the
// failures of other files with the same directory-wide cause are cleared
// too (their writers write at their next change, from memory).
func (s *stateWrites) probe() {
	path := filepath.Join(s.dir, probeFile)
	err := writeProbe(path)
	s.report(path, err)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for f, fl := range s.failing {
		if dirWide(fl.cause) {
			delete(s.failing, f)
			s.log.Info("state file can be written again", "file", filepath.Join(s.dir, f), "failing-since", fl.since.Format(time.RFC3339))
		}
	}
}

func writeProbe(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	_, err = f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " molt checks that the state directory can be written\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// run probes every interval until ctx ends.
func (s *stateWrites) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.probe()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// register exports molt_state_write_errors_total{file} and
// molt_state_write_failing{file}.
func (s *stateWrites) register(reg prometheus.Registerer) {
	reg.MustRegister(&stateWritesCollector{s: s,
		total: prometheus.NewDesc("molt_state_write_errors_total",
			"Writes of state files that failed (a read-only or full state directory), by file relative to the state directory.",
			[]string{"file"}, nil),
		failing: prometheus.NewDesc("molt_state_write_failing",
			"1 for each state file whose last write failed: serve goes on from memory until it can write it.",
			[]string{"file"}, nil)})
}

type stateWritesCollector struct {
	s              *stateWrites
	total, failing *prometheus.Desc
}

func (c *stateWritesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.total
	ch <- c.failing
}

func (c *stateWritesCollector) Collect(ch chan<- prometheus.Metric) {
	for f, n := range c.s.counts() {
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(n), f)
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for f := range c.s.failing {
		ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, 1, f)
	}
}
