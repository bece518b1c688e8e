//go:build linux

package process

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
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// stepScript writes 100 numbered lines, then one more line each time the
// test creates the file $STEPS/goN (N from 2), announcing each with $STEPS/N.
const stepScript = `i=0; while [ $i -lt 100 ]; do echo "first $i ........................................"; i=$((i+1)); done
: > "$STEPS/1"
n=2; while :; do
  while [ ! -e "$STEPS/go$n" ]; do sleep 0.02; done
  echo "step $n"; : > "$STEPS/$n"; n=$((n+1))
done`

type stepper struct {
	t   *testing.T
	dir string
}

// step lets the script write its line n and waits until it has.
func (s stepper) step(n int) {
	s.t.Helper()
	if n > 1 {
		if err := os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("go%d", n)), nil, 0o640); err != nil {
			s.t.Fatal(err)
		}
	}
	eventually(s.t, fmt.Sprintf("the script to write step %d", n), func() bool {
		_, err := os.Stat(filepath.Join(s.dir, fmt.Sprint(n)))
		return err == nil
	})
}

func newLogTarget(t *testing.T, max int64) *Target {
	t.Helper()
	tgt, err := New(Options{
		Dir:        filepath.Join(t.TempDir(), "instances"),
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogMaxSize: max,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

func stepService(dir string) *schema.Service {
	return &schema.Service{
		Name:      "steps",
		Process:   &schema.Process{Command: []string{"sh", "-c", stepScript}},
		Env:       map[string]string{"STEPS": dir},
		StopGrace: time.Second,
	}
}

// stepInstance provisions the step script on a target that rotates
// nothing by itself, and lets it write its first 100 lines.
func stepInstance(t *testing.T) (*Target, stepper, targets.Instance) {
	t.Helper()
	tgt := newLogTarget(t, -1)
	s := stepper{t, t.TempDir()}
	inst := provision(t, tgt, stepService(s.dir))
	s.step(1)
	return tgt, s, inst
}

// readLog returns the lines Logs emits for id.
func readLog(t *testing.T, tgt *Target, id string, opts targets.LogOptions) []string {
	t.Helper()
	var got []string
	err := tgt.Logs(t.Context(), id, opts, func(l targets.LogLine) error {
		got = append(got, l.Text)
		return nil
	})
	if err != nil {
		t.Fatalf("Logs(%s): %v", id, err)
	}
	return got
}

func wantLines(extra ...string) []string {
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprintf("first %d ........................................", i))
	}
	return append(want, extra...)
}

// A log over its cap is rotated by copy-truncate: the child, which holds
// the file open with O_APPEND, goes on writing at the start of the
// truncated file, Logs reads log.1 then log as one log, at most two files
// are kept, and a follower reads on across a rotation.
func TestLogRotation(t *testing.T) {
	tgt, s, inst := stepInstance(t)
	tgt.logMax = 4096 // from now on: Provision itself may rotate
	path := tgt.LogPath(inst.ID)

	// A follower from the start: it must see every line once, in order.
	fctx, stopFollow := context.WithCancel(t.Context())
	var (
		mu       sync.Mutex
		followed []string
	)
	followDone := make(chan error, 1)
	go func() {
		followDone <- tgt.Logs(fctx, inst.ID, targets.LogOptions{Follow: true}, func(l targets.LogLine) error {
			mu.Lock()
			defer mu.Unlock()
			followed = append(followed, l.Text)
			return nil
		})
	}()

	if n, err := tgt.RotateLogs(t.Context()); err != nil || n != 1 {
		t.Fatalf("RotateLogs = %d, %v; want 1 log rotated", n, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("log after rotation: %v, %v; want it empty", fi, err)
	}
	if n, _ := tgt.RotateLogs(t.Context()); n != 0 {
		t.Errorf("a second RotateLogs rotated %d logs under the cap", n)
	}
	s.step(2)
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "step 2\n" {
		t.Fatalf("log after rotation holds %q, %v; want the new line at its start (O_APPEND)", b, err)
	}
	seen := func(line string) {
		t.Helper()
		eventually(t, "the follower to read "+line[:min(len(line), 10)], func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(followed, line)
		})
	}
	seen("step 2") // (a follower more than one rotation behind would miss lines)
	if got, want := readLog(t, tgt, inst.ID, targets.LogOptions{}), wantLines("step 2"); !slices.Equal(got, want) {
		t.Errorf("Logs = %q, want %q", got, want)
	}
	if got := readLog(t, tgt, inst.ID, targets.LogOptions{Tail: 2}); !slices.Equal(got, wantLines("step 2")[99:]) {
		t.Errorf("Logs Tail 2 = %q", got)
	}

	// Over the cap again: log.1 is replaced, never a third file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s\n", strings.Repeat("x", 5000))
	f.Close()
	seen(strings.Repeat("x", 5000))
	if n, err := tgt.RotateLogs(t.Context()); err != nil || n != 1 {
		t.Fatalf("RotateLogs = %d, %v; want 1", n, err)
	}
	s.step(3)
	entries, _ := os.ReadDir(filepath.Dir(path))
	var logs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), logFile) {
			logs = append(logs, e.Name())
		}
	}
	if !slices.Equal(logs, []string{"log", "log.1"}) {
		t.Errorf("log files %q, want log and log.1", logs)
	}
	got := readLog(t, tgt, inst.ID, targets.LogOptions{})
	if len(got) != 3 || got[0] != "step 2" || got[2] != "step 3" {
		t.Errorf("Logs after a second rotation = %.60q, want step 2, the long line, step 3", got)
	}

	seen("step 3")
	stopFollow()
	if err := <-followDone; err != nil {
		t.Errorf("following: %v", err)
	}
	want := wantLines("step 2", strings.Repeat("x", 5000), "step 3")
	if !slices.Equal(followed, want) {
		t.Errorf("the follower read %d lines, want each of %d once, in order: %.200q", len(followed), len(want), followed)
	}
}

// follower follows the log of inst from its start and collects its lines.
type follower struct {
	mu    sync.Mutex
	lines []string
	stop  context.CancelFunc
	done  chan error
}

func follow(t *testing.T, tgt *Target, id string) *follower {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	f := &follower{stop: stop, done: make(chan error, 1)}
	go func() {
		f.done <- tgt.Logs(ctx, id, targets.LogOptions{Follow: true}, func(l targets.LogLine) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.lines = append(f.lines, l.Text)
			return nil
		})
	}()
	return f
}

// waitFor waits until the follower has read line, then stops it and
// returns every line it read.
func (f *follower) waitFor(t *testing.T, line string) []string {
	t.Helper()
	eventually(t, "the follower to read "+line[:min(len(line), 10)], func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Contains(f.lines, line)
	})
	f.stop()
	if err := <-f.done; err != nil {
		t.Errorf("following: %v", err)
	}
	return f.lines
}

// linesDiff says how got differs from want, each line once in order.
func linesDiff(got, want []string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	at := func(l []string) string {
		if i < len(l) {
			return fmt.Sprintf("%.60q", l[i])
		}
		return "nothing"
	}
	return fmt.Sprintf("%d lines, want %d, each once in order: line %d is %s, want %s", len(got), len(want), i, at(got), at(want))
}

// A rotation that comes while a follower reads its first step (log.1,
// then log) waits for the step to end: the lines it moves to log.1 are
// neither lost (read from the old log.1, then from the truncated log)
// nor read twice. Without the lock between readers and rotation, the 100
// lines written before were lost.
func TestLogFollowRotationDuringFirstRead(t *testing.T) {
	tgt, s, inst := stepInstance(t)
	path := tgt.LogPath(inst.ID)
	rotated := make(chan error, 1)
	var once sync.Once
	logsHook = func(stage string) {
		if stage != "after-old" {
			return
		}
		once.Do(func() {
			go func() { rotated <- rotate(path) }()
			// Let the rotation run now if nothing holds it back.
			select {
			case err := <-rotated:
				rotated <- err
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
	t.Cleanup(func() { logsHook = func(string) {} })
	f := follow(t, tgt, inst.ID)
	if err := <-rotated; err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if fi, err := os.Stat(path + ".1"); err != nil || fi.Size() == 0 {
		t.Fatalf("log.1 after the rotation: %v, %v", fi, err)
	}
	s.step(2)
	if got, want := f.waitFor(t, "step 2"), wantLines("step 2"); !slices.Equal(got, want) {
		t.Errorf("the follower read %s", linesDiff(got, want))
	}
}

// A rotation after which the log grows past where a follower was before
// it looks again is still seen as a rotation (log.1 is a new file): the
// follower reads the rest of log.1 and the new log from its start. By
// size alone (the log shorter than where it was), it read on from the old
// offset in the new log: the start of the new lines was lost.
func TestLogFollowRotationThenGrowth(t *testing.T) {
	tgt, s, inst := stepInstance(t)
	path := tgt.LogPath(inst.ID)
	f := follow(t, tgt, inst.ID)
	eventually(t, "the follower to read the first lines", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.lines) == 100
	})
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Between two of the follower's looks (it looks every 250ms): rotated,
	// then a line longer than the log was.
	if err := rotate(path); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("y", int(before.Size())+1000)
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "%s\n", long)
	w.Close()
	s.step(2)
	if got, want := f.waitFor(t, "step 2"), wantLines(long, "step 2"); !slices.Equal(got, want) {
		t.Errorf("the follower read %s", linesDiff(got, want))
	}
}

// Retire keeps the log of the instance for KeepLogs: LogInstances lists it
// as retired, Logs still reads it, and it is pruned once expired.
func TestRetiredLogKept(t *testing.T) {
	tgt := newLogTarget(t, 0)
	s := stepper{t, t.TempDir()}
	inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("steps"), Service: stepService(s.dir)})
	if err != nil {
		t.Fatal(err)
	}
	s.step(1)
	if err := tgt.Retire(t.Context(), inst.ID); err != nil {
		t.Fatal(err)
	}
	if live, _ := tgt.List(t.Context()); len(live) != 0 {
		t.Fatalf("List after Retire = %+v", live)
	}
	if used, _ := tgt.usedArtifacts(t.Context()); len(used) != 0 {
		t.Errorf("a kept log holds artifacts: %v", used)
	}
	li, err := tgt.LogInstances(t.Context())
	if err != nil || len(li) != 1 || li[0].ID != inst.ID || li[0].Retired.IsZero() || li[0].Labels.Service != "steps" {
		t.Fatalf("LogInstances = %+v, %v; want the retired instance", li, err)
	}
	if d := li[0].Expires.Sub(li[0].Retired); d != time.Hour {
		t.Errorf("kept for %s, want the default hour", d)
	}
	if got := readLog(t, tgt, inst.ID, targets.LogOptions{}); !slices.Equal(got, wantLines()) {
		t.Errorf("Logs of the retired instance = %q", got)
	}
	// Follow does not wait on a retired instance.
	if got := readLog(t, tgt, inst.ID, targets.LogOptions{Follow: true, Tail: 1}); len(got) != 1 {
		t.Errorf("Logs Follow of a retired instance = %q", got)
	}

	later := time.Now().Add(2 * time.Hour)
	tgt.now = func() time.Time { return later }
	if li, _ := tgt.LogInstances(t.Context()); len(li) != 0 {
		t.Errorf("LogInstances lists an expired log: %+v", li)
	}
	err = tgt.Logs(t.Context(), inst.ID, targets.LogOptions{}, func(targets.LogLine) error { return nil })
	if !errors.Is(err, targets.ErrNoLog) {
		t.Errorf("Logs of an expired log: %v, want ErrNoLog", err)
	}
	if _, err := tgt.RotateLogs(t.Context()); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, filepath.Join(tgt.dir, logsDir))
}

// Since skips a file last written before it; an unknown id is ErrNoLog.
func TestLogsSince(t *testing.T) {
	tgt := newLogTarget(t, 0)
	s := stepper{t, t.TempDir()}
	inst := provision(t, tgt, stepService(s.dir))
	s.step(1)
	if got := readLog(t, tgt, inst.ID, targets.LogOptions{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("Logs since in an hour = %q, want nothing", got)
	}
	if got := readLog(t, tgt, inst.ID, targets.LogOptions{Since: time.Now().Add(-time.Hour)}); len(got) != 100 {
		t.Errorf("Logs since an hour ago: %d lines, want 100", len(got))
	}
	for _, id := range []string{"nope", "../x", ".logs", ""} {
		err := tgt.Logs(t.Context(), id, targets.LogOptions{}, func(targets.LogLine) error { return nil })
		if !errors.Is(err, targets.ErrNoLog) {
			t.Errorf("Logs(%q) = %v, want ErrNoLog", id, err)
		}
	}
}
