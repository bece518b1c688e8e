package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/sources/github/githubtest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// hostileComprehension is the fleet of issue 13 that ran for more than 8
// minutes at 1.18 GB before evaluation was bounded.
const hostileComprehension = `import "list"

name: "x"
x: [for a in list.Range(0,3000,1) for b in list.Range(0,3000,1) {a*b}]
`

// moltMeasured runs the molt binary and returns its exit status, its
// output and the peak resident set of its evaluation child (VmHWM,
// sampled every 10 ms while it runs; zero when no child was seen, as when
// a cap refused the snapshot before evaluation).
func moltMeasured(t *testing.T, args ...string) (int, string, int64) {
	t.Helper()
	cmd := exec.Command("molt", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var peak int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-exited:
			done = true
		case <-time.After(5 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("molt %s still runs after 5 minutes", strings.Join(args, " "))
		case <-tick.C:
			for _, pid := range childPIDs(cmd.Process.Pid) {
				peak = max(peak, statusKB(pid, "VmHWM")<<10)
			}
		}
	}
	t.Logf("molt %s: exit %d in %v, evaluation child's peak RSS %.1f MiB", strings.Join(args, " "), cmd.ProcessState.ExitCode(),
		time.Since(began).Round(time.Millisecond), float64(peak)/(1<<20))
	return cmd.ProcessState.ExitCode(), out.String(), peak
}

// statusKB reads a "kB" field of /proc/PID/status, 0 when it cannot.
func statusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// writeTree writes files (slash-separated names) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const hostileModule = "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n"

// TestHostileReposRefused: each hostile repository of issue 13 is refused
// by `molt validate DIR` with an error that says why (the limit named when
// a limit stopped it), and molt with its child stays within the memory
// limit; the Git snapshot of a repository whose .cue file is a symlink out
// of the tree is refused too.
func TestHostileReposRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	outside := filepath.Join(t.TempDir(), "secret.cue")
	if err := os.WriteFile(outside, []byte("name: \"stolen\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const memory = 128 << 20 // the smallest limit below
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		flags []string
		want  string
	}{{
		name: "comprehension",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": hostileComprehension})
		},
		flags: []string{"--eval-memory", "128MiB"},
		want:  "evaluation stopped: it used more than 128 MiB of memory (limit --eval-memory)",
	}, {
		name: "comprehension, wall clock",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": hostileComprehension})
		},
		flags: []string{"--eval-timeout", "2s"},
		want:  "evaluation stopped: it ran for more than 2s (limit --eval-timeout)",
	}, {
		name: "comprehension, CPU",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": hostileComprehension})
		},
		flags: []string{"--eval-cpu", "1s"},
		want:  "evaluation stopped: it used more than 1s of CPU time (limit --eval-cpu)",
	}, {
		name: "100,000 files",
		setup: func(t *testing.T, dir string) {
			for i := range 100_000 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.cue", i)), []byte("x: 1\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		},
		want: "more CUE files than the limit of 10000 (limit --eval-max-files)",
	}, {
		name: "a 50 MB file",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": "name: \"x\"\n// " + strings.Repeat("x", 50<<20) + "\n"})
		},
		want: "fleet.cue: file is larger than the limit of 4 MiB (limit --eval-max-file-bytes)",
	}, {
		name: "10,000 levels of nesting",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": "name: \"x\"\nx: " + strings.Repeat("{a: ", 10_000) + "1" + strings.Repeat("}", 10_000) + "\n"})
		},
		want: "expression exceeds maximum nesting depth of 10000",
	}, {
		name: "directories nested too deep",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"cue.mod/module.cue": hostileModule, "fleet.cue": "package fleet\n",
				strings.Repeat("d/", 40) + "x.cue": "package x\n"})
		},
		want: "directories are nested deeper than the limit of 32 levels (limit --eval-max-depth)",
	}, {
		name: "invalid UTF-8",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": "name: \"caf\xe9\"\n"})
		},
		want: "fleet.cue:1:11: invalid UTF-8",
	}, {
		name: "symlink out of the tree",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"fleet.cue": "services: web: process: command: [\"./app\"]\n"})
			if err := os.Symlink(outside, filepath.Join(dir, "evil.cue")); err != nil {
				t.Fatal(err)
			}
		},
		want: "evil.cue: symlinks are not followed",
	}, {
		name: "non-stdlib import",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"cue.mod/module.cue": hostileModule,
				"fleet.cue": "package fleet\n\nimport \"evil.example/x\"\n\nname: x.name\n"})
		},
		want: `fleet.cue:3:8: import failed: cannot find package "evil.example/x"`,
	}, {
		name: "@embed",
		setup: func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"cue.mod/module.cue": hostileModule,
				"fleet.cue":  "@extern(embed)\n\npackage fleet\n\nservices: _ @embed(file=\"services.json\")\n",
				"other.json": "{}"})
		},
		want: "fleet.cue:1:1: @extern(embed) is refused",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			code, out, peak := moltMeasured(t, append([]string{"validate", dir}, tt.flags...)...)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 1 with %q:\n%s", code, tt.want, out)
			}
			bound := int64(schema.DefaultMemory)
			if slices.Contains(tt.flags, "--eval-memory") {
				bound = memory
			}
			if peak > bound+schema.DataHeadroom {
				t.Errorf("the child's peak RSS %d MiB: above its limit of %d MiB", peak>>20, bound>>20)
			}
		})
	}

	t.Run("Git snapshot with a symlink blob", func(t *testing.T) {
		repo := gittest.NewRepo(t)
		repo.WriteFile("fleet.cue", "services: web: process: command: [\"./app\"]\n")
		repo.Symlink(outside, "evil.cue")
		repo.Commit("a symlink out of the tree")
		code, out, _ := moltMeasured(t, "validate", "--repo", repo.Dir)
		if code != 1 || !strings.Contains(out, "evil.cue: symlinks are not followed") {
			t.Errorf("exit %d, want 1 refusing evil.cue:\n%s", code, out)
		}
		if strings.Contains(out, "stolen") {
			t.Errorf("the file outside the tree was read:\n%s", out)
		}
	})
}

// TestHostileComprehensionDefaults: at the default limits, the
// comprehension is stopped within the documented bounds (60 s, 1 GiB,
// 60 s of CPU) instead of running for minutes.
func TestHostileComprehensionDefaults(t *testing.T) {
	if testing.Short() || os.Getenv("MOLT_TEST_LONG") != "1" {
		t.Skip("a minute of CPU at the default limits: MOLT_TEST_LONG=1 runs it (TestHostileReposRefused covers every limit with small ones)")
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"fleet.cue": hostileComprehension})
	code, out, peak := moltMeasured(t, "validate", dir)
	if code != 1 || !strings.Contains(out, "evaluation stopped: it ") || !strings.Contains(out, "(limit --eval-") {
		t.Errorf("exit %d, want 1 naming a limit:\n%s", code, out)
	}
	if peak > 1<<30+schema.DataHeadroom {
		t.Errorf("peak RSS %d MiB, above the default limit", peak>>20)
	}
}

// childPIDs returns the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// TestValidateSIGTERMDuringEvaluation: SIGTERM of molt validate in the
// middle of the comprehension ends it at once, and its evaluation child
// with it.
func TestValidateSIGTERMDuringEvaluation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"fleet.cue": hostileComprehension})
	cmd := exec.Command("molt", "validate", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer cmd.Process.Kill()
	var child int
	targetstest.Eventually(t, 10*time.Second, "the evaluation child", func() bool {
		if c := childPIDs(cmd.Process.Pid); len(c) > 0 {
			child = c[0]
			return true
		}
		return false
	})
	time.Sleep(500 * time.Millisecond) // well inside the evaluation
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("molt validate still runs 10 s after SIGTERM")
	}
	t.Logf("exited %v after SIGTERM: %s", time.Since(began).Round(time.Millisecond), strings.TrimSpace(out.String()))
	if !strings.Contains(out.String(), "evaluation cancelled") {
		t.Errorf("output does not say the evaluation was cancelled:\n%s", out.String())
	}
	targetstest.Eventually(t, 5*time.Second, "the child gone", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", child))
		return os.IsNotExist(err)
	})
}

// TestHostilePullRequest: a pull request whose head is the comprehension
// gets a plan comment and a failed plan status naming the limit, while
// serve stays up and the fleet keeps serving, without a failed request;
// merged, the head is refused the same way and the last good revision
// keeps serving until a good commit deploys.
func TestHostilePullRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	base := repo.First
	gitSrv := gittest.ServeHTTP(t, repo.Root)
	gh := githubtest.Start(t, githubtest.Options{Owner: "acme", Repo: "fleet", Token: "ghs_token_for_tests"})
	gh.PutCommit(base, "v1", githubtest.TreeSHA("v1"))
	gh.SetRef("heads/main", base)
	state := stateDir(t)
	tokenFile := t.TempDir() + "/gh-token"
	os.WriteFile(tokenFile, []byte("ghs_token_for_tests\n"), 0o600)
	s := startServe(t, gitSrv.RepoURL("fleet.git"), state, "@every 1s",
		"--github-repo", "acme/fleet", "--github-api-url", gh.URL, "--github-token-file", tokenFile,
		"--eval-timeout", "3s")
	answers(t, repo.App, "hello from v1", 30*time.Second)
	load := targetstest.StartLoad(repo.App, 2, 5*time.Millisecond)

	repo.Git("checkout", "-q", "-b", "hostile")
	repo.WriteFile("fleet.cue", "import \"list\"\n\n"+repo.source("v2")+
		"\nx: [for a in list.Range(0,3000,1) for b in list.Range(0,3000,1) {a*b}]\n")
	head := repo.Commit("a comprehension")
	gh.PutCommit(head, "a comprehension", githubtest.TreeSHA("hostile"), base)
	repo.Push()
	pr := gh.AddPull(githubtest.PullSeed{Title: "hostile", Head: "hostile", Base: "main", HeadSHA: head, Commits: []string{head}})
	if code := s.sendHook(t, "pull_request", pullRequestPayload(t, "opened", pr, head, "hostile")); code != http.StatusAccepted {
		t.Fatalf("pull_request delivery: %d", code)
	}
	const want = "evaluation stopped: it ran for more than 3s (limit --eval-timeout)"
	targetstest.Eventually(t, 30*time.Second, "a failed plan status", func() bool { return hasStatus(gh, head, "molt/plan", "failure") })
	for _, st := range gh.Statuses(head) {
		if st.Context == "molt/plan" && st.Description != want {
			t.Errorf("plan status %q: %q, want %q", st.State, st.Description, want)
		}
	}
	targetstest.Eventually(t, 10*time.Second, "the plan comment", func() bool { return len(gh.Comments(pr)) == 1 })
	if body := gh.Comments(pr)[0].Body; !strings.Contains(body, want) {
		t.Errorf("the plan comment does not name the limit:\n%s", body)
	}
	// serve is up and the fleet serves v1.
	answers(t, repo.App, "hello from v1", time.Second)
	if resp, err := http.Get("http://" + s.listen + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("serve /healthz after the hostile plan: %v %v", resp, err)
	}

	// Merged: the tracked branch's head is refused with the limit named,
	// v1 keeps serving, and the next good commit deploys.
	repo.Git("checkout", "-q", "main")
	repo.Git("merge", "-q", "--ff-only", "hostile")
	repo.Push()
	targetstest.Eventually(t, 30*time.Second, "serve refusing the merged head", func() bool {
		return strings.Contains(s.logs.String(), want)
	})
	answers(t, repo.App, "hello from v1", time.Second)
	repo.WriteFile("fleet.cue", repo.source("v2"))
	repo.Commit("v2")
	repo.Push()
	answers(t, repo.App, "hello from v2", 30*time.Second)
	if bodies := load.Finish(t); bodies["hello from v1"] == 0 {
		t.Errorf("answers: %v, want v1 until v2", bodies)
	}
	select {
	case err := <-s.exited:
		t.Fatalf("molt serve exited: %v", err)
	default:
	}
}
