package process

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/molt-dev/molt/targets"
)

// Exit notifications.
//
// While WatchExits runs, the Target reports every instance whose leader
// exits, whether it started the instance itself (its reaper sees the
// exit) or found it running (an earlier molt started it): every running
// leader that List reports, or that WatchExits finds recorded when it
// starts, is watched by pidfd (by /proc every reapPoll without one), by
// a reaper of its own that stops when the instance is retired or the
// Target closed. An exit that a retire causes is not reported. Exits
// coalesce: a burst of them within exitSettle is reported once.

// exitSettle is how long a reported exit waits for others to join it.
const exitSettle = 20 * time.Millisecond

// exitNotes are the exits seen and not yet reported (guarded by Target.mu).
type exitNotes struct {
	watching bool            // a WatchExits runs
	retiring map[string]bool // instances a Retire is ending: not reported
	ids      []string        // exits seen since the last report, in order
	wake     chan struct{}   // cap 1: ids has grown
}

// noted records that the leader of instance id exited. t.mu is held.
func (t *Target) noted(id string) {
	n := &t.notes
	if !n.watching || n.retiring[id] {
		return
	}
	n.ids = append(n.ids, id)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// WatchExits calls notify with the ids of the instances whose process
// exited, until ctx ends; it returns ctx's error. A burst of exits comes
// as one call; an instance's exit is reported once; the exits that
// Retire causes are not reported. notify runs on WatchExits's goroutine
// and should not block. One WatchExits runs at a time: a second one
// returns an error at once. Exits of instances this Target does not watch
// (an instance that died before WatchExits started, one started on
// another machine's Dir) are not reported: a poll still finds them.
func (t *Target) WatchExits(ctx context.Context, notify func(ids []string)) error {
	t.mu.Lock()
	if t.notes.watching {
		t.mu.Unlock()
		return errors.New("process target: exits are already watched")
	}
	t.notes.watching = true
	if t.notes.wake == nil {
		t.notes.wake = make(chan struct{}, 1)
	}
	wake := t.notes.wake
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.notes.watching = false
		t.notes.ids = nil
		t.mu.Unlock()
	}()
	t.adoptRecorded()
	return targets.Batches(ctx, wake, exitSettle, func() []string {
		t.mu.Lock()
		defer t.mu.Unlock()
		ids := t.notes.ids
		t.notes.ids = nil
		return ids
	}, notify)
}

// adoptRecorded watches the leader of every recorded instance that runs:
// those an earlier molt started, before the first List of this one.
func (t *Target) adoptRecorded() {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			t.log.Warn("cannot read the instances to watch their exits", "err", err)
		}
		return
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rec, err := readRecord(filepath.Join(t.dir, e.Name()))
		if err != nil || !t.same(rec) {
			continue
		}
		t.adopt(rec)
	}
}

// adopt watches the leader of rec, which List saw running, unless exits
// are not watched or the instance is watched already (its reaper).
func (t *Target) adopt(rec *record) {
	t.mu.Lock()
	skip := !t.notes.watching || t.closed || t.reapers[rec.ID] != nil || t.notes.retiring[rec.ID] || rec.PID <= 1
	t.mu.Unlock()
	if skip {
		return
	}
	r := &reaper{stop: make(chan struct{}), pidfd: openPidfd(rec.PID), adopted: true, start: rec.StartTime}
	// The pidfd names whatever had the pid when it was opened: rec's
	// process only if that one still runs now.
	st, err := readStat(rec.PID)
	gone := err != nil || st.startTime != rec.StartTime || st.exited()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.notes.watching || t.closed || t.reapers[rec.ID] != nil || t.notes.retiring[rec.ID] {
		r.halt()
		return
	}
	if gone { // it died since List looked
		r.halt()
		t.noted(rec.ID)
		return
	}
	id, pid := rec.ID, rec.PID
	t.reapers[id] = r
	t.wg.Go(func() {
		defer r.halt()
		if !r.waitExit(pid) {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.reapers[id] != r {
			return // retired meanwhile
		}
		delete(t.reapers, id)
		if !r.forgotten {
			t.noted(id)
		}
	})
}
