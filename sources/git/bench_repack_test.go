package git_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/git/gittest"
)

// benchPacks is the pack limit of BenchmarkFetchRepack: the template
// cache holds exactly this many, so the next fetch that brings objects
// goes past it.
const benchPacks = 8

// BenchmarkFetchRepack times one Fetch that brings a new commit into a
// cache of benchPacks packs of repackRepo: "triggers" with the pack limit
// at benchPacks, so that this fetch is the one that repacks; "plain" with
// a limit it does not reach, the same fetch without a repack;
// "triggers-until-repacked" as "triggers", timing also the wait for a
// repack in the background to end. Each round starts from a copy of the
// same cache; opening and closing it are not timed.
func BenchmarkFetchRepack(b *testing.B) {
	src, url := repackRepo(b)
	tmpl := b.TempDir()
	func() {
		r := openIn(b, url, tmpl, nil)
		defer r.Close()
		fetch(b, r)
		for i := 1; i < benchPacks; i++ {
			src.WriteFile(fmt.Sprintf("svc%02d/file00.cue", i), fmt.Sprintf("package fleet\n// pack %d\n", i))
			src.Commit(fmt.Sprintf("pack %d", i))
			src.Push()
			fetch(b, r)
		}
	}()
	if n := countPacks(b, tmpl); n != benchPacks {
		b.Fatalf("template cache: %d packs, want %d", n, benchPacks)
	}
	src.WriteFile("svc00/file01.cue", "package fleet\n// the fetch that repacks\n")
	src.Commit("the fetch that repacks")
	src.Push()

	for _, bc := range []struct {
		name          string
		maxPacks      int
		untilRepacked bool // wait for a repack in the background
	}{{"triggers", benchPacks, false}, {"plain", 1000, false}, {"triggers-until-repacked", benchPacks, true}} {
		b.Run(bc.name, func(b *testing.B) {
			defer git.SetMaxPacks(bc.maxPacks)()
			for b.Loop() {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "cache")
				if err := os.CopyFS(dir, os.DirFS(tmpl)); err != nil {
					b.Fatal(err)
				}
				r, err := git.Open(context.Background(), git.Options{URL: url, CacheDir: dir})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if res, err := r.Fetch(context.Background()); err != nil || !res.Changed {
					b.Fatalf("Fetch = %+v, %v", res, err)
				}
				if bc.untilRepacked {
					git.WaitRepack(r)
				}
				b.StopTimer()
				if err := r.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// repackRepo is a larger repository than benchRepo, for a repack that
// takes long enough to see: 40 directories of 25 files of about 4 KiB, and
// 20 commits of history that each change a seventh of the files.
func repackRepo(b *testing.B) (*gittest.Repo, string) {
	b.Helper()
	src := gittest.NewRepo(b)
	for c := range 20 {
		for d := range 40 {
			for f := range 25 {
				if c > 0 && (d+f+c)%7 != 0 {
					continue
				}
				src.WriteFile(fmt.Sprintf("svc%02d/file%02d.cue", d, f),
					fmt.Sprintf("package fleet\n// commit %d dir %d file %d\n%s\n", c, d, f, strings.Repeat(fmt.Sprintf("x%d: %d\n", f, c), 500)))
			}
		}
		src.Commit(fmt.Sprintf("commit %d", c))
	}
	root := b.TempDir()
	src.Publish(root, "fleet.git")
	srv := gittest.ServeHTTP(b, root)
	return src, srv.RepoURL("fleet.git")
}

// countPacks returns how many pack files the one cache under cacheDir
// holds.
func countPacks(t testing.TB, cacheDir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(cacheDir, "*", "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}
