package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/molt-dev/molt/targets"
)

// List returns every instance recorded under Dir, of any fleet, dead ones
// included, in id order. An entry of Dir that is not a directory, is hidden,
// or has no valid instance.json is skipped (with a warning for a directory
// whose instance.json is missing or corrupt) and never touched. A missing
// Dir lists nothing. List has no side effects.
func (t *Target) List(ctx context.Context) ([]targets.Instance, error) {
	entries, err := os.ReadDir(t.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []targets.Instance
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rec, err := readRecord(filepath.Join(t.dir, e.Name()))
		if err != nil {
			t.log.Warn("skipping a directory that is not a valid instance", "dir", e.Name(), "err", err)
			continue
		}
		state, detail := t.observe(rec)
		out = append(out, targets.Instance{
			ID:        rec.ID,
			Labels:    rec.Labels,
			State:     state,
			Endpoints: rec.endpoints(),
			Detail:    detail,
		})
	}
	return out, nil
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
