package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The Git comparison: a cold `molt validate --repo` of a large repository
// against `git clone --bare` of it, both over smart HTTP (git
// http-backend) on 127.0.0.1, and the fetch that repacks molt's cache
// against the others.
const (
	gitCommits = 5001   // the first adds every file, each later one changes two
	gitFiles   = 10_000 // in the head commit, fleet.cue included
	gitDirs    = 100    // the files other than fleet.cue, spread over these
)

// benchGit measures a cold validate --repo against git clone --bare (wall
// time and peak memory of the process tree), the ref advertisements of an
// unchanged poll, and the fetch that triggers the cache's repack
// (BenchmarkFetchRepack) against one that does not.
func benchGit(h *H) error {
	gitBin, err := h.Tool("git")
	if err != nil {
		return err
	}
	root := filepath.Join(h.Tmp, "git-served")
	h.Logf("git: building a repository of %d commits and %d files with git fast-import", gitCommits, gitFiles)
	t0 := time.Now()
	if err := gitBigRepo(gitBin, filepath.Join(root, "fleet.git")); err != nil {
		return err
	}
	h.Logf("git: built in %s", time.Since(t0).Round(time.Millisecond))
	srv, err := gitServe(gitBin, root)
	if err != nil {
		return err
	}
	defer srv.close()
	url := srv.url + "/fleet.git"
	env := gitBenchEnv()

	round := 0
	fresh := func(name string) (string, error) {
		round++
		dir := filepath.Join(h.Tmp, fmt.Sprintf("git-%s-%d", name, round))
		return dir, os.MkdirAll(dir, 0o755)
	}
	validate := func() (Metrics, error) {
		dir, err := fresh("validate")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		// No --state-dir: validate's own temporary cache, under TMPDIR.
		m, err := RunTree(dir, append(env, "TMPDIR="+dir), h.Molt, "validate", "--repo", url)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(string(m.Out), "valid: fleet") {
			return nil, fmt.Errorf("molt validate --repo: unexpected output %q", m.Out)
		}
		return Metrics{"s": m.Wall.Seconds(), "MiB": m.TreeRSS, "maxrss": m.MaxRSS}, nil
	}
	clone := func(name string, args ...string) (Metrics, error) {
		dir, err := fresh(name)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		args = append(append([]string{"clone", "-q", "--bare"}, args...), url, filepath.Join(dir, "fleet.git"))
		m, err := RunTree(dir, env, gitBin, args...)
		if err != nil {
			return nil, err
		}
		return Metrics{"s": m.Wall.Seconds(), "MiB": m.TreeRSS, "maxrss": m.MaxRSS}, nil
	}
	// The comparator's side: the whole clone, then (informative) the
	// shallow one, which is what validate fetches.
	clones := func() (Metrics, error) {
		whole, err := clone("clone")
		if err != nil {
			return nil, err
		}
		shallow, err := clone("clone-depth1", "--depth", "1")
		if err != nil {
			return nil, err
		}
		for k, v := range shallow {
			whole["depth1-"+k] = v
		}
		return whole, nil
	}
	// One of each first, untimed: the server's page cache, molt's binary.
	for _, f := range []func() (Metrics, error){validate, clones} {
		if _, err := f(); err != nil {
			return err
		}
	}
	h.Logf("git: cold validate --repo and git clone --bare alternating, %d rounds", h.Rounds)
	ms, gs, err := h.Alternate(h.Rounds, validate, clones)
	if err != nil {
		return err
	}
	const figure = "cold `validate --repo` (5,001 commits, 10k files)"
	h.Add(Row{Figure: figure + ", time", Unit: "s", Molt: ms["s"],
		Comparator: "`git clone --bare`", Comp: gs["s"], Goal: 1.3, Before: "0.89 s"})
	h.Add(Row{Figure: figure + ", peak memory", Unit: "MiB", Molt: ms["MiB"],
		Comparator: "`git clone --bare`", Comp: gs["MiB"], Goal: 4, Before: "148 MB"})
	h.Add(Row{Figure: figure + ", time, against a shallow clone", Unit: "s", Molt: ms["s"],
		Comparator: "`git clone --bare --depth 1`", Comp: gs["depth1-s"]})
	h.Add(Row{Figure: figure + ", peak memory, against a shallow clone", Unit: "MiB", Molt: ms["MiB"],
		Comparator: "`git clone --bare --depth 1`", Comp: gs["depth1-MiB"]})
	h.Note("git cold validate: a bare repository built with `git fast-import` (%d commits; the first adds %d files, "+
		"fleet.cue, a valid fleet, and %d files of about 1 KiB in %d directories; each later commit changes two of them), "+
		"served by git http-backend (net/http/cgi in the bench process) on 127.0.0.1. Each round runs "+
		"`molt validate --repo URL` with a fresh TMPDIR (its cache is a new temporary directory, which it fetches "+
		"shallow: the tips of the branches and tags, without history) and, alternating, "+
		"`git clone -q --bare URL` then `git clone -q --bare --depth 1 URL`, each into a fresh directory. "+
		"Time is wall time. Memory is the peak of the sum of VmRSS over the process and all its descendants "+
		"(molt's evaluation child; git's remote-http and index-pack), sampled every %s from /proc, or the rusage "+
		"maxrss of the largest single process if that is higher. Medians of rusage maxrss alone (the largest "+
		"single process): molt %.0f MiB, git clone %.0f MiB, git clone --depth 1 %.0f MiB.",
		gitCommits, gitFiles, gitFiles-1, gitDirs, treeSampleEvery,
		ms["maxrss"].Median(), gs["maxrss"].Median(), gs["depth1-maxrss"].Median())

	if err := gitUnchangedPoll(h, srv, url, env); err != nil {
		return err
	}
	return gitRepackRow(h)
}

// gitUnchangedPoll counts the requests of a warm `molt validate --repo`
// whose cache is up to date: one ref advertisement and nothing else is
// the goal.
func gitUnchangedPoll(h *H, srv *gitServer, url string, env []string) error {
	state := filepath.Join(h.Tmp, "git-poll-state")
	defer os.RemoveAll(state)
	if _, err := Run("", env, h.Molt, "validate", "--repo", url, "--state-dir", state); err != nil {
		return err
	}
	var adverts, packs Samples
	for range h.Rounds {
		srv.reset()
		if _, err := Run("", env, h.Molt, "validate", "--repo", url, "--state-dir", state); err != nil {
			return err
		}
		a, p := srv.counts()
		adverts, packs = append(adverts, float64(a)), append(packs, float64(p))
	}
	h.Add(Row{Figure: "unchanged poll: ref advertisements", Unit: "requests", Molt: adverts,
		Comparator: "goal: 1, and no pack negotiation", Goal: 1})
	if n := packs.Sum(); n > 0 {
		h.Note("git unchanged poll: %.0f pack negotiations (POST git-upload-pack) in %d polls: there should be none", n, h.Rounds)
	}
	h.Note("git unchanged poll: `molt validate --repo URL --state-dir DIR` run again on an up-to-date cache; " +
		"the requests it sends to git http-backend are counted (GET …/info/refs is a ref advertisement). " +
		"The cache is the one the first run left, shallow; a whole cache polls the same (sources/git TestFetchShallow).")
	return nil
}

// gitRepackRow times the fetch that triggers the repack of the cache
// against the same fetch without one (BenchmarkFetchRepack).
func gitRepackRow(h *H) error {
	const count = 3
	h.Logf("git: Go benchmark BenchmarkFetchRepack")
	gb, err := h.GoBench("sources/git", "BenchmarkFetchRepack", "3x", count)
	if err != nil {
		return err
	}
	h.Add(Row{Figure: "the fetch that triggers the cache repack", Unit: "ms",
		Molt: gb["triggers"]["ns/op"].Scale(1e-6), Comparator: "other fetches",
		Comp: gb["plain"]["ns/op"].Scale(1e-6), Goal: 1.5, Before: "3.16 s (blocks the reconcile)"})
	h.Note("git repack: `go test -bench '^BenchmarkFetchRepack$' -benchtime 3x -count %d ./sources/git`: one Fetch "+
		"bringing a commit into a copy of a cache of 8 packs, with the pack limit at 8 (this fetch starts the repack, "+
		"which runs in the background) against a limit it does not reach (plain). The repack itself, waited for, took "+
		"%s (triggers-until-repacked).", count, fmtValue(gb["triggers-until-repacked"]["ns/op"].Median()*1e-9, "s"))
	return nil
}

// gitBenchEnv is the environment of both sides: no user or system Git
// configuration, no prompts.
func gitBenchEnv() []string {
	return []string{"GIT_CONFIG_GLOBAL=" + os.DevNull, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}
}

// gitFleet is the fleet at the head of the repository.
const gitFleet = `package fleet

services: web: {
	process: command: ["./hello"]
	replicas: 2
	ports: http: 0
}
`

// gitBigRepo builds the bare repository dir with git fast-import: the
// first commit adds fleet.cue and gitFiles-1 files of about 1 KiB in
// gitDirs directories; each of the other gitCommits-1 commits rewrites two
// of them.
func gitBigRepo(gitBin, dir string) error {
	cmd := exec.Command(gitBin, "init", "-q", "--bare", "-b", "main", dir)
	cmd.Env = append(os.Environ(), gitBenchEnv()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git init: %v\n%s", err, out)
	}
	imp := exec.Command(gitBin, "--git-dir", dir, "fast-import", "--quiet", "--done")
	imp.Env = cmd.Env
	var stderr strings.Builder
	imp.Stderr = &stderr
	in, err := imp.StdinPipe()
	if err != nil {
		return err
	}
	if err := imp.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	file := func(i, version int) {
		var b strings.Builder
		fmt.Fprintf(&b, "# file %d, version %d\n", i, version)
		for l := range 24 {
			fmt.Fprintf(&b, "key%02d: value %d of file %d\n", l, (i*31+l*7+version)%1000, i)
		}
		fmt.Fprintf(w, "M 100644 inline %s\n", gitFilePath(i))
		data(b.String())
	}
	const when = 1_700_000_000
	for c := range gitCommits {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@molt.invalid> %d +0000\n", when+c*60)
		data(fmt.Sprintf("commit %d", c))
		if c == 0 {
			fmt.Fprintf(w, "M 100644 inline fleet.cue\n")
			data(gitFleet)
			for i := range gitFiles - 1 {
				file(i, 0)
			}
			continue
		}
		file((c*7919)%(gitFiles-1), c)
		file((c*104729+1)%(gitFiles-1), c)
	}
	fmt.Fprintf(w, "done\n")
	if err := w.Flush(); err != nil {
		return err
	}
	if err := in.Close(); err != nil {
		return err
	}
	if err := imp.Wait(); err != nil {
		return fmt.Errorf("git fast-import: %v\n%s", err, stderr.String())
	}
	return nil
}

func gitFilePath(i int) string {
	return fmt.Sprintf("d%02d/f%04d.yaml", i%gitDirs, i)
}

// gitServer is git http-backend behind net/http/cgi on 127.0.0.1; it
// counts the ref advertisements and pack negotiations it answers.
type gitServer struct {
	url string
	srv *http.Server

	mu             sync.Mutex
	adverts, packs int
}

func gitServe(gitBin, root string) (*gitServer, error) {
	out, err := exec.Command(gitBin, "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  append(gitBenchEnv(), "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &gitServer{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs"):
			s.adverts++
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.packs++
		}
		s.mu.Unlock()
		backend.ServeHTTP(w, r)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *gitServer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adverts, s.packs = 0, 0
}

func (s *gitServer) counts() (adverts, packs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adverts, s.packs
}

func (s *gitServer) close() { _ = s.srv.Close() }
