package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/molt-dev/molt/targets"
)

// Instance logs.
//
// A process writes its stdout and stderr straight into Dir/<id>/log, which
// it holds open with O_APPEND: molt owns no pipe, so an instance keeps
// logging after molt exits or restarts. molt rotates the file by
// copy-truncate when it sees it over Options.LogMaxSize: the content is
// copied to log.1 (replacing the previous log.1) and log is truncated; the
// child's O_APPEND writes go on at the new end. So an instance's log holds
// at most about twice the cap, plus what it wrote between two looks. molt
// looks at every Provision and Retire and at every RotateLogs (molt serve
// calls it periodically, see RunLogRotation). Lines written between the
// copy and the truncate (a few microseconds) are lost; that is the known
// price of copy-truncate. A follower (Logs with Follow, in this process
// or another) reads each of its steps under a shared flock of the log,
// which a rotation takes exclusively: a rotation comes between two steps,
// and the follower knows it by log.1 being a new file, so it reads every
// line once. (A rotation waits at most rotateLockWait for a step; past
// that it goes on, and that follower may miss what it moved.)
//
// Retire keeps the log: it moves log and log.1 into Dir/.logs/<id>/ with
// retired.json (id, labels, when it was retired and when its log goes).
// Kept logs are pruned Options.KeepLogs after the retire (an hour by
// default), and beyond the newest maxKeptLogs, by Retire and RotateLogs.
//
// The process target does not time each line (it never sees them go by):
// LogOptions.Since has the granularity of a file, which is skipped whole
// when it was last written before Since, and shown whole otherwise.

const (
	logsDir          = ".logs" // hidden: never listed as an instance
	retiredFile      = targets.RetiredLogFile
	defaultLogMax    = 10 << 20
	maxKeptLogs      = 50
	logPoll          = 250 * time.Millisecond
	maxLine          = 64 << 10 // a longer line is cut into pieces of this size
	rotateTempSuffix = ".tmp"
	// rotateLockWait bounds how long a rotation waits for the followers
	// of the log to finish the step they are reading.
	rotateLockWait = 2 * time.Second
)

var _ targets.LogReader = (*Target)(nil)

// retiredRecord is the content of Dir/.logs/<id>/retired.json.
type retiredRecord = targets.RetiredLog

// logFiles returns the files of a log directory, oldest content first.
func logFiles(dir string) []string {
	return []string{filepath.Join(dir, logFile+".1"), filepath.Join(dir, logFile)}
}

// RotateLogs rotates the log of every instance of Dir that is over
// Options.LogMaxSize (copy-truncate, see the package's "Instance logs"),
// and prunes the kept logs of retired instances that expired. It returns
// how many logs it rotated. ctx is looked at between instances. It is
// idempotent and safe to run beside a reader of the logs (molt logs -f).
func (t *Target) RotateLogs(ctx context.Context) (int, error) {
	n, err := t.rotateAll(ctx)
	t.pruneLogs()
	return n, err
}

// RunLogRotation calls RotateLogs every interval until ctx ends, logging
// what fails. It returns when ctx ends.
func (t *Target) RunLogRotation(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := t.RotateLogs(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("cannot rotate instance logs", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *Target) rotateAll(ctx context.Context) (int, error) {
	if t.logMax <= 0 {
		return 0, nil
	}
	entries, err := os.ReadDir(t.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rotate logs: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(t.dir, e.Name(), logFile)
		fi, err := os.Stat(path)
		if err != nil || fi.Size() <= t.logMax {
			continue
		}
		if err := rotate(path); err != nil {
			errs = append(errs, fmt.Errorf("rotate log of %s: %w", e.Name(), err))
			continue
		}
		n++
		t.log.Debug("rotated instance log", "instance", e.Name(), "size", fi.Size())
	}
	return n, errors.Join(errs...)
}

// rotate copies path to path.1 (atomically replacing it) and truncates
// path. A writer holding path open with O_APPEND goes on at its new end.
func rotate(path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	// Between two steps of a follower (see loglock_unix.go).
	unlock, _ := lockExclusive(src, rotateLockWait)
	defer unlock()
	tmp := path + ".1" + rotateTempSuffix
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path+".1")
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// Right after the copy: what was written since is all that is lost.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return err
	}
	return os.Truncate(path, 0)
}

// keepLog moves the log of a retiring instance (its directory renamed to
// tomb) into Dir/.logs/<id>, unless logs are not kept. A failure is
// logged: it never fails a retire.
func (t *Target) keepLog(tomb string, rec *record) {
	if t.keepLogs <= 0 {
		return
	}
	base := filepath.Join(t.dir, logsDir)
	stage := filepath.Join(base, "."+rec.ID)
	err := os.MkdirAll(base, 0o750)
	if err == nil {
		os.RemoveAll(stage)
		err = os.Mkdir(stage, 0o750)
	}
	for _, f := range logFiles(tomb) {
		if err != nil {
			break
		}
		if err = os.Rename(f, filepath.Join(stage, filepath.Base(f))); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err == nil {
		now := t.now()
		var b []byte
		b, err = json.MarshalIndent(retiredRecord{ID: rec.ID, Labels: rec.Labels, Retired: now, Expires: now.Add(t.keepLogs)}, "", "  ")
		if err == nil {
			err = os.WriteFile(filepath.Join(stage, retiredFile), append(b, '\n'), 0o640)
		}
	}
	if err == nil {
		os.RemoveAll(filepath.Join(base, rec.ID))
		err = os.Rename(stage, filepath.Join(base, rec.ID))
	}
	if err != nil {
		os.RemoveAll(stage)
		t.log.Warn("cannot keep the log of a retired instance", "instance", rec.ID, "err", err)
	}
}

// retiredLogs reads the records of the kept logs, newest retire first,
// expired ones included.
func (t *Target) retiredLogs() []retiredRecord {
	base := filepath.Join(t.dir, logsDir)
	return targets.RetiredLogs(base, func(id string) string { return filepath.Join(base, id) })
}

func readRetired(dir string) (retiredRecord, error) {
	base := filepath.Dir(dir)
	return targets.ReadRetiredLog(dir, func(id string) string { return filepath.Join(base, id) })
}

// pruneLogs deletes the kept logs that expired, those beyond the newest
// maxKeptLogs, and the remains of interrupted moves.
func (t *Target) pruneLogs() {
	base := filepath.Join(t.dir, logsDir)
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	now := t.now()
	for i, rr := range t.retiredLogs() {
		if i < maxKeptLogs && now.Before(rr.Expires) {
			keep[rr.ID] = true
		}
	}
	for _, e := range entries {
		name := e.Name()
		if keep[name] {
			continue
		}
		if strings.HasPrefix(name, ".") { // a move in progress, or its remains
			if fi, err := e.Info(); err != nil || now.Sub(fi.ModTime()) < staleTemp {
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(base, name)); err != nil {
			t.log.Warn("cannot prune a kept log", "instance", name, "err", err)
			continue
		}
		t.log.Debug("pruned the kept log of a retired instance", "instance", name)
	}
}

// LogInstances returns the instances of Dir (as List does) and the retired
// instances whose logs are kept and not expired.
func (t *Target) LogInstances(ctx context.Context) ([]targets.LogInstance, error) {
	live, err := t.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []targets.LogInstance
	for _, in := range live {
		out = append(out, targets.LogInstance{ID: in.ID, Labels: in.Labels})
	}
	now := t.now()
	for _, rr := range t.retiredLogs() {
		if now.Before(rr.Expires) {
			out = append(out, targets.LogInstance{ID: rr.ID, Labels: rr.Labels, Retired: rr.Retired, Expires: rr.Expires})
		}
	}
	return out, nil
}

// Logs emits the lines of the log of instance id (live, or retired with
// its log kept), log.1 then log. Since skips a file last modified before
// it (see "Instance logs"). Follow polls the log every 250ms, reads on
// across a rotation, and returns once the instance's directory is gone
// (retired) or ctx ends; it does not follow a retired instance.
func (t *Target) Logs(ctx context.Context, id string, opts targets.LogOptions, emit func(targets.LogLine) error) error {
	if !validID(id) {
		return fmt.Errorf("logs of %q: %w", id, targets.ErrNoLog)
	}
	dir := filepath.Join(t.dir, id)
	live := true
	if _, err := readRecord(dir); err != nil {
		live = false
		dir = filepath.Join(t.dir, logsDir, id)
		rr, err := readRetired(dir)
		if err != nil || !t.now().Before(rr.Expires) {
			return fmt.Errorf("logs of %s: %w", id, targets.ErrNoLog)
		}
	}
	files := logFiles(dir)
	cur, err := os.Open(files[1])
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	if cur != nil {
		defer cur.Close()
	}
	out := &lineSink{emit: emit, tail: opts.Tail}
	// Each step reads under the log's shared lock, so that a rotation
	// comes between two steps, never inside one; log.1 is then a new file
	// (rotate renames a new copy over it), which holds from off what the
	// last step had not read yet.
	unlock := func() {}
	if cur != nil {
		unlock = lockShared(cur)
	}
	old := statLog(files[0])
	err = readSince(files[0], opts.Since, out)
	logsHook("after-old")
	var off int64
	if err == nil && cur != nil {
		off, err = readFrom(cur, 0, opts.Since, out)
	}
	unlock()
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	if err := out.flushTail(); err != nil {
		return err
	}
	if !opts.Follow || !live || cur == nil {
		return out.flushPartial()
	}
	tick := time.NewTicker(logPoll)
	defer tick.Stop()
	for {
		var gone bool
		off, old, gone, err = followStep(dir, files[0], cur, off, old, out)
		if err != nil {
			return fmt.Errorf("logs of %s: %w", id, err)
		}
		if gone { // retired: nothing more will come
			return out.flushPartial()
		}
		select {
		case <-ctx.Done():
			return out.flushPartial()
		case <-tick.C:
		}
	}
}

// logsHook is called between the steps of Logs' first read (tests).
var logsHook = func(string) {}

// followStep is one step of a follower that has read cur up to off and
// saw log.1 as old: it reads what came since, across a rotation, under
// the log's shared lock. It returns the new offset and log.1, and gone
// when the instance's directory was gone before the step (retired:
// nothing more will come).
func followStep(dir, log1 string, cur *os.File, off int64, old os.FileInfo, out *lineSink) (_ int64, _ os.FileInfo, gone bool, _ error) {
	unlock := lockShared(cur)
	defer unlock()
	_, err := os.Stat(dir)
	gone = err != nil
	fi, err := cur.Stat()
	if err != nil {
		return off, old, gone, err
	}
	now := statLog(log1)
	switch {
	case now != nil && (old == nil || !os.SameFile(old, now)):
		// Rotated since the last step: the rest of what was read is in
		// log.1 from off, and log starts anew.
		if f, err := os.Open(log1); err == nil {
			_, err = readFrom(f, off, time.Time{}, out)
			f.Close()
			if err != nil {
				return off, now, gone, err
			}
		}
		off = 0
	case fi.Size() < off: // truncated, not by a rotation
		off = 0
	}
	off, err = readFrom(cur, off, time.Time{}, out)
	return off, now, gone, err
}

// statLog returns the file at path, nil when there is none.
func statLog(path string) os.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return fi
}

// readSince reads the file at path (unless it was last modified before
// since) into out. A missing file is empty.
func readSince(path string, since time.Time, out *lineSink) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = readFrom(f, 0, since, out)
	if err == nil {
		err = out.flushPartial() // log.1 ends where the rotation cut it
	}
	return err
}

// readFrom reads f from off to its end into out and returns the offset
// reached. Nothing is read when f was last modified before since.
func readFrom(f *os.File, off int64, since time.Time, out *lineSink) (int64, error) {
	if !since.IsZero() {
		fi, err := f.Stat()
		if err != nil {
			return off, err
		}
		if fi.ModTime().Before(since) {
			return fi.Size(), nil
		}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.ReadAt(buf, off)
		off += int64(n)
		if ferr := out.feed(buf[:n]); ferr != nil {
			return off, ferr
		}
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// lineSink cuts bytes into lines and hands them to emit, or, with tail,
// keeps the last tail lines until flushTail.
type lineSink struct {
	emit    func(targets.LogLine) error
	tail    int
	kept    []string
	tailed  bool // flushTail ran: lines go straight to emit
	partial []byte
}

func (s *lineSink) feed(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.partial = append(s.partial, b...)
			if len(s.partial) >= maxLine {
				return s.flushPartial()
			}
			return nil
		}
		line := string(s.partial) + string(b[:i])
		s.partial = s.partial[:0]
		b = b[i+1:]
		if err := s.line(strings.TrimSuffix(line, "\r")); err != nil {
			return err
		}
	}
	return nil
}

func (s *lineSink) line(text string) error {
	if s.tail > 0 && !s.tailed {
		s.kept = append(s.kept, text)
		if len(s.kept) > s.tail {
			s.kept = s.kept[1:]
		}
		return nil
	}
	return s.emit(targets.LogLine{Text: text})
}

// flushPartial emits a last line that has no newline (yet).
func (s *lineSink) flushPartial() error {
	if len(s.partial) == 0 {
		return nil
	}
	text := string(s.partial)
	s.partial = s.partial[:0]
	return s.line(text)
}

// flushTail emits the kept tail; later lines go straight out.
func (s *lineSink) flushTail() error {
	s.tailed = true
	for _, l := range s.kept {
		if err := s.emit(targets.LogLine{Text: l}); err != nil {
			return err
		}
	}
	s.kept = nil
	return nil
}
