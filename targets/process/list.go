package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/molt-dev/molt/targets"
)

// List returns every instance of Dir, of any fleet, dead ones included, in
// id order: those recorded under Dir, and those found in /proc (see
// "Labels in the environment"): a session leader whose environment names
// this Target's Dir is an instance, record or not. An instance found
// without a record is listed as running, and its record is written back
// into Dir (a cache: when that fails it is still listed, and List warns
// once); what is left of an instance whose leader died (the rest of its
// process group) is listed as dead, so that it is retired.
//
// Before it lists, List sweeps what a crashed Provision left (see sweep):
// it finishes the record of a staged instance whose process runs, and
// removes a staged directory whose process never started or is gone.
// An entry of Dir that is not a directory, is hidden, or has no valid
// instance.json is skipped (with a warning for a directory whose
// instance.json is missing or corrupt) and never touched. A missing Dir
// lists what /proc holds.
func (t *Target) List(ctx context.Context) ([]targets.Instance, error) {
	entries, err := os.ReadDir(t.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	if t.sweep(ctx, entries) > 0 {
		// the sweep moved staged instances into place: read Dir again
		if entries, err = os.ReadDir(t.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list instances: %w", err)
		}
	}
	snap, err := scanProcs()
	if err != nil {
		return nil, fmt.Errorf("list instances: read /proc: %w", err)
	}
	var out []targets.Instance
	var missing []string
	recorded := make(map[string]bool)
	pids := make(map[int]uint64) // leaders the records name: pid -> start time
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rec, err := readRecord(filepath.Join(t.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, e.Name()) // unless /proc has its instance
			continue
		}
		if err != nil {
			t.log.Warn("skipping a directory that is not a valid instance", "dir", e.Name(), "err", err)
			continue
		}
		recorded[rec.ID] = true
		if rec.BootID == t.bootID {
			pids[rec.PID] = rec.StartTime
		}
		state, detail := t.observe(rec)
		if state == targets.Running {
			t.adopt(rec) // while exits are watched (exits.go)
		}
		if state == targets.Dead && rec.BootID == t.bootID {
			if n := t.leftInGroup(snap, rec); n > 0 {
				detail += fmt.Sprintf("; %d process(es) of its group still run", n)
			}
		}
		out = append(out, instanceOf(rec, state, detail))
	}
	found := t.discover(snap, pids, recorded)
	for _, name := range missing {
		if _, ok := found[name]; !ok {
			t.log.Warn("skipping a directory that is not a valid instance", "dir", name, "err", "no "+recordFile)
		}
	}
	for _, f := range found {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f.rec.PID == 0 {
			out = append(out, instanceOf(f.rec, targets.Dead,
				fmt.Sprintf("exited; %d process(es) of its group still run", f.members)))
			continue
		}
		t.cache(f.rec)
		t.adopt(f.rec)
		out = append(out, instanceOf(f.rec, targets.Running, fmt.Sprintf("pid %d", f.rec.PID)))
	}
	slices.SortFunc(out, func(a, b targets.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func instanceOf(rec *record, state targets.State, detail string) targets.Instance {
	return targets.Instance{
		ID:        rec.ID,
		Labels:    rec.Labels,
		State:     state,
		Endpoints: rec.endpoints(),
		Detail:    detail,
	}
}

// observe says whether the process rec names is alive, and if not, why.
// It is alive only if a process with the recorded pid exists, started at
// the recorded time during the recorded boot, and has not exited.
func (t *Target) observe(rec *record) (targets.State, string) {
	if rec.BootID != t.bootID {
		return targets.Dead, "exited: the host rebooted"
	}
	st, err := readStat(rec.PID)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return targets.Dead, fmt.Sprintf("unknown: %v", err)
	case err == nil && st.startTime == rec.StartTime && !st.exited():
		return targets.Running, fmt.Sprintf("pid %d", rec.PID)
	}
	if how := t.exitOf(rec.ID); how != "" {
		return targets.Dead, "exited: " + how
	}
	if err == nil && st.startTime != rec.StartTime {
		return targets.Dead, fmt.Sprintf("exited (pid %d reused by another process)", rec.PID)
	}
	return targets.Dead, "exited"
}

// same reports whether the recorded process is still the one running with
// its pid (possibly exited but not reaped): only then may its group be
// signalled.
func (t *Target) same(rec *record) bool {
	if rec.BootID != t.bootID {
		return false
	}
	st, err := readStat(rec.PID)
	return err == nil && st.startTime == rec.StartTime
}
