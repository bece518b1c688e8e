package git_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/git/gittest"
)

// A cache found broken by Open is removed and created again; the next
// Fetch fills it.
func TestOpenRecoversCorruptCache(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
	}{
		{"objects deleted", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(filepath.Join(dir, "objects")))
		}},
		{"garbage HEAD", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "HEAD"), []byte("garbage\x00\xff\n"), 0o644))
		}},
		{"garbage config", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "config"), []byte("[core\n\x00 not a config"), 0o644))
		}},
		{"config deleted", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "config")))
		}},
		{"pack truncated", func(t *testing.T, dir string) {
			p := onlyFile(t, dir, "objects/pack/*.pack")
			info, err := os.Stat(p)
			must(t, err)
			must(t, os.Truncate(p, info.Size()/2))
		}},
		{"pack index overwritten", func(t *testing.T, dir string) {
			must(t, os.WriteFile(onlyFile(t, dir, "objects/pack/*.idx"), []byte("garbage"), 0o644))
		}},
		{"pack index deleted", func(t *testing.T, dir string) {
			must(t, os.Remove(onlyFile(t, dir, "objects/pack/*.idx")))
		}},
		{"cache dir is a file", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(dir))
			must(t, os.WriteFile(dir, []byte("x"), 0o644))
		}},
		{"ref to a missing commit", func(t *testing.T, dir string) {
			ref := filepath.Join(dir, "refs", "remotes", "origin", "main")
			must(t, os.WriteFile(ref, []byte(strings.Repeat("12", 20)+"\n"), 0o644))
		}},
		{"emptied", func(t *testing.T, dir string) {
			entries, err := os.ReadDir(dir)
			must(t, err)
			for _, e := range entries {
				must(t, os.RemoveAll(filepath.Join(dir, e.Name())))
			}
		}},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacheDir := t.TempDir()
			r := openIn(t, f.src.Dir, cacheDir, nil)
			fetch(t, r)
			tt.corrupt(t, r.Dir())

			log, logs := newLogger()
			r = openIn(t, f.src.Dir, cacheDir, log)
			if !strings.Contains(logs.String(), "git cache unusable") {
				t.Errorf("no warning logged; log:\n%s", logs)
			}
			res := fetch(t, r)
			if !res.Changed || len(res.Updated) != 4 {
				t.Errorf("Fetch after recovery = %+v, want all 4 refs created", res)
			}
			c := resolve(t, r, "")
			if c.Hash != f.second {
				t.Errorf("main = %s, want %s", c.Hash, f.second)
			}
			if b, err := readFile(snapshot(t, r, c, ""), "README.md"); string(b) != "hello again\n" {
				t.Errorf("README.md = %q, %v", b, err)
			}
			// The recreated cache is a valid repository to git itself.
			gittest.Git(t, "", nil, "--git-dir", r.Dir(), "fsck", "--no-progress")
		})
	}
}

// A healthy cache is reused: Open does not contact the remote, and Resolve
// and Snapshot answer from the cache while the remote is gone.
func TestOpenReusesCache(t *testing.T) {
	f := newFixture(t)
	srv, url := f.served(t)
	cacheDir := t.TempDir()
	fetch(t, openIn(t, url, cacheDir, nil))

	srv.Reset()
	log, logs := newLogger()
	r := openIn(t, url, cacheDir, log)
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("Open made %d requests", n)
	}
	if strings.Contains(logs.String(), "unusable") || strings.Contains(logs.String(), "created") {
		t.Errorf("healthy cache re-created; log:\n%s", logs)
	}
	srv.Close()
	c := resolve(t, r, "")
	if b, err := readFile(snapshot(t, r, c, ""), "README.md"); string(b) != "hello again\n" {
		t.Errorf("README.md = %q, %v", b, err)
	}
}

// The cache directory is named by the URL without credentials.
func TestCacheDir(t *testing.T) {
	cacheDir := t.TempDir()
	dir := func(url string) string {
		r := openIn(t, url, cacheDir, nil)
		if filepath.Dir(r.Dir()) != cacheDir {
			t.Errorf("%s: cache %s not under %s", url, r.Dir(), cacheDir)
		}
		return r.Dir()
	}
	plain := dir("https://example.com/org/fleet.git")
	if got := dir("https://x-access-token:secret@example.com/org/fleet.git"); got != plain {
		t.Errorf("credentials changed the cache dir: %s vs %s", got, plain)
	}
	if got := dir("https://example.com/org/other.git"); got == plain {
		t.Error("two remotes share a cache dir")
	}
	for _, name := range []string{"config"} {
		b, err := os.ReadFile(filepath.Join(plain, name))
		must(t, err)
		if strings.Contains(string(b), "secret") {
			t.Errorf("%s holds the credentials:\n%s", name, b)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name string
		opts git.Options
	}{
		{"no URL", git.Options{CacheDir: t.TempDir()}},
		{"no cache dir", git.Options{URL: "https://example.com/x.git"}},
		{"cache dir is a file", git.Options{URL: "https://example.com/x.git", CacheDir: file}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := git.Open(context.Background(), tt.opts); err == nil {
				t.Error("Open succeeded")
			}
		})
	}
}

func onlyFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	must(t, err)
	if len(m) != 1 {
		t.Fatalf("%s: %d matches, want 1", pattern, len(m))
	}
	return m[0]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
