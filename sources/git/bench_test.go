package git_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molt-dev/molt/sources/git/gittest"
)

// benchRepo is a fleet-sized repository: 20 directories of 15 files of
// about 1 KiB, and 10 commits of history, published and served over HTTP.
func benchRepo(b *testing.B) (*gittest.Repo, *gittest.Server, string) {
	b.Helper()
	src := gittest.NewRepo(b)
	for c := range 10 {
		for d := range 20 {
			for f := range 15 {
				if c > 0 && (d+f+c)%7 != 0 {
					continue // later commits change a seventh of the files
				}
				src.WriteFile(fmt.Sprintf("svc%02d/file%02d.cue", d, f),
					fmt.Sprintf("package fleet\n// commit %d\n%s\n", c, strings.Repeat("x: 1\n", 200)))
			}
		}
		src.Commit(fmt.Sprintf("commit %d", c))
	}
	root := b.TempDir()
	src.Publish(root, "fleet.git")
	srv := gittest.ServeHTTP(b, root)
	return src, srv, srv.RepoURL("fleet.git")
}

// gitCLI runs git with its output to stdout (nil: discarded) and fails
// the benchmark on error.
func gitCLI(b *testing.B, stdout io.Writer, args ...string) {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), gittest.Env()...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
}

// BenchmarkFetchUnchanged fetches from a remote that has not changed, over
// git http-backend: molt's Fetch against `git fetch` of the same refspecs.
func BenchmarkFetchUnchanged(b *testing.B) {
	_, srv, url := benchRepo(b)

	b.Run("molt", func(b *testing.B) {
		r := open(b, url)
		fetch(b, r)
		srv.Reset()
		for b.Loop() {
			if res, err := r.Fetch(context.Background()); err != nil || res.Changed {
				b.Fatalf("Fetch = %+v, %v", res, err)
			}
		}
		b.ReportMetric(float64(len(srv.Requests()))/float64(b.N), "requests/op")
	})

	b.Run("git-fetch", func(b *testing.B) {
		cache := filepath.Join(b.TempDir(), "cache.git")
		gittest.InitBare(b, cache)
		args := []string{"--git-dir", cache, "fetch", "-q", "--prune", "--no-auto-gc", "--no-write-fetch-head",
			url, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"}
		gitCLI(b, nil, args...)
		srv.Reset()
		for b.Loop() {
			gitCLI(b, nil, args...)
		}
		b.ReportMetric(float64(len(srv.Requests()))/float64(b.N), "requests/op")
	})
}

// BenchmarkSnapshotRead reads every file of the head commit: molt's
// Snapshot walked with fs.WalkDir and fs.ReadFile, against `git archive`
// of the same commit from the same cache.
func BenchmarkSnapshotRead(b *testing.B) {
	_, _, url := benchRepo(b)
	r := open(b, url)
	fetch(b, r)
	c := resolve(b, r, "main")

	b.Run("molt", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n = 0
			fsys, err := r.Snapshot(context.Background(), c, "")
			if err != nil {
				b.Fatal(err)
			}
			err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				data, err := fs.ReadFile(fsys, p)
				n += int64(len(data))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(n)
	})

	b.Run("git-archive", func(b *testing.B) {
		for b.Loop() {
			gitCLI(b, io.Discard, "--git-dir", r.Dir(), "archive", c.Hash)
		}
	})
}
