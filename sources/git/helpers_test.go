package git_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/git/gittest"
)

// fixture is the repository most tests start from:
//
//	main:    first ── second            (HEAD of the remote)
//	feature: first ── feature
//	tags:    v1 (lightweight) and v1.1 (annotated), both on first
//
// Its tree holds a README, fleet/ (plain files only), bin/run.sh
// (executable), link.cue -> fleet/services.cue, escape -> ../../etc/passwd,
// fleetlink -> fleet, and a submodule entry modules/sub.
type fixture struct {
	src     *gittest.Repo
	first   string
	second  string
	feature string
	v11     string // the annotated tag object
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	src := gittest.NewRepo(t)
	src.WriteFile("README.md", "hello\n")
	src.WriteFile("fleet/services.cue", "package fleet\n\nservices: web: replicas: 2\n")
	src.WriteFile("fleet/sub/values.cue", "package fleet\n\nvalues: port: 8080\n")
	src.WriteExecutable("bin/run.sh", "#!/bin/sh\necho hi\n")
	src.Symlink("fleet/services.cue", "link.cue")
	src.Symlink("../../etc/passwd", "escape")
	src.Symlink("fleet", "fleetlink")
	f := &fixture{src: src}
	f.first = src.Commit("first\n\nwith a body")
	src.Tag("v1")
	f.v11 = src.AnnotatedTag("v1.1", "release 1.1")

	src.Git("checkout", "-q", "-b", "feature")
	src.WriteFile("fleet/feature.cue", "package fleet\n")
	f.feature = src.Commit("feature")
	src.Git("checkout", "-q", "main")

	src.WriteFile("README.md", "hello again\n")
	src.Gitlink("modules/sub", f.first)
	f.second = src.Commit("second")
	return f
}

// served publishes the fixture as fleet.git and serves it over HTTP.
func (f *fixture) served(t *testing.T) (*gittest.Server, string) {
	t.Helper()
	root := t.TempDir()
	f.src.Publish(root, "fleet.git")
	srv := gittest.ServeHTTP(t, root)
	return srv, srv.RepoURL("fleet.git")
}

// open opens a Repo for url with a cache in a new temporary directory.
func open(t testing.TB, url string) *git.Repo {
	t.Helper()
	return openIn(t, url, t.TempDir(), nil)
}

func openIn(t testing.TB, url, cacheDir string, log *slog.Logger) *git.Repo {
	t.Helper()
	r, err := git.Open(context.Background(), git.Options{URL: url, CacheDir: cacheDir, Logger: log})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func fetch(t testing.TB, r *git.Repo) git.FetchResult {
	t.Helper()
	res, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return res
}

func resolve(t testing.TB, r *git.Repo, ref string) git.Commit {
	t.Helper()
	c, err := r.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	return c
}

// inPack returns how many objects the cache holds in packs, as the git
// command-line tool counts them.
func inPack(t *testing.T, r *git.Repo) int {
	t.Helper()
	out := gittest.Git(t, "", nil, "--git-dir", r.Dir(), "count-objects", "-v")
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "in-pack: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("count-objects: no in-pack line in %q", out)
	return 0
}

// treeState returns every file under dir with its content, to tell
// whether something changed it.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			state[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		state[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// logBuffer is a slog handler's destination that tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
