package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/spf13/cobra"
)

type logsFlags struct {
	instance      string
	follow        bool
	since         string
	fleet         string
	stateDir      string
	tail          int
	output        string
	dockerEngines []string
}

func newLogsCmd(e *env) *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs SERVICE",
		Short: "Print the output of a service's instances",
		Long: `logs prints what the instances of SERVICE wrote on stdout and stderr: every
live instance (each line prefixed with its instance id when there are
several), or the one --instance names, live or retired: the log of a retired
instance is kept for an hour, so the log of a failed canary can still be
read. It needs no lock: it works beside molt serve.

Process instances: the instance's log file, rotated past 10 MiB (one
previous file kept). Their lines carry no time: --since skips a file last
written before it and shows a file written since whole. Docker instances:
the container's log from the engine (stdout and stderr), timed by the
engine, so --since is exact; a retired container's last 5000 lines are
kept in the state directory.

-f follows until interrupted (the process log is polled; docker uses the
engine's follow stream, which ends when the container stops). -o json
writes one JSON object a line: {"instance", "time" (when known), "line"}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return logs(cmd.Context(), e, f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.instance, "instance", "", "only this instance (live or retired)")
	fl.BoolVarP(&f.follow, "follow", "f", false, "wait for new lines until interrupted")
	fl.StringVar(&f.since, "since", "", "only lines written since: a duration (10m) or a time (RFC 3339)")
	fl.StringVar(&f.fleet, "fleet", "", "the fleet of SERVICE, when the state directory has several that name it")
	fl.StringVar(&f.stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	fl.IntVar(&f.tail, "tail", 0, "only the last N lines of each instance (0: all)")
	outputFlag(cmd, &f.output, "text", "json")
	registerDocker(fl, &f.dockerEngines)
	return cmd
}

// dockerLogDir is where the docker target keeps the logs of retired
// containers.
func dockerLogDir(stateDir string) string {
	return filepath.Join(stateDir, "logs", "docker")
}

// keepDockerLogs makes w's docker target keep the last log of the
// containers it retires (see docker.Target.SetLogDir).
func keepDockerLogs(w *world, stateDir string) {
	if w.docker != nil {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			abs = stateDir
		}
		w.docker.SetLogDir(dockerLogDir(abs), 0)
	}
}

// logSource is one instance whose log a target holds.
type logSource struct {
	targets.LogInstance
	reader targets.LogReader
}

func logs(ctx context.Context, e *env, f logsFlags, service string) error {
	if err := checkOutput(f.output, "text", "json"); err != nil {
		return err
	}
	if f.tail < 0 {
		return &usageError{errors.New("--tail must not be negative")}
	}
	since, err := parseSince(f.since, time.Now())
	if err != nil {
		return &usageError{err}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srcs, closeAll, err := logSources(ctx, f, log)
	if err != nil {
		return err
	}
	defer closeAll()
	pick, err := pickLogs(srcs, service, f.fleet, f.instance)
	if err != nil {
		return err
	}
	for _, s := range pick {
		if !s.Retired.IsZero() {
			fmt.Fprintf(e.stderr, "molt logs: instance %s was retired at %s; its log is kept until %s\n",
				s.ID, s.Retired.Local().Format(time.RFC3339), s.Expires.Local().Format(time.RFC3339))
		}
	}
	out := &logPrinter{w: e.stdout, json: f.output == "json", prefix: len(pick) > 1}
	opts := targets.LogOptions{Since: since, Tail: f.tail, Follow: f.follow}
	if !f.follow {
		for _, s := range pick {
			if err := s.reader.Logs(ctx, s.ID, opts, out.emitter(s.ID)); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(pick))
	)
	for i, s := range pick {
		wg.Go(func() { errs[i] = s.reader.Logs(ctx, s.ID, opts, out.emitter(s.ID)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (10m) or an RFC 3339 time", s)
}

// logSources lists the instances whose logs the state directory's targets
// hold, and a function that closes the targets. It takes no lock and
// starts nothing.
func logSources(ctx context.Context, f logsFlags, log *slog.Logger) ([]logSource, func(), error) {
	abs, err := filepath.Abs(f.stateDir)
	if err != nil {
		return nil, nil, err
	}
	proc, err := process.New(process.Options{Dir: filepath.Join(abs, "instances"), Logger: log})
	if err != nil {
		return nil, nil, err
	}
	readers := []targets.LogReader{proc}
	closeAll := func() { proc.Close() }
	d, err := openDocker(ctx, f.dockerEngines, log)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	if d != nil {
		d.SetLogDir(dockerLogDir(abs), 0)
		readers = append(readers, d)
		closeAll = func() { proc.Close(); d.Close() }
	}
	var out []logSource
	for _, r := range readers {
		insts, err := r.LogInstances(ctx)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		for _, in := range insts {
			out = append(out, logSource{LogInstance: in, reader: r})
		}
	}
	return out, closeAll, nil
}

// pickLogs chooses the instances to print: the one named by id (live or
// retired), else every live instance of service. Without fleet the
// service must be in one fleet only.
func pickLogs(srcs []logSource, service, fleet, id string) ([]logSource, error) {
	var mine []logSource
	fleets := map[string]bool{}
	for _, s := range srcs {
		if s.Labels.Service == service && (fleet == "" || s.Labels.Fleet == fleet) {
			mine = append(mine, s)
			fleets[s.Labels.Fleet] = true
		}
	}
	if id != "" {
		for _, s := range mine {
			if s.ID == id {
				return []logSource{s}, nil
			}
		}
		return nil, fmt.Errorf("service %s has no instance %s whose log is kept (a retired instance's log is kept for an hour)", service, id)
	}
	if len(fleets) > 1 {
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range fleets {
				if !yield(n) {
					return
				}
			}
		})
		return nil, &usageError{fmt.Errorf("service %s is in several fleets (%s): pass --fleet", service, strings.Join(names, ", "))}
	}
	var live, retired []logSource
	for _, s := range mine {
		if s.Retired.IsZero() {
			live = append(live, s)
		} else {
			retired = append(retired, s)
		}
	}
	if len(live) == 0 {
		msg := fmt.Sprintf("service %s has no live instance", service)
		if len(retired) > 0 {
			var ids []string
			for _, s := range retired {
				ids = append(ids, s.ID)
			}
			msg += "; the logs of these retired instances are kept (--instance ID): " + strings.Join(ids, ", ")
		}
		return nil, errors.New(msg)
	}
	slices.SortFunc(live, func(a, b logSource) int {
		return cmp.Or(a.Labels.CreatedAt.Compare(b.Labels.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return live, nil
}

// logPrinter writes the lines of one or more instances, one at a time.
type logPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	json   bool
	prefix bool // text: prefix each line with its instance id
}

// logLine is one line of molt logs -o json.
type logLine struct {
	Instance string    `json:"instance"`
	Time     time.Time `json:"time,omitzero"`
	Line     string    `json:"line"`
}

func (p *logPrinter) emitter(id string) func(targets.LogLine) error {
	return func(l targets.LogLine) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		var err error
		switch {
		case p.json:
			var b []byte
			if b, err = json.Marshal(logLine{Instance: id, Time: l.Time, Line: l.Text}); err == nil {
				_, err = fmt.Fprintf(p.w, "%s\n", b)
			}
		case p.prefix:
			_, err = fmt.Fprintf(p.w, "%s | %s\n", id, l.Text)
		default:
			_, err = fmt.Fprintln(p.w, l.Text)
		}
		return err
	}
}
