package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// retirePoll is how often a retire looks whether the process is gone.
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
// It sends SIGTERM to the instance's process group, waits up to the
// recorded stop grace for the group to end, then sends SIGKILL. The group
// is signalled only while it is the instance's: its leader is the recorded
// process (same pid, start time and boot), or, once the leader has exited,
// the group has been seen alive at every look since (50ms apart; the
// kernel does not reuse a group's id while one member lives). A process
// that merely reuses the recorded pid is never signalled.
//
// Retiring an unknown id, an instance already retired, or a directory of
// Dir that is not an instance (no instance.json) returns nil and touches
// nothing; a corrupt instance.json is an error and is not touched either.
// If ctx ends while waiting, Retire returns its error and leaves the
// instance directory in place (SIGTERM has been sent): retiring again
// finishes the job.
func (t *Target) Retire(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	dir := filepath.Join(t.dir, id)
	rec, err := readRecord(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retire %s: %w", id, err)
	}
	how, err := t.stop(ctx, rec)
	if err != nil {
		return fmt.Errorf("retire %s: %w", id, err)
	}
	// Rename first, so the instance leaves List at once even if removing
	// its files fails half-way; hidden entries are never listed.
	tomb := filepath.Join(t.dir, ".retired-"+id)
	os.RemoveAll(tomb)
	if err := os.Rename(dir, tomb); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // retired concurrently
		}
		return fmt.Errorf("retire %s: %w", id, err)
	}
	t.forget(id)
	t.keepLog(tomb, rec)
	if err := os.RemoveAll(tomb); err != nil {
		return fmt.Errorf("retire %s: %w", id, err)
	}
	t.log.Info("retired instance", "instance", id, "service", rec.Labels.Service, "stop", how)
	if _, err := t.PruneArtifacts(ctx); err != nil {
		t.log.Warn("cannot prune the artifact store", "err", err)
	}
	if _, err := t.RotateLogs(ctx); err != nil {
		t.log.Warn("cannot rotate instance logs", "err", err)
	}
	return nil
}

// stop ends the process group of rec and says how.
func (t *Target) stop(ctx context.Context, rec *record) (string, error) {
	if !t.same(rec) {
		return "not running", nil
	}
	pgid := rec.PID // a session leader leads its own group
	if err := signalGroup(pgid, syscall.SIGTERM); err != nil {
		return "", fmt.Errorf("terminate: %w", err)
	}
	ended, err := t.waitGroup(ctx, rec, time.Duration(rec.StopGrace))
	if err != nil {
		return "", err
	}
	if ended {
		return "terminated", nil
	}
	if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
		return "", fmt.Errorf("kill: %w", err)
	}
	ended, err = t.waitGroup(ctx, rec, killWait)
	if err != nil {
		return "", err
	}
	if !ended {
		return "", fmt.Errorf("process group %d still alive %s after SIGKILL", pgid, killWait)
	}
	return "killed after the stop grace", nil
}

// waitGroup waits up to d for the process group of rec to end. It returns
// true as soon as it has, false when d has passed, and ctx's error if ctx
// ends first.
func (t *Target) waitGroup(ctx context.Context, rec *record, d time.Duration) (bool, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(retirePoll)
	defer tick.Stop()
	for {
		if !t.groupLive(rec) {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// groupLive reports whether the recorded process, or any process of its
// group, is alive.
func (t *Target) groupLive(rec *record) bool {
	if st, err := readStat(rec.PID); err == nil && st.startTime == rec.StartTime && !st.exited() {
		return true
	}
	return groupAlive(rec.PID)
}
