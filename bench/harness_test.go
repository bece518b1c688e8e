package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedianAndSpread(t *testing.T) {
	s := Samples{3, 1, 2}
	if m := s.Median(); m != 2 {
		t.Errorf("median %v, want 2", m)
	}
	if m := (Samples{4, 1, 2, 3}).Median(); m != 2.5 {
		t.Errorf("median of four %v, want 2.5", m)
	}
	if sp := s.Spread(); sp != 100 {
		t.Errorf("spread %v, want 100 %%", sp)
	}
	if !math.IsNaN(Samples{}.Median()) {
		t.Error("the median of nothing is a number")
	}
	if !slices.Equal(s, Samples{3, 1, 2}) {
		t.Errorf("Median sorted the samples in place: %v", s)
	}
}

// Alternate swaps the order every round: a b, b a, a b.
func TestAlternateSwapsOrder(t *testing.T) {
	var order []string
	h := &H{}
	f := func(name string, v float64) func() (Metrics, error) {
		return func() (Metrics, error) {
			order = append(order, name)
			return Metrics{"x": v}, nil
		}
	}
	as, bs, err := h.Alternate(3, f("a", 1), f("b", 2))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "b", "a", "a", "b"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if !slices.Equal(as["x"], Samples{1, 1, 1}) || !slices.Equal(bs["x"], Samples{2, 2, 2}) {
		t.Errorf("samples %v / %v", as, bs)
	}
}

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkPlanNoop/services/10000-2         	      20	   2800000 ns/op	  1234 B/op	  12 allocs/op	  280.0 ns/instance
BenchmarkPlanNoop/services/10000-2         	      20	   3000000 ns/op	  1234 B/op	  12 allocs/op	  300.0 ns/instance
BenchmarkPlanNoopOther-2 	 1	 5 ns/op
BenchmarkRollingRollout20-2     	       5	  91073593 ns/op	        69.74 ms/rollout	        10.00 passes/op
PASS
`)
	res, err := parseGoBench(out, "BenchmarkPlanNoop")
	if err != nil {
		t.Fatal(err)
	}
	if got := res["services/10000"]["ns/op"]; !slices.Equal(got, Samples{2800000, 3000000}) {
		t.Errorf("ns/op %v", got)
	}
	if got := res["services/10000"]["ns/instance"]; !slices.Equal(got, Samples{280, 300}) {
		t.Errorf("ns/instance %v", got)
	}
	if _, ok := res["Other"]; ok {
		t.Error("another benchmark with the same prefix was read")
	}
	res, err = parseGoBench(out, "BenchmarkRollingRollout20")
	if err != nil || !slices.Equal(res[""]["ms/rollout"], Samples{69.74}) {
		t.Errorf("ms/rollout: %v, %v", res, err)
	}
	if _, err := parseGoBench(out, "BenchmarkMissing"); err == nil {
		t.Error("a benchmark that did not run gave no error")
	}
}

func TestGoals(t *testing.T) {
	for _, c := range []struct {
		row       Row
		met, goal bool
	}{
		{Row{Molt: Samples{9}, Comp: Samples{10}, Higher: true, Goal: 0.9}, true, true},
		{Row{Molt: Samples{8}, Comp: Samples{10}, Higher: true, Goal: 0.9}, false, true},
		{Row{Molt: Samples{12}, Comp: Samples{10}, Goal: 1.2}, true, true},
		{Row{Molt: Samples{13}, Comp: Samples{10}, Goal: 1.2}, false, true},
		{Row{Molt: Samples{0.004}, Goal: 0.005}, true, true},
		{Row{Molt: Samples{0.006}, Goal: 0.005}, false, true},
		{Row{Molt: Samples{1}}, false, false},
	} {
		met, goal := c.row.Met()
		if met != c.met || goal != c.goal {
			t.Errorf("%+v: met %v goal %v, want %v %v", c.row, met, goal, c.met, c.goal)
		}
	}
}

func TestRender(t *testing.T) {
	h := &H{Root: t.TempDir()}
	h.Add(Row{Figure: "router throughput", Unit: "req/s", Molt: Samples{14000, 15000}, Comparator: "nginx",
		Comp: Samples{15000, 16000}, Higher: true, Goal: 0.9, Before: "11.8k req/s"})
	h.Add(Row{Figure: "no-op plan", Unit: "s", Molt: Samples{0.0062}, Comparator: "goal", Goal: 0.005})
	h.Note("how")
	doc := h.render(90*time.Second, 5)
	for _, want := range []string{
		"| router throughput | 14,500 req/s | nginx: 15,500 req/s | 0.94 | ≥ 0.9× | met | 7 % / 6 % | 11.8k req/s |",
		"| no-op plan | 6.2 ms | goal | — | ≤ 5 ms | **missed** |",
		"Goals: 1 met, 1 missed; 0 figures without a goal.",
		"- how",
		"- machine: ",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the results lack %q:\n%s", want, doc)
		}
	}
}

// TestCommit: the commit a run names says "with uncommitted changes" when
// the tree differs from it, but not when only the results it replaces do.
func TestCommit(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("main.go", "package main\n")
	write("bench/RESULTS.md", "old\n")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	if c := commit(dir, "bench/RESULTS.md"); len(c) != 12 {
		t.Fatalf("clean tree: %q, want a 12-digit commit alone", c)
	}
	write("bench/RESULTS.md", "new\n")
	if c := commit(dir, "bench/RESULTS.md"); strings.Contains(c, "uncommitted") {
		t.Errorf("only the results changed: %q", c)
	}
	write("main.go", "package main // changed\n")
	if c := commit(dir, "bench/RESULTS.md"); !strings.Contains(c, "with uncommitted changes") {
		t.Errorf("a source file changed: %q, want it said", c)
	}
}
