package docker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
)

// logText reads the whole log of id as text lines.
func logText(t *testing.T, tgt targets.LogReader, id string, opts targets.LogOptions) []targets.LogLine {
	t.Helper()
	var out []targets.LogLine
	if err := tgt.Logs(t.Context(), id, opts, func(l targets.LogLine) error {
		out = append(out, l)
		return nil
	}); err != nil {
		t.Fatalf("Logs(%s): %v", id, err)
	}
	return out
}

func hasLine(lines []targets.LogLine, s string) bool {
	for _, l := range lines {
		if strings.Contains(l.Text, s) {
			return true
		}
	}
	return false
}

// A container's log comes from the engine, timed; a follow ends when the
// container stops; Retire keeps a copy in the log directory, which Logs
// and LogInstances read once the container is gone.
func TestLogs(t *testing.T) {
	env := setup(t)
	tgt := newTarget(t, docker.Options{})
	dir := filepath.Join(t.TempDir(), "logs")
	tgt.SetLogDir(dir, 0)
	fleet := fleetName()
	inst := provision(t, tgt, spec(t, tgt, fleet, service("web", env.ref, map[string]string{"VERSION": "v1"}), true))
	waitAnswer(t, inst, "v1")

	lines := logText(t, tgt, inst.ID, targets.LogOptions{})
	if !hasLine(lines, "version v1 listening on") {
		t.Fatalf("Logs = %+v, want the app's startup line", lines)
	}
	if lines[0].Time.IsZero() {
		t.Errorf("a line from the engine has no time: %+v", lines[0])
	}
	if got := logText(t, tgt, inst.ID, targets.LogOptions{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("Logs since in an hour = %+v, want nothing", got)
	}

	var (
		mu       sync.Mutex
		followed []targets.LogLine
	)
	done := make(chan error, 1)
	go func() {
		done <- tgt.Logs(context.Background(), inst.ID, targets.LogOptions{Follow: true, Tail: 1}, func(l targets.LogLine) error {
			mu.Lock()
			defer mu.Unlock()
			followed = append(followed, l)
			return nil
		})
	}()
	if err := tgt.Retire(t.Context(), inst.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the follow did not end when the container stopped")
	}
	mu.Lock()
	if !hasLine(followed, "stopped") {
		t.Errorf("the follow read %+v, want the app's last line", followed)
	}
	mu.Unlock()

	li, err := tgt.LogInstances(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var retired *targets.LogInstance
	for i := range li {
		if li[i].ID == inst.ID {
			retired = &li[i]
		}
	}
	if retired == nil || retired.Retired.IsZero() || retired.Labels.Fleet != fleet {
		t.Fatalf("LogInstances = %+v, want %s retired", li, inst.ID)
	}
	kept := logText(t, tgt, inst.ID, targets.LogOptions{})
	if !hasLine(kept, "listening on") || !hasLine(kept, "stopped") {
		t.Errorf("kept log = %+v, want the startup and the stop", kept)
	}
	if got := logText(t, tgt, inst.ID, targets.LogOptions{Tail: 1}); len(got) != 1 || got[0].Time.IsZero() {
		t.Errorf("kept log, tail 1 = %+v", got)
	}

	other := newTarget(t, docker.Options{})
	err = other.Logs(t.Context(), inst.ID, targets.LogOptions{}, func(targets.LogLine) error { return nil })
	if !errors.Is(err, targets.ErrNoLog) {
		t.Errorf("Logs of a retired container without a log directory: %v, want ErrNoLog", err)
	}
}
