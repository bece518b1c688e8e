package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Default limits of one evaluation in a Child.
const (
	DefaultWall   = 60 * time.Second
	DefaultMemory = 1 << 30 // 1 GiB
	DefaultCPU    = 60 * time.Second
)

// Limits bound one evaluation in a Child. A zero field takes its default.
type Limits struct {
	// Wall is the wall-clock time the child may take, start included.
	Wall time.Duration
	// Memory caps the child's resident set, in bytes: the parent samples
	// it, the Go runtime of the child keeps its heap below it, and the
	// kernel caps its data segment (RLIMIT_DATA) at Memory plus
	// DataHeadroom, which covers the thread stacks and heap arenas that
	// are reserved but not yet used.
	Memory int64
	// CPU caps the child's CPU time (RLIMIT_CPU, whole seconds, rounded
	// up).
	CPU time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.Wall <= 0 {
		l.Wall = DefaultWall
	}
	if l.Memory <= 0 {
		l.Memory = DefaultMemory
	}
	if l.CPU <= 0 {
		l.CPU = DefaultCPU
	}
	return l
}

// DataHeadroom is what RLIMIT_DATA allows a child above Limits.Memory.
const DataHeadroom = 128 << 20

// limitsEnv carries the limits to the child, whose environment holds
// nothing else.
const limitsEnv = "MOLT_EVAL_LIMITS"

func (l Limits) env() string {
	return fmt.Sprintf("%s=wall=%s,memory=%d,cpu=%s", limitsEnv, l.Wall, l.Memory, l.CPU)
}

func parseLimits(s string) (Limits, error) {
	var l Limits
	for kv := range strings.SplitSeq(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "wall":
			l.Wall, err = time.ParseDuration(v)
		case "memory":
			l.Memory, err = strconv.ParseInt(v, 10, 64)
		case "cpu":
			l.CPU, err = time.ParseDuration(v)
		default:
			err = fmt.Errorf("unknown limit %q", k)
		}
		if err != nil {
			return Limits{}, fmt.Errorf("%s: %w", limitsEnv, err)
		}
	}
	return l.withDefaults(), nil
}

// Exit statuses of a child that stopped itself at a limit.
const (
	exitCPU  = 3
	exitWall = 4
)

// maxOutput caps what the parent reads back from a child.
const maxOutput = 256 << 20

// Child evaluates each snapshot in a new child process, under Limits: the
// child applies setrlimit (data segment, CPU time) and a Go memory limit
// to itself before it reads anything, and the parent kills it when the
// wall-clock limit passes, when its resident set grows past the memory
// limit, or when ctx is cancelled. The child's environment holds only
// its limits. A child that dies with its parent (PR_SET_PDEATHSIG) never
// outlives it.
//
// An evaluation stopped at a limit, or a child that crashed, is an
// *InvalidError naming the limit ("evaluation stopped: it used more than
// 1 GiB of memory (limit --eval-memory)"): the same snapshot would stop
// again. A child that cannot be started is any other error.
type Child struct {
	// Path is the executable; Args its argument list, Args[0] included.
	// The program must call RunChild, as `molt` does for its hidden
	// evaluation command.
	Path string
	Args []string
	// Limits bound each evaluation.
	Limits Limits
	// Names name the settings of Limits in messages (Wall, Memory, CPU).
	Names LimitNames
	// Log, when set, gets one debug line per evaluation (time, CPU time,
	// peak resident set).
	Log *slog.Logger
}

// Usage is what one evaluation in a child cost.
type Usage struct {
	Wall    time.Duration
	CPU     time.Duration
	PeakRSS int64 // bytes: the child's own peak (VmHWM) as last sampled
}

// Evaluate runs the evaluation of s in a child process and returns its
// result. Cancelling ctx kills the child at once and returns ctx's error.
func (c *Child) Evaluate(ctx context.Context, s *Snapshot) (*Fleet, error) {
	f, _, err := c.EvaluateUsage(ctx, s)
	return f, err
}

// EvaluateUsage is Evaluate that also says what the evaluation cost.
func (c *Child) EvaluateUsage(ctx context.Context, s *Snapshot) (*Fleet, Usage, error) {
	lim := c.Limits.withDefaults()
	in, err := json.Marshal(s)
	if err != nil {
		return nil, Usage{}, fmt.Errorf("evaluation: encode snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, Usage{}, fmt.Errorf("evaluation cancelled: %w", err)
	}
	// The child's death signal follows the thread that started it: keep
	// that thread until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := &exec.Cmd{Path: c.Path, Args: c.Args, Env: []string{lim.env()}}
	out := &capped{max: maxOutput}
	errOut := &capped{max: 16 << 10} // a fatal error comes first, its traces after
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = childAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, Usage{}, fmt.Errorf("evaluation: start %s: %w", c.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	wall := time.NewTimer(lim.Wall)
	defer wall.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var stopped string // the limit the parent enforced
	var peak int64
	kill := func(why string) {
		stopped = why
		_ = cmd.Process.Kill()
	}
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return nil, Usage{}, fmt.Errorf("evaluation cancelled: %w", ctx.Err())
		case <-wall.C:
			kill("wall")
		case <-tick.C:
			if stopped != "" {
				continue
			}
			if rss, hwm := residentSet(cmd.Process.Pid); rss > 0 {
				peak = max(peak, rss, hwm)
				if rss > lim.Memory {
					kill("memory")
				}
			}
		}
	}
	u := Usage{Wall: time.Since(began)}
	var maxRSS int64
	u.CPU, maxRSS = processUsage(cmd.ProcessState)
	u.PeakRSS = peak
	if peak == 0 {
		u.PeakRSS = maxRSS
	}
	if c.Log != nil {
		c.Log.Debug("evaluated fleet in a child", "wall", u.Wall, "cpu", u.CPU, "peak_rss", u.PeakRSS, "exit", cmd.ProcessState.String())
	}
	if err := ctx.Err(); err != nil {
		return nil, u, fmt.Errorf("evaluation cancelled: %w", err)
	}
	stop := func(format string, args ...any) (*Fleet, Usage, error) {
		return nil, u, &InvalidError{Issues: []Issue{{Message: "evaluation stopped: " + fmt.Sprintf(format, args...)}}}
	}
	code := cmd.ProcessState.ExitCode()
	stderr := strings.TrimSpace(errOut.String())
	switch {
	case stopped == "wall" || code == exitWall:
		return stop("it ran for more than %s%s", lim.Wall, hint(c.Names.Wall))
	case stopped == "memory":
		return stop("it used more than %s of memory%s", byteSize(lim.Memory), hint(c.Names.Memory))
	case code == exitCPU || (code != 0 && u.CPU >= lim.CPU.Truncate(time.Second)):
		return stop("it used more than %s of CPU time%s", lim.CPU, hint(c.Names.CPU))
	case code != 0 && outOfMemory(stderr):
		return stop("it used more than %s of memory%s", byteSize(lim.Memory), hint(c.Names.Memory))
	case waitErr != nil && code != 0:
		msg := firstLine(stderr)
		if msg == "" {
			msg = cmd.ProcessState.String()
		}
		return nil, u, &InvalidError{Issues: []Issue{{Message: "evaluation failed: " + msg}}}
	case waitErr != nil:
		return nil, u, fmt.Errorf("evaluation: %w", waitErr)
	case out.over:
		return nil, u, &InvalidError{Issues: []Issue{{Message: fmt.Sprintf("evaluation failed: its result is larger than %s", byteSize(maxOutput))}}}
	}
	var res evalResult
	if err := json.Unmarshal(out.buf, &res); err != nil {
		return nil, u, fmt.Errorf("evaluation: read result: %w", err)
	}
	switch {
	case res.Error != "":
		return nil, u, errors.New(res.Error)
	case len(res.Issues) > 0:
		return nil, u, &InvalidError{Issues: res.Issues}
	case res.Fleet == nil:
		return nil, u, errors.New("evaluation: the child returned no fleet")
	}
	return res.Fleet, u, nil
}

// outOfMemory reports whether a child's stderr says that it could not get
// memory: the Go heap, or a thread's stack.
func outOfMemory(stderr string) bool {
	for _, m := range []string{"out of memory", "cannot allocate memory", "pthread_create failed", "failed to create new OS thread"} {
		if strings.Contains(stderr, m) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// capped keeps the first max bytes written to it. It never fails a
// write, so the child is never blocked on a full pipe.
type capped struct {
	buf  []byte
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if len(p) > room {
		c.over = true
		c.buf = append(c.buf, p[:max(room, 0)]...)
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *capped) String() string { return string(c.buf) }

// RunChild is the whole of a child's program: it applies the limits its
// parent (a Child) put in its environment to its own process, then reads
// the snapshot on stdin and writes the result on stdout. It returns the
// exit status.
func RunChild(stdin io.Reader, stdout, stderr io.Writer) int {
	lim, err := parseLimits(os.Getenv(limitsEnv))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := LimitSelf(lim); err != nil {
		fmt.Fprintln(stderr, "limit the evaluation:", err)
		return 1
	}
	if err := ServeEvaluation(stdin, stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
