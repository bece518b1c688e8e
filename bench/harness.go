package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// H is what every comparison gets: the binaries under test, a scratch
// directory, the number of rounds, and the rows it adds to the results.
type H struct {
	Root   string // the repository's root
	Molt   string // molt, built from Root for this run
	Hello  string // testdata/apps/hello, built for this run
	Commit string // the commit measured (see commit)
	Tmp    string // scratch space, removed at the end
	Rounds int    // rounds of each alternating comparison
	Log    io.Writer

	rows  []Row
	notes []string
}

// Samples are the values of one figure, one per round.
type Samples []float64

// Median is the middle value (the mean of the two middle ones).
func (s Samples) Median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := slices.Clone(s)
	slices.Sort(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// Spread is the range of the samples relative to their median, in percent
// (max − min over median): how far a single round can be off.
func (s Samples) Spread() float64 {
	if len(s) < 2 {
		return 0
	}
	m := s.Median()
	if m == 0 {
		return 0
	}
	return (slices.Max(s) - slices.Min(s)) / math.Abs(m) * 100
}

// Metrics are the figures one measurement yields, by name.
type Metrics map[string]float64

// Alternate measures a and b rounds times each, alternating, the order
// swapped every round (a b, b a, a b, ...) so that a slow phase of the
// machine falls on both, and returns every metric's samples of each.
func (h *H) Alternate(rounds int, a, b func() (Metrics, error)) (as, bs map[string]Samples, err error) {
	as, bs = map[string]Samples{}, map[string]Samples{}
	run := func(f func() (Metrics, error), into map[string]Samples) error {
		m, err := f()
		if err != nil {
			return err
		}
		for k, v := range m {
			into[k] = append(into[k], v)
		}
		return nil
	}
	for i := range rounds {
		first, second := a, b
		fi, si := as, bs
		if i%2 == 1 {
			first, second, fi, si = b, a, bs, as
		}
		if err := run(first, fi); err != nil {
			return nil, nil, err
		}
		if second != nil {
			if err := run(second, si); err != nil {
				return nil, nil, err
			}
		}
	}
	return as, bs, nil
}

// Repeat measures f rounds times (a figure without a comparator run).
func (h *H) Repeat(rounds int, f func() (Metrics, error)) (map[string]Samples, error) {
	s, _, err := h.Alternate(rounds, f, nil)
	return s, err
}

// Row is one line of bench/RESULTS.md.
type Row struct {
	Figure     string  // what is measured, e.g. "router throughput, 16 connections"
	Unit       string  // "s", "ms", "req/s", "MiB", "allocs"
	Molt       Samples // molt's figure, one sample per round
	Comparator string  // what it is compared with, e.g. "nginx 1.22 reverse proxy"
	Comp       Samples // the comparator's samples (empty: Comparator is a goal)
	Higher     bool    // a higher figure is better (throughput)
	// Goal is the target: a ratio molt/comparator when Comp is set (at
	// most Goal, or at least Goal when Higher), else an absolute figure in
	// Unit. Zero: no target, the figure is informative.
	Goal float64
	// Before is the figure when the performance issue was filed (its
	// table), for rows this work changed.
	Before string
}

// Add records a row.
func (h *H) Add(r Row) { h.rows = append(h.rows, r) }

// Note adds a paragraph under the table: how a figure was measured, or
// why it is missing.
func (h *H) Note(format string, args ...any) { h.notes = append(h.notes, fmt.Sprintf(format, args...)) }

// Logf reports progress on the terminal (not in the results).
func (h *H) Logf(format string, args ...any) {
	fmt.Fprintf(h.Log, "bench: "+format+"\n", args...)
}

// Ratio is molt's median over the comparator's (NaN without comparator).
func (r Row) Ratio() float64 {
	if len(r.Comp) == 0 {
		return math.NaN()
	}
	return r.Molt.Median() / r.Comp.Median()
}

// Met reports whether the row meets its goal, and whether it has one.
func (r Row) Met() (met, hasGoal bool) {
	if r.Goal == 0 {
		return false, false
	}
	v := r.Molt.Median()
	if len(r.Comp) > 0 {
		v = r.Ratio()
	}
	if r.Higher {
		return v >= r.Goal, true
	}
	return v <= r.Goal, true
}

// Measured is the wall time, peak memory and output of one command.
type Measured struct {
	Wall   time.Duration
	MaxRSS float64 // MiB, of the process and the children it waited for
	// TreeRSS is the peak, in MiB, of the summed VmRSS of the process and
	// all its descendants (RunTree only; never below MaxRSS): a molt
	// command and its evaluation child are alive together.
	TreeRSS float64
	Out     []byte // stdout and stderr
}

// Run runs a command to its end and measures it; a failure is an error
// with its output.
func Run(dir string, env []string, name string, args ...string) (Measured, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	m := Measured{Wall: time.Since(start), Out: out.Bytes()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		m.MaxRSS = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out.Bytes(), 2000))
	}
	return m, nil
}

// treeSampleEvery is how often RunTree reads the process tree's memory.
const treeSampleEvery = 2 * time.Millisecond

// RunTree runs a command like Run and also samples the memory of its
// process tree (Measured.TreeRSS) every treeSampleEvery.
func RunTree(dir string, env []string, name string, args ...string) (Measured, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Measured{}, err
	}
	stop := make(chan struct{})
	peakc := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(treeSampleEvery)
		defer t.Stop()
		for {
			peak = max(peak, treeRSS(cmd.Process.Pid))
			select {
			case <-stop:
				peakc <- peak
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	m := Measured{Wall: time.Since(start), Out: out.Bytes()}
	close(stop)
	peak := <-peakc
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		m.MaxRSS = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	m.TreeRSS = max(float64(peak)/1024, m.MaxRSS)
	if err != nil {
		return m, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(m.Out, 2000))
	}
	return m, nil
}

// treeRSS returns the VmRSS, in KiB, of pid and all its descendants
// (found through /proc/PID/task/TID/children).
func treeRSS(pid int) int64 {
	var total int64
	seen := map[int]bool{}
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		total += vmRSS(p)
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, t.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					todo = append(todo, c)
				}
			}
		}
	}
	return total
}

// vmRSS returns the VmRSS of pid in KiB, 0 when it is gone.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 { // "12345", "kB"
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb
			}
		}
	}
	return 0
}

// freeAddr returns a 127.0.0.1 address no one listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// GoBench runs one Go benchmark (an anchored name, in pkg, with -benchmem)
// count times in one go test process and returns each metric's samples
// ("ns/op", "B/op", "allocs/op" and what the benchmark reports itself) by
// sub-benchmark name (the part after the benchmark's own name, "" for
// none).
func (h *H) GoBench(pkg, name, benchtime string, count int, env ...string) (map[string]map[string]Samples, error) {
	args := []string{"test", "-run", "^$", "-bench", "^" + name + "$", "-benchmem",
		"-count", strconv.Itoa(count), "-benchtime", benchtime, "./" + pkg}
	m, err := Run(h.Root, env, "go", args...)
	if err != nil {
		return nil, err
	}
	return parseGoBench(m.Out, name)
}

// parseGoBench reads the result lines of go test -bench.
func parseGoBench(out []byte, name string) (map[string]map[string]Samples, error) {
	res := map[string]map[string]Samples{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], name) {
			continue
		}
		if rest := f[0][len(name):]; rest != "" && rest[0] != '/' && rest[0] != '-' {
			continue // another benchmark whose name begins with name
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		sub := strings.TrimPrefix(f[0], name)
		sub = strings.TrimPrefix(sub, "/")
		if i := strings.LastIndexByte(sub, '-'); i >= 0 { // the -GOMAXPROCS suffix
			if _, err := strconv.Atoi(sub[i+1:]); err == nil {
				sub = sub[:i]
			}
		}
		if res[sub] == nil {
			res[sub] = map[string]Samples{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			res[sub][f[i+1]] = append(res[sub][f[i+1]], v)
		}
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no result of %s in:\n%s", name, tail(out, 2000))
	}
	return res, nil
}

// Sum adds the samples up.
func (s Samples) Sum() float64 {
	t := 0.0
	for _, v := range s {
		t += v
	}
	return t
}

// Scale multiplies every sample (ns to ms: 1e-6).
func (s Samples) Scale(k float64) Samples {
	out := make(Samples, len(s))
	for i, v := range s {
		out[i] = v * k
	}
	return out
}

// Seconds turns durations into samples in seconds.
func Seconds(ds ...time.Duration) Samples {
	out := make(Samples, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// Tool finds a comparator's command: on PATH, then in bin/tools (where
// .ci/run and `make bench-tools` install the cue CLI).
func (h *H) Tool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{filepath.Join(h.Root, "bin", "tools"), "/usr/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (make bench-tools installs what the comparisons need)", name)
}
