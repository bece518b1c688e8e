package schema

import (
	"context"
	"errors"
	"fmt"
	"github.com/molt-dev/molt/schema/schematest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMain makes the test binary its own evaluation child: a Child started
// by these tests runs it with MOLT_EVAL_LIMITS set.
func TestMain(m *testing.M) {
	if os.Getenv(limitsEnv) != "" {
		os.Exit(RunChild(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testChild(t testing.TB, lim Limits) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &Child{Path: exe, Args: []string{"schema.test"}, Limits: lim, Names: LimitNames{Wall: "--wall", Memory: "--mem", CPU: "--cpu"}}
}

// comprehension is the hostile fleet of issue 13: nine million products.
const comprehension = `import "list"

name: "x"
x: [for a in list.Range(0, 3000, 1) for b in list.Range(0, 3000, 1) {a * b}]
`

// TestChildRoundTrip: a fleet evaluated in a child is the fleet evaluated
// in the process, every field of every example fleet; the issues of an
// invalid fleet keep their files, lines, columns and paths.
func TestChildRoundTrip(t *testing.T) {
	child := Loader{Evaluator: testChild(t, Limits{})}
	for _, name := range exampleNames(t) {
		t.Run(name, func(t *testing.T) {
			want, err := Load(os.DirFS(fleetsDir), name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := child.Load(os.DirFS(fleetsDir), name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("child's fleet differs (-in process +child):\n%s", diff)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		fsys := archiveFS(t, `
-- prod/web.cue --
package fleet

services: web: {
	process: command: ["./app"]
	replicas: -1
	ports: http: "x"
}
-- prod/db.cue --
package fleet

services: db: replicas: 1
`)
		_, want := Loader{}.Load(fsys, "prod")
		_, got := child.Load(fsys, "prod")
		var wi, gi *InvalidError
		if !errors.As(want, &wi) || !errors.As(got, &gi) {
			t.Fatalf("want two *InvalidError, got %v and %v", want, got)
		}
		if len(wi.Issues) < 2 {
			t.Fatalf("too few issues to compare: %v", wi)
		}
		if diff := cmp.Diff(wi.Issues, gi.Issues); diff != "" {
			t.Errorf("child's issues differ (-in process +child):\n%s", diff)
		}
	})
}

// TestChildStopsAtEachLimit: the comprehension is stopped by whichever
// limit is the smallest, and the error names it; the peak resident set
// stays near the memory limit.
func TestChildStopsAtEachLimit(t *testing.T) {
	snap := &Snapshot{Dir: ".", Files: map[string][]byte{"fleet.cue": []byte(comprehension)}}
	tests := []struct {
		name string
		lim  Limits
		want string
	}{
		{"wall", Limits{Wall: 1500 * time.Millisecond}, "evaluation stopped: it ran for more than 1.5s (limit --wall)"},
		{"memory", Limits{Memory: 96 << 20}, "evaluation stopped: it used more than 96 MiB of memory (limit --mem)"},
		{"cpu", Limits{CPU: time.Second}, "evaluation stopped: it used more than 1s of CPU time (limit --cpu)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, u, err := testChild(t, tt.lim).EvaluateUsage(context.Background(), snap)
			t.Logf("wall %v, CPU %v, peak RSS %.1f MiB", u.Wall.Round(time.Millisecond), u.CPU.Round(time.Millisecond), float64(u.PeakRSS)/(1<<20))
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("got %v, %v; want an *InvalidError", f, err)
			}
			if got := inv.Error(); got != tt.want {
				t.Errorf("error %q, want %q", got, tt.want)
			}
			if lim := tt.lim.withDefaults().Memory + DataHeadroom; u.PeakRSS > lim {
				t.Errorf("peak RSS %d bytes, above the data limit %d", u.PeakRSS, lim)
			}
		})
	}
}

// TestChildCancel: a cancelled context kills the child at once, and says
// so with the context's error (not an invalid fleet).
func TestChildCancel(t *testing.T) {
	snap := &Snapshot{Dir: ".", Files: map[string][]byte{"fleet.cue": []byte(comprehension)}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	began := time.Now()
	_, err := testChild(t, Limits{}).Evaluate(ctx, snap)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	var inv *InvalidError
	if errors.As(err, &inv) {
		t.Errorf("a cancellation is not an invalid fleet: %v", err)
	}
	t.Logf("returned %v after the start", time.Since(began).Round(time.Millisecond))
}

// TestChildCrash: a child that dies without a result is an invalid fleet
// whose message says so; one that cannot start is an error of its own.
func TestChildCrash(t *testing.T) {
	c := &Child{Path: "/bin/sh", Args: []string{"sh", "-c", "echo boom >&2; exit 7"}}
	_, err := c.Evaluate(context.Background(), &Snapshot{Dir: "."})
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Error() != "evaluation failed: boom" {
		t.Errorf("crash: got %v", err)
	}
	c = &Child{Path: "/nonexistent/molt", Args: []string{"molt"}}
	_, err = c.Evaluate(context.Background(), &Snapshot{Dir: "."})
	if err == nil || errors.As(err, &inv) {
		t.Errorf("no executable: got %v, want a plain error", err)
	}
}

// BenchmarkChild compares a load in a child with one in the process, on
// the benchmark fleets (go test -bench Child -run '^$' ./schema).
func BenchmarkChild(b *testing.B) {
	for _, n := range []int{10, 1000, 5000} {
		fsys := fstest.MapFS{"fleet.cue": {Data: schematest.GeneratedFleet(n)}}
		for _, ev := range []struct {
			name string
			ev   Evaluator
		}{{"in-process", nil}, {"child", testChild(b, Limits{})}} {
			b.Run(fmt.Sprintf("services=%d/%s", n, ev.name), func(b *testing.B) {
				ld := Loader{Evaluator: ev.ev}
				var peak int64
				for b.Loop() {
					snap, err := ld.readSnapshot(fsys, ".")
					if err != nil {
						b.Fatal(err)
					}
					if c, ok := ev.ev.(*Child); ok {
						_, u, err := c.EvaluateUsage(context.Background(), snap.export())
						if err != nil {
							b.Fatal(err)
						}
						peak = max(peak, u.PeakRSS)
					} else if _, err := snap.evaluate(); err != nil {
						b.Fatal(err)
					}
				}
				if peak > 0 {
					b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
				}
			})
		}
	}
}

// TestFiveThousandServices: the default limits hold a fleet of 5,000
// services, in one file and in one file each.
func TestFiveThousandServices(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 5,000 services twice")
	}
	one := schematest.GeneratedFleet(5000)
	each := fstest.MapFS{"fleet.cue": {Data: []byte("package fleet\n\nname: \"bench\"\n")}}
	for i, part := range strings.Split(string(one), "\nservices: ")[1:] {
		each[fmt.Sprintf("svc-%d.cue", i)] = &fstest.MapFile{Data: []byte("package fleet\n\nservices: " + part)}
	}
	lim := Limits{} // the defaults
	if raceEnabled {
		// The race detector's shadow memory and its slowdown (5 to 20
		// times) are not molt's: this test shows what the default limits
		// hold, which a race build cannot (one file took 54 s of the 60 s
		// under -race in CI).
		lim.Memory = 4 * DefaultMemory
		lim.Wall, lim.CPU = 5*DefaultWall, 5*DefaultCPU
	}
	ld := Loader{Evaluator: testChild(t, lim)}
	for name, fsys := range map[string]fstest.MapFS{"one file": {"fleet.cue": {Data: one}}, "a file each": each} {
		began := time.Now()
		f, err := ld.Load(fsys, ".")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(f.Services) != 5000 {
			t.Errorf("%s: %d services", name, len(f.Services))
		}
		t.Logf("%s (%d bytes): %v", name, len(one), time.Since(began).Round(time.Millisecond))
	}
}
