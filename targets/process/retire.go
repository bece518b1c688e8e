package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/molt-dev/molt/targets/crash"
)

const (
	// retirePoll is how often a retire looks whether the process is gone
	// when no pidfd tells it (see group.wait); with pidfds it wakes on
	// each exit instead.
	retirePoll = 50 * time.Millisecond
	// killWait bounds the wait for a process group to go after SIGKILL.
	killWait = 10 * time.Second
)

// Retire stops instance id and removes its directory, but for its log,
// which it keeps in Dir/.logs/<id> for Options.KeepLogs (see Logs). Then
// it prunes the artifact store (see PruneArtifacts), so that an executable
// no instance runs any more goes too, rotates the logs over their cap and
// prunes the expired kept logs (see RotateLogs); a failed prune is
// logged, not returned.
//
// It ends every process of the instance: it sends SIGTERM to the
// instance's process group and to every live process that carries the
// instance's MOLT_INSTANCE and this Target's Dir in its environment (a
// child that left the group, or the rest of the group once its leader has
// died), waits up to the stop grace for all of them to end, then sends
// SIGKILL. The group is signalled only while it is the instance's: its
// leader is the recorded process (same pid, start time and boot), or one
// of its members carries the instance's id, and it has been seen alive at
// every look since (the kernel does not reuse a group's id while one
// member lives; see group.wait for when it looks). A process that merely
// reuses the recorded pid
// is never signalled. An instance without a record (Dir lost) is found
// in /proc the same way, and stopped with the stop grace it carries.
//
// Retiring an unknown id, an instance already retired, or a directory of
// Dir that is not an instance (no instance.json, no process of that id)
// returns nil and touches nothing; a corrupt instance.json is an error and
// is not touched either. If ctx ends while waiting, Retire returns its
// error and leaves the instance directory in place (SIGTERM has been
// sent): retiring again finishes the job.
func (t *Target) Retire(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	rec, err := readInstanceRecord(t.dir, id)
	if err != nil {
		return err
	}
	g, err := t.groupOf(id, rec)
	if err != nil {
		return fmt.Errorf("retire %s: %w", id, err)
	}
	if retired, err := t.retireGroup(ctx, id, rec, g); err != nil || !retired {
		return err
	}
	t.tidy(ctx)
	return nil
}

// RetireAll retires the instances ids as Retire does, at most bound at
// once, and returns the error of each (nil: retired, or nothing to
// retire). They go in batches of bound that share one scan of /proc, and
// the artifact store is pruned and the logs rotated once, at the end:
// retiring n instances one by one reads /proc and the kept logs n times.
func (t *Target) RetireAll(ctx context.Context, ids []string, bound int) []error {
	bound = max(bound, 1)
	errs := make([]error, len(ids))
	tidy := false
	for lo := 0; lo < len(ids); lo += bound {
		batch := ids[lo:min(lo+bound, len(ids))]
		if err := ctx.Err(); err != nil {
			for i := range batch {
				errs[lo+i] = err
			}
			continue
		}
		recs := make([]*record, len(batch))
		want := make(map[string]bool, len(batch))
		for i, id := range batch {
			if !validID(id) {
				continue
			}
			rec, err := readInstanceRecord(t.dir, id)
			if err != nil {
				errs[lo+i] = err
				continue
			}
			recs[i], want[id] = rec, true
		}
		snap, err := scanProcs()
		if err != nil {
			for i := range batch {
				if errs[lo+i] == nil && want[batch[i]] {
					errs[lo+i] = fmt.Errorf("retire %s: read /proc: %w", batch[i], err)
				}
			}
			continue
		}
		procs := t.byInstance(snap, func(id string) bool { return want[id] })
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, id := range batch {
			if !want[id] {
				continue
			}
			wg.Go(func() {
				retired, err := t.retireGroup(ctx, id, recs[i], t.groupFrom(recs[i], procs[id]))
				mu.Lock()
				errs[lo+i], tidy = err, tidy || retired
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if tidy {
		t.tidy(ctx)
	}
	return errs
}

// readInstanceRecord reads the record of instance id (nil: there is none).
func readInstanceRecord(dir, id string) (*record, error) {
	rec, err := readRecord(filepath.Join(dir, id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("retire %s: %w", id, err)
	}
	return rec, nil
}

// retireGroup stops g, the processes of instance id (rec: its record, nil
// when there is none), and removes the instance's directory, keeping its
// log. It reports whether there was anything to retire. It closes g.
func (t *Target) retireGroup(ctx context.Context, id string, rec *record, g *group) (bool, error) {
	defer g.close()
	dir := filepath.Join(t.dir, id)
	if rec == nil {
		if g.empty() {
			return false, nil // not an instance, or already gone
		}
		if rec = t.recordOf(g); rec == nil {
			rec = &record{ID: id} // stop grace 0: TERM, then KILL
		}
	} else if g.empty() {
		if err := t.recordGone(rec); err != nil {
			return false, fmt.Errorf("retire %s: %w", id, err)
		}
	}
	crash.At("retire.before-stop")
	t.expectExit(id) // not an exit to report (exits.go)
	how, err := t.stop(ctx, g, time.Duration(rec.StopGrace))
	if err != nil {
		return false, fmt.Errorf("retire %s: %w", id, err)
	}
	crash.At("retire.after-stop")
	// Rename first, so the instance leaves List at once even if removing
	// its files fails half-way; hidden entries are never listed.
	tomb := filepath.Join(t.dir, retiredPrefix+id)
	os.RemoveAll(tomb)
	if err := os.Rename(dir, tomb); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("retire %s: %w", id, err)
		}
		tomb = "" // retired concurrently, or never recorded
	}
	t.forget(id)
	if tomb != "" {
		if rec.Labels.Service != "" {
			t.keepLog(tomb, rec)
		}
		if err := os.RemoveAll(tomb); err != nil {
			return false, fmt.Errorf("retire %s: %w", id, err)
		}
	}
	t.log.Info("retired instance", "instance", id, "service", rec.Labels.Service, "stop", how)
	return true, nil
}

// recordGone checks that the recorded leader of rec, whose group was
// found empty, no longer runs. It is an error when /proc cannot tell (a
// read that failed otherwise than for a process that is gone) or when the
// leader runs after all: a retire never drops the record of a process it
// could not see.
func (t *Target) recordGone(rec *record) error {
	if rec.PID <= 0 || rec.BootID != t.bootID {
		return nil // not started, or before this boot
	}
	st, err := readStat(rec.PID)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ESRCH):
		return nil
	case err != nil:
		return fmt.Errorf("cannot tell whether process %d still runs: %w", rec.PID, err)
	case st.startTime != rec.StartTime || st.exited():
		return nil // its pid is another process's now, or it is a zombie
	}
	return fmt.Errorf("process %d still runs, but its group was not found", rec.PID)
}

// tidy prunes the artifact store of what no instance runs any more and
// rotates the logs (after retires); failures are logged, not returned.
func (t *Target) tidy(ctx context.Context) {
	if _, err := t.PruneArtifacts(ctx); err != nil {
		t.log.Warn("cannot prune the artifact store", "err", err)
	}
	if _, err := t.RotateLogs(ctx); err != nil {
		t.log.Warn("cannot rotate instance logs", "err", err)
	}
}

// recordOf rebuilds the record of an instance found only in /proc from
// the environment of one of its processes (nil when none is readable).
func (t *Target) recordOf(g *group) *record {
	for _, m := range g.members {
		vars := molts(readEnviron(m.pid), t.dir)
		if vars == nil {
			continue
		}
		if rec, err := t.envRecord(vars, 0, 0, nil); err == nil {
			return rec
		}
	}
	return nil
}

// stop ends every process of g and says how.
func (t *Target) stop(ctx context.Context, g *group, grace time.Duration) (string, error) {
	if g.empty() {
		return "not running", nil
	}
	if err := g.signal(syscall.SIGTERM); err != nil {
		return "", fmt.Errorf("terminate: %w", err)
	}
	// A stopped process (SIGSTOP, a debugger let go) acts on SIGTERM only
	// once it runs again: let it, so that it stops gracefully too.
	_ = g.signal(syscall.SIGCONT)
	ended, err := g.wait(ctx, grace)
	if err != nil {
		return "", err
	}
	if ended {
		return "terminated", nil
	}
	if err := g.signal(syscall.SIGKILL); err != nil {
		return "", fmt.Errorf("kill: %w", err)
	}
	ended, err = g.wait(ctx, killWait)
	if err != nil {
		return "", err
	}
	if !ended {
		return "", fmt.Errorf("process group %d still alive %s after SIGKILL", g.pgid, killWait)
	}
	return "killed after the stop grace", nil
}
