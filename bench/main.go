// Command bench runs molt's performance comparisons, each side by side
// with the tool a user would otherwise run (nginx, cue vet, git) or with
// the ideal the design sets, both in the same run, alternating, several
// rounds, and writes the medians, ratios and spreads to bench/RESULTS.md.
//
//	make bench                      # every comparison, bench/RESULTS.md
//	go run ./bench -only router     # the comparisons whose name matches
//
// Benchmarks are not tests: nothing here fails on a slow machine; a
// comparison that cannot run (a comparator missing) is reported as such.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// comparison is one group of rows: a name for -only and the function that
// measures and adds them.
type comparison struct {
	name string
	run  func(h *H) error
}

// comparisons run in this order. Each lives in its own file.
var comparisons = []comparison{
	{"rollout", benchRollouts},
	{"router", benchRouter},
	{"validate", benchValidate},
	{"git", benchGit},
	{"plan", benchPlan},
	{"heal", benchHeal},
	{"down", benchDown},
}

func main() {
	out := flag.String("out", "bench/RESULTS.md", "where to write the results (relative to the repository's root)")
	rounds := flag.Int("rounds", 5, "rounds of each alternating comparison")
	only := flag.String("only", "", "run only the comparisons whose name matches this regular expression")
	flag.Parse()
	if err := run(*out, *rounds, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out string, rounds int, only string) error {
	re, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "molt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	h := &H{Root: root, Tmp: tmp, Rounds: rounds, Log: os.Stderr, Commit: commit(root, out)}
	start := time.Now()
	h.Molt = filepath.Join(tmp, "molt")
	h.Hello = filepath.Join(tmp, "hello")
	for bin, pkg := range map[string]string{h.Molt: "./cmd/molt", h.Hello: "./testdata/apps/hello"} {
		if m, err := Run(root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", bin, pkg); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, m.Out)
		}
	}
	var failed []string
	for _, c := range comparisons {
		if !re.MatchString(c.name) {
			continue
		}
		h.Logf("%s…", c.name)
		t0 := time.Now()
		if err := c.run(h); err != nil {
			failed = append(failed, c.name)
			h.Note("**%s: not measured**: %s", c.name, oneLine(err.Error()))
			h.Logf("%s failed: %v", c.name, err)
			continue
		}
		h.Logf("%s done in %s", c.name, time.Since(t0).Round(time.Second))
	}
	doc := h.render(time.Since(start), rounds)
	path := out
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, out)
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return err
	}
	h.Logf("wrote %s in %s", path, time.Since(start).Round(time.Second))
	if len(failed) > 0 {
		return fmt.Errorf("not measured: %s (see %s)", strings.Join(failed, ", "), out)
	}
	return nil
}

func repoRoot() (string, error) {
	b, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("find the repository's root: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

// render writes the results as Markdown.
func (h *H) render(took time.Duration, rounds int) string {
	var b strings.Builder
	b.WriteString("# molt's performance, measured\n\n")
	b.WriteString("Written by `make bench` (`go run ./bench`); do not edit by hand. Each figure is the median of its rounds; ")
	fmt.Fprintf(&b, "molt and its comparator ran in the same run, alternating (a b, b a, …), %d rounds unless the row says otherwise. ", rounds)
	b.WriteString("*Ratio* is molt over the comparator; *spread* is (max − min) / median of molt's rounds, then the comparator's. ")
	b.WriteString("*Before* is the figure in the performance issue's table, measured when it was filed (another run, same kind of machine).\n\n")
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- commit: %s\n", h.Commit)
	fmt.Fprintf(&b, "- machine: %s\n", machine())
	fmt.Fprintf(&b, "- %s, whole run %s\n\n", runtime.Version(), took.Round(time.Second))
	met, missed, none := 0, 0, 0
	b.WriteString("| figure | molt | comparator | ratio | goal | met | spread | before |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range h.rows {
		comp := r.Comparator
		if len(r.Comp) > 0 {
			comp = fmt.Sprintf("%s: %s", r.Comparator, fmtValue(r.Comp.Median(), r.Unit))
		}
		ratio, goal := "—", "—"
		if len(r.Comp) > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio())
		}
		if r.Goal != 0 {
			op := "≤"
			if r.Higher {
				op = "≥"
			}
			if len(r.Comp) > 0 {
				goal = fmt.Sprintf("%s %.2g×", op, r.Goal)
			} else {
				goal = op + " " + fmtValue(r.Goal, r.Unit)
			}
		}
		verdict := "—"
		switch ok, has := r.Met(); {
		case !has:
			none++
		case ok:
			verdict = "met"
			met++
		default:
			verdict = "**missed**"
			missed++
		}
		spread := fmt.Sprintf("%.0f %%", r.Molt.Spread())
		if len(r.Comp) > 0 {
			spread += fmt.Sprintf(" / %.0f %%", r.Comp.Spread())
		}
		before := r.Before
		if before == "" {
			before = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Figure, fmtValue(r.Molt.Median(), r.Unit), comp, ratio, goal, verdict, spread, before)
	}
	fmt.Fprintf(&b, "\nGoals: %d met, %d missed; %d figures without a goal.\n", met, missed, none)
	if len(h.notes) > 0 {
		b.WriteString("\n## How each figure was measured\n\n")
		for _, n := range h.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

// fmtValue prints v in unit with three significant digits, durations in
// the unit that suits them.
func fmtValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "—"
	}
	if unit == "s" {
		switch {
		case v < 1e-3:
			return sig(v*1e6) + " µs"
		case v < 1:
			return sig(v*1e3) + " ms"
		}
	}
	return sig(v) + " " + unit
}

func sig(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		s := fmt.Sprintf("%.0f", v)
		if n := len(s); n > 4 { // thousands separators from 10,000
			var t []string
			for n > 3 {
				t = append([]string{s[n-3 : n]}, t...)
				s, n = s[:n-3], n-3
			}
			s = strings.Join(append([]string{s}, t...), ",")
		}
		return s
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// commit names the commit checked out in root when the run starts, and
// says if the tree differs from it but for out, the results the run
// replaces.
func commit(root, out string) string {
	b, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(b))
	if st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)"+filepath.ToSlash(out)).Output(); len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// machine describes the CPU, cores, memory and kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%f", &kb)
		mem = fmt.Sprintf(", %.0f GiB", kb/1024/1024)
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s%s", model, runtime.NumCPU(), mem, kernel)
}
