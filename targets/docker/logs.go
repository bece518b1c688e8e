package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets"
)

// Instance logs.
//
// A live container's log is the engine's (stdout and stderr, with the
// engine's timestamps, so LogOptions.Since is exact); a follow is the
// engine's follow stream, which ends when the container stops. The engine
// rotates it as its log driver is configured.
//
// When the Target has a log directory (SetLogDir), Retire copies the last
// keptLines lines (at most keptBytes) of a container's log there before it
// removes the container, as LogDir/<engine>_<container id>/log (each line
// "<RFC 3339 time> <text>") beside retired.json, and keeps them for the
// time SetLogDir says; Retire prunes what expired. A copy that fails is
// logged and never fails a retire.

const (
	keptLines   = 5000
	keptBytes   = 4 << 20
	maxKept     = 50
	retiredFile = targets.RetiredLogFile
	logName     = "log"
	defaultKeep = time.Hour
)

// SetLogDir makes Retire keep the last log of each container in dir for
// keep (zero: an hour), and Logs and LogInstances read them there. Call it
// before the Target is used; dir is created when first needed.
func (t *Target) SetLogDir(dir string, keep time.Duration) {
	if keep <= 0 {
		keep = defaultKeep
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.logDir, t.keepLogs = dir, keep
}

func (t *Target) logSettings() (string, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.logDir, t.keepLogs
}

// retiredRecord is the content of retired.json.
type retiredRecord = targets.RetiredLog

// keptDir is the directory of the kept log of instance id.
func keptDir(base, id string) string {
	return filepath.Join(base, strings.ReplaceAll(id, "/", "_"))
}

// keepLog copies the last of the log of container cid of instance id on e
// into the log directory, if there is one.
func (t *Target) keepLog(ctx context.Context, e *engine, id, cid string, labels targets.Labels) {
	base, keep := t.logSettings()
	if base == "" {
		return
	}
	err := t.copyLog(ctx, e, id, cid, labels, base, keep)
	if err != nil {
		t.log.Warn("cannot keep the log of a retired container", "instance", id, "err", err)
	}
	t.pruneLogs(base)
}

func (t *Target) copyLog(ctx context.Context, e *engine, id, cid string, labels targets.Labels, base string, keep time.Duration) error {
	sctx, cancel := t.short(ctx)
	defer cancel()
	r, err := e.api.ContainerLogs(sctx, cid, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: strconv.Itoa(keptLines),
	})
	if err != nil {
		return err
	}
	defer r.Close()
	var buf cappedTail
	if _, err := stdcopy.StdCopy(&buf, &buf, r); err != nil {
		return err
	}
	if err := os.MkdirAll(base, 0o750); err != nil {
		return err
	}
	dir := keptDir(base, id)
	stage := dir + ".tmp"
	os.RemoveAll(stage)
	if err := os.Mkdir(stage, 0o750); err != nil {
		return err
	}
	now := time.Now()
	meta, _ := json.MarshalIndent(retiredRecord{ID: id, Labels: labels, Retired: now, Expires: now.Add(keep)}, "", "  ")
	err = os.WriteFile(filepath.Join(stage, logName), buf.bytes(), 0o640)
	if err == nil {
		err = os.WriteFile(filepath.Join(stage, retiredFile), append(meta, '\n'), 0o640)
	}
	if err == nil {
		os.RemoveAll(dir)
		err = os.Rename(stage, dir)
	}
	if err != nil {
		os.RemoveAll(stage)
	}
	return err
}

// cappedTail keeps the last keptBytes written to it, from a line start.
type cappedTail struct{ b []byte }

func (c *cappedTail) Write(p []byte) (int, error) {
	c.b = append(c.b, p...)
	if over := len(c.b) - 2*keptBytes; over > 0 {
		c.b = append(c.b[:0], c.b[over:]...)
	}
	return len(p), nil
}

func (c *cappedTail) bytes() []byte {
	b := c.b
	if len(b) > keptBytes {
		b = b[len(b)-keptBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b
}

// retiredLogs reads the kept logs' records, newest first, expired ones
// included.
func retiredLogs(base string) []retiredRecord {
	return targets.RetiredLogs(base, func(id string) string { return keptDir(base, id) })
}

func readRetired(dir string) (retiredRecord, error) {
	base := filepath.Dir(dir)
	return targets.ReadRetiredLog(dir, func(id string) string { return keptDir(base, id) })
}

// pruneLogs deletes the kept logs that expired and those beyond the newest
// maxKept.
func (t *Target) pruneLogs(base string) {
	now := time.Now()
	for i, rr := range retiredLogs(base) {
		if i >= maxKept || !now.Before(rr.Expires) {
			if err := os.RemoveAll(keptDir(base, rr.ID)); err != nil {
				t.log.Warn("cannot prune a kept log", "instance", rr.ID, "err", err)
			}
		}
	}
}

// LogInstances returns the instances List returns and the retired ones
// whose logs are kept and not expired.
func (t *Target) LogInstances(ctx context.Context) ([]targets.LogInstance, error) {
	live, err := t.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []targets.LogInstance
	seen := map[string]bool{}
	for _, in := range live {
		seen[in.ID] = true
		out = append(out, targets.LogInstance{ID: in.ID, Labels: in.Labels})
	}
	if base, _ := t.logSettings(); base != "" {
		now := time.Now()
		for _, rr := range retiredLogs(base) {
			if now.Before(rr.Expires) && !seen[rr.ID] {
				out = append(out, targets.LogInstance{ID: rr.ID, Labels: rr.Labels, Retired: rr.Retired, Expires: rr.Expires})
			}
		}
	}
	return out, nil
}

// Logs emits the log of instance id: the engine's for a live container
// (stdout and stderr, through the engine's follow stream with
// opts.Follow, which ends when the container stops), else the kept copy of
// a retired one. A container without molt's labels is refused (ErrNotMolt).
func (t *Target) Logs(ctx context.Context, id string, opts targets.LogOptions, emit func(targets.LogLine) error) error {
	e, c, err := t.lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	if e == nil {
		return t.keptLogs(id, opts, emit)
	}
	o := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow}
	if !opts.Since.IsZero() {
		o.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	if opts.Tail > 0 {
		o.Tail = strconv.Itoa(opts.Tail)
	}
	r, err := e.api.ContainerLogs(ctx, c.ID, o)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer r.Close()
	w := &lineWriter{emit: emit}
	_, err = stdcopy.StdCopy(w, w, r)
	if ctx.Err() != nil {
		return w.flush() // interrupted: not an error
	}
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	return w.flush()
}

// keptLogs emits the kept log of retired instance id.
func (t *Target) keptLogs(id string, opts targets.LogOptions, emit func(targets.LogLine) error) error {
	base, _ := t.logSettings()
	noLog := fmt.Errorf("logs of %s: %w", id, targets.ErrNoLog)
	if base == "" {
		return noLog
	}
	dir := keptDir(base, id)
	rr, err := readRetired(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !time.Now().Before(rr.Expires)) {
		return noLog
	}
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	f, err := os.Open(filepath.Join(dir, logName))
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer f.Close()
	var lines []targets.LogLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), keptBytes)
	for sc.Scan() {
		l := parseLine(sc.Text())
		if !opts.Since.IsZero() && l.Time.Before(opts.Since) {
			continue
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	if opts.Tail > 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	for _, l := range lines {
		if err := emit(l); err != nil {
			return err
		}
	}
	return nil
}

// parseLine splits "<RFC 3339 time> <text>", as the engine writes a line
// with timestamps.
func parseLine(s string) targets.LogLine {
	ts, text, ok := strings.Cut(s, " ")
	if tm, err := time.Parse(time.RFC3339Nano, ts); ok && err == nil {
		return targets.LogLine{Time: tm, Text: text}
	}
	return targets.LogLine{Text: s}
}

// lineWriter cuts what the engine sends into lines for emit.
type lineWriter struct {
	emit    func(targets.LogLine) error
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			break
		}
		line := string(w.partial) + string(p[:i])
		w.partial = w.partial[:0]
		p = p[i+1:]
		if err := w.emit(parseLine(strings.TrimSuffix(line, "\r"))); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (w *lineWriter) flush() error {
	if len(w.partial) == 0 {
		return nil
	}
	line := string(w.partial)
	w.partial = nil
	return w.emit(parseLine(line))
}

var _ io.Writer = (*lineWriter)(nil)
