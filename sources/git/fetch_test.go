package git_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/git/gittest"
)

func TestFetchLocal(t *testing.T) {
	f := newFixture(t)
	rel, err := filepath.Rel(mustGetwd(t), f.src.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		url  string
	}{
		{"absolute path", f.src.Dir},
		{"relative path", rel},
		{"file URL", "file://" + f.src.Dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, tt.url)
			if got, want := r.URL(), "file://"+filepath.ToSlash(f.src.Dir); got != want {
				t.Errorf("URL() = %q, want %q", got, want)
			}
			res := fetch(t, r)
			if !res.Changed || res.Head != "main" {
				t.Errorf("first Fetch = %+v, want Changed and Head main", res)
			}
			if got := resolve(t, r, "main").Hash; got != f.second {
				t.Errorf("main = %s, want %s", got, f.second)
			}
			if res := fetch(t, r); res.Changed || len(res.Updated) != 0 {
				t.Errorf("second Fetch = %+v, want no change", res)
			}
		})
	}
}

func TestFetchHTTP(t *testing.T) {
	f := newFixture(t)
	srv, url := f.served(t)
	r := open(t, url)
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("Open made %d requests, want none", n)
	}

	res := fetch(t, r)
	want := []git.RefUpdate{
		{Name: "refs/heads/feature", New: f.feature},
		{Name: "refs/heads/main", New: f.second},
		{Name: "refs/tags/v1", New: f.first},
		{Name: "refs/tags/v1.1", New: f.v11},
	}
	if diff := cmp.Diff(git.FetchResult{Changed: true, Updated: want, Head: "main"}, res); diff != "" {
		t.Errorf("Fetch (-want +got):\n%s", diff)
	}
	if got, want := srv.Count("POST", "/git-upload-pack"), 1; got != want {
		t.Errorf("first fetch: %d pack requests, want %d", got, want)
	}

	c := resolve(t, r, "")
	if c.Hash != f.second || c.Ref != "main" {
		t.Errorf("Resolve(\"\") = %s %q, want %s main", c.Hash, c.Ref, f.second)
	}
	fsys, err := r.Snapshot(context.Background(), c, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fsys.(interface{ ReadFile(string) ([]byte, error) }).ReadFile("sub/values.cue")
	if err != nil || !strings.Contains(string(b), "port: 8080") {
		t.Errorf("ReadFile(sub/values.cue) = %q, %v", b, err)
	}
}

// An unchanged remote costs one ref advertisement and no pack: the server
// sees GET info/refs and no POST git-upload-pack.
func TestFetchUnchangedHTTP(t *testing.T) {
	f := newFixture(t)
	srv, url := f.served(t)
	r := open(t, url)
	fetch(t, r)
	before := inPack(t, r)

	srv.Reset()
	res := fetch(t, r)
	if res.Changed || len(res.Updated) != 0 || res.Head != "main" {
		t.Errorf("Fetch = %+v, want no change, Head main", res)
	}
	if got := srv.Count("GET", "/info/refs"); got != 1 {
		t.Errorf("%d ref advertisements, want 1", got)
	}
	if got := srv.Count("POST", ""); got != 0 {
		t.Errorf("%d POST requests, want 0; requests: %+v", got, srv.Requests())
	}
	if got := len(srv.Requests()); got != 1 {
		t.Errorf("%d requests, want 1: %+v", got, srv.Requests())
	}
	if after := inPack(t, r); after != before {
		t.Errorf("objects in cache: %d, was %d", after, before)
	}
}

// A fetch after new commits downloads exactly the new objects.
func TestFetchIncremental(t *testing.T) {
	f := newFixture(t)
	srv, url := f.served(t)
	r := open(t, url)
	fetch(t, r)
	before := inPack(t, r)
	if all := len(strings.Fields(f.src.Git("rev-list", "--objects", "--all"))) / 1; all == 0 {
		t.Fatal("no objects in source")
	}

	f.src.WriteFile("fleet/sub/values.cue", "package fleet\n\nvalues: port: 9090\n")
	third := f.src.Commit("third")
	f.src.WriteFile("NEWS", "news\n")
	fourth := f.src.Commit("fourth")
	f.src.Push()
	newObjects := len(strings.Split(f.src.Git("rev-list", "--objects", f.second+".."+fourth), "\n"))

	srv.Reset()
	res := fetch(t, r)
	want := git.FetchResult{Changed: true, Head: "main", Updated: []git.RefUpdate{
		{Name: "refs/heads/main", Old: f.second, New: fourth},
	}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Fetch (-want +got):\n%s", diff)
	}
	if got := inPack(t, r) - before; got != newObjects {
		t.Errorf("fetch added %d objects, want exactly the %d new ones", got, newObjects)
	}
	if got := srv.Count("POST", "/git-upload-pack"); got != 1 {
		t.Errorf("%d pack requests, want 1", got)
	}
	if c := resolve(t, r, "main"); c.Hash != fourth || c.Parents[0] != third {
		t.Errorf("main = %s (parents %v), want %s on %s", c.Hash, c.Parents, fourth, third)
	}
}

func TestFetchForcePush(t *testing.T) {
	f := newFixture(t)
	_, url := f.served(t)
	r := open(t, url)
	fetch(t, r)

	f.src.Git("reset", "-q", "--hard", f.first)
	f.src.WriteFile("README.md", "rewritten\n")
	rewritten := f.src.Commit("rewritten")
	f.src.Push()

	res := fetch(t, r)
	want := []git.RefUpdate{{Name: "refs/heads/main", Old: f.second, New: rewritten}}
	if diff := cmp.Diff(want, res.Updated); diff != "" {
		t.Errorf("Updated (-want +got):\n%s", diff)
	}
	c := resolve(t, r, "main")
	if c.Hash != rewritten || len(c.Parents) != 1 || c.Parents[0] != f.first {
		t.Errorf("main = %s with parents %v, want %s on %s", c.Hash, c.Parents, rewritten, f.first)
	}
	fsys, err := r.Snapshot(context.Background(), c, "")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := readFile(fsys, "README.md"); string(b) != "rewritten\n" {
		t.Errorf("README.md = %q", b)
	}
}

func TestFetchPrunesDeletedRefs(t *testing.T) {
	f := newFixture(t)
	_, url := f.served(t)
	r := open(t, url)
	fetch(t, r)

	f.src.Git("branch", "-q", "-D", "feature")
	f.src.Git("tag", "-d", "v1")
	f.src.Git("tag", "-f", "-a", "-m", "moved", "v1.1", f.second) // a moved tag
	f.src.Push()

	res := fetch(t, r)
	names := map[string]git.RefUpdate{}
	for _, u := range res.Updated {
		names[u.Name] = u
	}
	if u := names["refs/heads/feature"]; u.Old != f.feature || u.New != "" {
		t.Errorf("feature update = %+v, want deleted", u)
	}
	if u := names["refs/tags/v1"]; u.New != "" {
		t.Errorf("v1 update = %+v, want deleted", u)
	}
	if u := names["refs/tags/v1.1"]; u.Old != f.v11 || u.New == "" || u.New == f.v11 {
		t.Errorf("v1.1 update = %+v, want moved", u)
	}
	for _, ref := range []string{"feature", "v1"} {
		if _, err := r.Resolve(context.Background(), ref); !errors.Is(err, git.ErrRefNotFound) {
			t.Errorf("Resolve(%q) after delete: %v, want ErrRefNotFound", ref, err)
		}
	}
	if c := resolve(t, r, "v1.1"); c.Hash != f.second {
		t.Errorf("moved tag v1.1 = %s, want %s", c.Hash, f.second)
	}
}

func TestFetchDefaultBranchChange(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	bare := f.src.Publish(root, "fleet.git")
	r := open(t, bare)
	fetch(t, r)

	gittest.Git(t, bare, nil, "symbolic-ref", "HEAD", "refs/heads/feature")
	res := fetch(t, r)
	if !res.Changed || res.Head != "feature" || len(res.Updated) != 0 {
		t.Errorf("Fetch = %+v, want Changed with Head feature and no ref update", res)
	}
	if c := resolve(t, r, ""); c.Hash != f.feature || c.Ref != "feature" {
		t.Errorf("Resolve(\"\") = %s %q, want %s feature", c.Hash, c.Ref, f.feature)
	}
	if res := fetch(t, r); res.Changed {
		t.Errorf("third Fetch = %+v, want no change", res)
	}
}

// A remote that cannot be reached is an error that names it without its
// credentials, and the cache is left exactly as it was.
func TestFetchUnreachable(t *testing.T) {
	cache := t.TempDir()
	r := openIn(t, "http://molt:s3cret-token@127.0.0.1:1/x.git", cache, nil)
	before := treeState(t, cache)

	_, err := r.Fetch(context.Background())
	if err == nil {
		t.Fatal("Fetch of an unreachable remote succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "molt:") ||
		!strings.Contains(msg, "http://127.0.0.1:1/x.git") {
		t.Errorf("error %q: want the URL without credentials", msg)
	}
	if diff := cmp.Diff(before, treeState(t, cache)); diff != "" {
		t.Errorf("cache changed (-before +after):\n%s", diff)
	}
}

// When the server goes away, Fetch fails and the cache keeps answering.
func TestFetchServerGone(t *testing.T) {
	f := newFixture(t)
	srv, url := f.served(t)
	r := open(t, url)
	fetch(t, r)
	before := treeState(t, r.Dir())

	srv.Close()
	if _, err := r.Fetch(context.Background()); err == nil {
		t.Fatal("Fetch from a closed server succeeded")
	}
	if diff := cmp.Diff(before, treeState(t, r.Dir())); diff != "" {
		t.Errorf("cache changed (-before +after):\n%s", diff)
	}
	if c := resolve(t, r, ""); c.Hash != f.second {
		t.Errorf("Resolve after failed fetch = %s, want %s", c.Hash, f.second)
	}
}

func TestFetchErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.git")
	gittest.InitBare(t, empty)
	emptyRoot := t.TempDir()
	gittest.InitBare(t, filepath.Join(emptyRoot, "empty.git"))
	srv := gittest.ServeHTTP(t, emptyRoot)

	tests := []struct {
		name string
		url  string
		is   error  // if not nil, errors.Is must hold
		msg  string // the message must contain it
	}{
		{"empty local repository", empty, git.ErrEmptyRepository, "repository has no commits"},
		{"empty HTTP repository", srv.RepoURL("empty.git"), git.ErrEmptyRepository, srv.RepoURL("empty.git")},
		{"missing local repository", filepath.Join(t.TempDir(), "nope"), nil, "nope"},
		{"missing HTTP repository", srv.RepoURL("nope.git"), nil, "nope.git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, tt.url)
			_, err := r.Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v: want errors.Is %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if _, err := r.Resolve(context.Background(), ""); !errors.Is(err, git.ErrRefNotFound) {
				t.Errorf("Resolve after failed fetch: %v, want ErrRefNotFound", err)
			}
		})
	}
}

func TestFetchCancelled(t *testing.T) {
	f := newFixture(t)
	_, url := f.served(t)
	r := open(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context: %v, want context.Canceled", err)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// Each fetch that brings objects adds a pack; past a limit Fetch repacks
// the cache into one.
func TestFetchCompacts(t *testing.T) {
	defer git.SetMaxPacks(2)()
	f := newFixture(t)
	_, url := f.served(t)
	log, logs := newLogger()
	r := openIn(t, url, t.TempDir(), log)
	fetch(t, r)
	old := snapshot(t, r, resolve(t, r, "v1"), "fleet")

	packs := func() int {
		m, err := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "*.pack"))
		must(t, err)
		return len(m)
	}
	var head string
	f.src.Git("reset", "-q", "--hard", f.first) // second is left behind
	for i := range 5 {
		f.src.WriteFile("NEWS", strings.Repeat("news\n", i+1))
		head = f.src.Commit("news")
		f.src.Push()
		fetch(t, r)
		git.WaitRepack(r) // the repack runs in the background
		if n := packs(); n > 2 {
			t.Fatalf("after fetch %d: %d packs, want at most 2; log:\n%s", i, n, logs)
		}
	}
	if c := resolve(t, r, "main"); c.Hash != head {
		t.Errorf("main = %s, want %s", c.Hash, head)
	}
	// The repack kept the force-pushed-away commit: a rollback may need it.
	if c := resolve(t, r, f.second); c.Hash != f.second {
		t.Errorf("Resolve(second) after repack = %s", c.Hash)
	}
	if !strings.Contains(logs.String(), "git cache repacked") {
		t.Errorf("no repack logged:\n%s", logs)
	}
	// A snapshot taken before the repack still reads.
	if _, err := readFile(old, "sub/values.cue"); err != nil {
		t.Errorf("old snapshot after repack: %v", err)
	}
	gittest.Git(t, "", nil, "--git-dir", r.Dir(), "fsck", "--no-progress")
}

func TestFetchPull(t *testing.T) {
	root := t.TempDir()
	repo := gittest.NewRepo(t)
	repo.WriteFile("fleet.cue", "services: {}\n")
	repo.Commit("base")
	bare := repo.Publish(root, "fleet.git")
	// A pull request head as GitHub stores it: a ref outside refs/heads.
	repo.WriteFile("fleet.cue", "services: {} // pr\n")
	head := repo.Commit("pr head")
	repo.Git("push", "-q", "origin", "HEAD:refs/pull/7/head")
	repo.Git("reset", "-q", "--hard", "HEAD~1")
	_ = bare
	srv := gittest.ServeHTTP(t, root)

	r, err := git.Open(context.Background(), git.Options{URL: srv.RepoURL("fleet.git"), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(context.Background(), head); err == nil {
		t.Fatal("the pull request head came with an ordinary fetch")
	}
	ok, err := r.FetchPull(context.Background(), 7)
	if err != nil || !ok {
		t.Fatalf("FetchPull(7) = %v, %v", ok, err)
	}
	c, err := r.Resolve(context.Background(), head)
	if err != nil || c.Hash != head {
		t.Fatalf("Resolve(pr head) = %v, %v", c.Hash, err)
	}
	if ok, err := r.FetchPull(context.Background(), 8); ok || err != nil {
		t.Errorf("FetchPull(8) of a missing pull request = %v, %v; want false, nil", ok, err)
	}
}
