package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Provisions in flight, and what a crash leaves of one.
//
// Provision assembles an instance in Dir/.provision-<id>/ and holds an
// exclusive flock on that directory until it has moved it into place:
//
//	intent.json    labels, command, ports, artifact, stop grace: written
//	               before the process starts
//	log            the process's output
//	instance.json  its record, once it runs
//
// A provision killed half-way leaves that directory unlocked (the kernel
// drops the lock with the process). The sweep, run by every List and by a
// Target's first Provision, takes each unlocked staged directory in turn
// (under its lock, so that two sweeps, of this molt or another, never work
// on one) and finishes it: when a live process carries its MOLT_INSTANCE
// the instance is complete, its record is written from that process and the
// directory is moved into place (its log with it); otherwise no process
// runs, or only what is left of one whose leader died, which is killed, and
// the directory is removed, its log kept in Dir/.logs like a retired
// instance's. A staged directory without intent.json is a provision that
// crashed before it started anything; it is removed once it is older than
// a minute (younger, it may be one that has not yet taken its lock).
const (
	stagePrefix   = ".provision-"
	retiredPrefix = ".retired-"
	intentFile    = "intent.json"
)

// lockDir opens dir and takes an exclusive flock on it without waiting.
// ok is false when another open file (of this process or another) holds
// it. The lock goes when the file is closed or the process dies.
func lockDir(dir string) (f *os.File, ok bool, err error) {
	f, err = os.Open(dir)
	if err != nil {
		return nil, false, err
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// writeIntent writes dir/intent.json: rec before it has a process.
func writeIntent(dir string, rec *record) error {
	return writeJSON(dir, intentFile, rec)
}

// readIntent reads dir/intent.json. A missing file matches fs.ErrNotExist.
func readIntent(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, intentFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", intentFile, err)
	}
	if r.ID == "" || r.ID != strings.TrimPrefix(filepath.Base(dir), stagePrefix) {
		return nil, fmt.Errorf("corrupt %s: id %q", intentFile, r.ID)
	}
	return &r, nil
}

// sweepFirst sweeps Dir once per Target, before its first Provision.
func (t *Target) sweepFirst(ctx context.Context) {
	t.mu.Lock()
	done := t.swept
	t.swept = true
	t.mu.Unlock()
	if done {
		return
	}
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return
	}
	t.sweep(ctx, entries)
}

// sweep finishes the staged directories among entries (of Dir) that no
// provision holds, and returns how many instances it moved into place.
func (t *Target) sweep(ctx context.Context, entries []os.DirEntry) int {
	t.mu.Lock()
	t.swept = true
	t.mu.Unlock()
	var stale []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagePrefix) {
			stale = append(stale, e.Name())
		}
	}
	if len(stale) == 0 {
		return 0
	}
	var snap snapshot
	var procs map[string][]member
	adopted := 0
	for _, name := range stale {
		if ctx.Err() != nil {
			break
		}
		path := filepath.Join(t.dir, name)
		lock, ok, err := lockDir(path)
		if err != nil || !ok {
			continue // gone meanwhile, or in flight
		}
		if !samePath(lock, path) {
			lock.Close() // moved into place or removed while we opened it
			continue
		}
		if procs == nil {
			if snap, err = scanProcs(); err != nil {
				lock.Close()
				t.log.Warn("cannot sweep staged instances", "err", err)
				return adopted
			}
			procs = t.byInstance(snap, nil)
		}
		if t.finish(path, procs[strings.TrimPrefix(name, stagePrefix)]) {
			adopted++
		}
		lock.Close()
	}
	return adopted
}

// finish adopts or removes the unlocked staged directory path, whose
// instance's live processes are ms, and reports whether it adopted it.
func (t *Target) finish(path string, ms []member) bool {
	id := strings.TrimPrefix(filepath.Base(path), stagePrefix)
	intent, ierr := readIntent(path)
	if l, ok := oldestLeader(ms); ok {
		rec, err := t.envRecord(l.vars, l.pid, l.startTime, readArgv(l.pid))
		if err == nil {
			err = writeRecord(path, rec)
		}
		if err == nil {
			err = os.Rename(path, filepath.Join(t.dir, id))
		}
		if err != nil {
			t.log.Warn("cannot adopt an instance a crashed provision left staged", "instance", id, "err", err)
			return false
		}
		t.log.Info("adopted an instance a crashed provision left staged", "instance", id,
			"service", rec.Labels.Service, "pid", rec.PID)
		return true
	}
	if ierr != nil && len(ms) == 0 {
		fi, err := os.Stat(path)
		if err != nil || time.Since(fi.ModTime()) < staleTemp {
			return false // maybe a provision that has not yet taken its lock
		}
	}
	if len(ms) > 0 {
		// the leader died, the rest of its group did not: it never served
		killAll(ms)
	}
	if intent != nil {
		t.keepLog(path, intent)
	}
	if err := os.RemoveAll(path); err != nil {
		t.log.Warn("cannot remove what a crashed provision left staged", "dir", filepath.Base(path), "err", err)
		return false
	}
	t.log.Info("removed what a crashed provision left staged", "instance", id, "killed", len(ms))
	return false
}

// samePath reports whether the open f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}
