package git_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/git/gittest"
)

// history is a remote with history behind its one branch:
//
//	main: one ── two ── three
//
// x.cue is "one" in one and "two" in two and three; three adds y.cue.
type history struct {
	src              *gittest.Repo
	one, two, three  string
	bare             string // the published repository
	srv              *gittest.Server
	url              string
	oneX, twoX, newY string
}

func newHistory(t *testing.T) *history {
	t.Helper()
	h := &history{src: gittest.NewRepo(t), oneX: "x: \"one\"\n", twoX: "x: \"two\"\n", newY: "y: 1\n"}
	h.src.WriteFile("x.cue", h.oneX)
	h.one = h.src.Commit("one")
	h.src.WriteFile("x.cue", h.twoX)
	h.two = h.src.Commit("two")
	h.src.WriteFile("y.cue", h.newY)
	h.three = h.src.Commit("three")
	root := t.TempDir()
	h.bare = h.src.Publish(root, "fleet.git")
	h.srv = gittest.ServeHTTP(t, root)
	h.url = h.srv.RepoURL("fleet.git")
	return h
}

// push publishes the work tree's branches and repacks the remote with a
// reachability bitmap, as forges keep theirs: git upload-pack then leaves
// out every object it finds reachable from the client's commits, all
// their history included, unless the client says where its history stops.
func (h *history) push(t *testing.T) {
	t.Helper()
	h.src.Push()
	gittest.Git(t, "", nil, "--git-dir", h.bare, "repack", "-q", "-a", "-d", "-b")
}

func openShallow(t *testing.T, url, cacheDir string) *git.Repo {
	t.Helper()
	r, err := git.Open(context.Background(), git.Options{URL: url, CacheDir: cacheDir, Shallow: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// isShallowCache asks git whether the cache lacks history.
func isShallowCache(t *testing.T, r *git.Repo) bool {
	t.Helper()
	return gittest.Git(t, "", nil, "--git-dir", r.Dir(), "rev-parse", "--is-shallow-repository") == "true"
}

// fileAt reads name from commit c of the cache.
func fileAt(t *testing.T, r *git.Repo, c git.Commit, name string) string {
	t.Helper()
	b, err := fs.ReadFile(snapshot(t, r, c, ""), name)
	if err != nil {
		t.Fatalf("%s at %s: %v", name, c.Hash, err)
	}
	return string(b)
}

func wantNotFound(t *testing.T, r *git.Repo, hash string) {
	t.Helper()
	if _, err := r.Resolve(context.Background(), hash); !errors.Is(err, git.ErrRefNotFound) {
		t.Errorf("Resolve(%s) = %v, want ErrRefNotFound: the commit should not be in a shallow cache", hash, err)
	}
}

// wantOnePoll checks that an unchanged Fetch costs one ref advertisement
// and nothing else.
func wantOnePoll(t *testing.T, h *history, r *git.Repo) {
	t.Helper()
	h.srv.Reset()
	if res := fetch(t, r); res.Changed {
		t.Errorf("unchanged Fetch = %+v, want no change", res)
	}
	if got := h.srv.Requests(); len(got) != 1 || got[0].Method != "GET" || !strings.HasSuffix(got[0].Path, "/info/refs") {
		t.Errorf("unchanged Fetch: requests %+v, want one ref advertisement", got)
	}
}

// A shallow Repo fetches an empty cache to depth 1 and keeps it shallow
// on later fetches, each bringing what the new tips need, even a blob that
// only older history held; a whole Repo on the same cache later deepens
// it in one fetch, reporting no change, and then polls as usual.
func TestFetchShallow(t *testing.T) {
	h := newHistory(t)
	cache := t.TempDir()
	r := openShallow(t, h.url, cache)

	res := fetch(t, r)
	want := git.FetchResult{Changed: true, Head: "main", Updated: []git.RefUpdate{{Name: "refs/heads/main", New: h.three}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("first Fetch (-want +got):\n%s", diff)
	}
	c := resolve(t, r, "")
	if c.Hash != h.three || len(c.Parents) != 1 || c.Parents[0] != h.two {
		t.Errorf("head = %s (parents %v), want %s on %s", c.Hash, c.Parents, h.three, h.two)
	}
	if got := fileAt(t, r, c, "x.cue"); got != h.twoX {
		t.Errorf("x.cue = %q, want %q", got, h.twoX)
	}
	wantNotFound(t, r, h.two)
	wantNotFound(t, r, h.one)
	if !isShallowCache(t, r) {
		t.Error("the cache is not shallow")
	}
	wantOnePoll(t, h, r)

	// four brings back x.cue of one: a blob the cache has never had, that
	// the remote must send although it is older than the cache's tip.
	h.src.WriteFile("x.cue", h.oneX)
	four := h.src.Commit("four")
	h.push(t)
	res = fetch(t, r)
	want = git.FetchResult{Changed: true, Head: "main", Updated: []git.RefUpdate{{Name: "refs/heads/main", Old: h.three, New: four}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("second Fetch (-want +got):\n%s", diff)
	}
	if got := fileAt(t, r, resolve(t, r, "main"), "x.cue"); got != h.oneX {
		t.Errorf("x.cue at four = %q, want %q", got, h.oneX)
	}
	wantNotFound(t, r, h.one)
	if !isShallowCache(t, r) {
		t.Error("the cache is not shallow after a second shallow Fetch")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// serve, say, on the cache that validate left.
	whole := openIn(t, h.url, cache, nil)
	h.srv.Reset()
	res = fetch(t, whole)
	if diff := cmp.Diff(git.FetchResult{Head: "main"}, res); diff != "" {
		t.Errorf("deepening Fetch (-want +got):\n%s", diff)
	}
	if got := h.srv.Count("POST", "/git-upload-pack"); got != 1 {
		t.Errorf("deepening Fetch: %d pack requests, want 1", got)
	}
	if isShallowCache(t, whole) {
		t.Error("the cache is still shallow after a whole Fetch")
	}
	for _, hash := range []string{h.one, h.two, h.three, four} {
		resolve(t, whole, hash)
	}
	if got := fileAt(t, whole, resolve(t, whole, h.two), "x.cue"); got != h.twoX {
		t.Errorf("x.cue at two = %q, want %q", got, h.twoX)
	}
	gittest.Git(t, "", nil, "--git-dir", whole.Dir(), "fsck", "--full", "--no-progress")
	wantOnePoll(t, h, whole)
}

// A shallow Repo fetches a cache that already holds history whole, as a
// Repo without Shallow does.
func TestFetchShallowKeepsWholeCache(t *testing.T) {
	h := newHistory(t)
	cache := t.TempDir()
	func() {
		r := openIn(t, h.url, cache, nil)
		defer r.Close()
		fetch(t, r)
	}()
	h.src.WriteFile("z.cue", "z: 1\n")
	four := h.src.Commit("four")
	h.src.Push()

	r := openShallow(t, h.url, cache)
	fetch(t, r)
	if isShallowCache(t, r) {
		t.Error("a shallow Repo made a whole cache shallow")
	}
	for _, hash := range []string{h.one, h.two, h.three, four} {
		resolve(t, r, hash)
	}
}

// Deepen brings the history a shallow cache lacks, and a Repo opened with
// Shallow fetches whole afterwards; on a whole cache, or by a Repo opened
// without Shallow (molt status reads the cache without fetching), it does
// nothing.
func TestDeepen(t *testing.T) {
	h := newHistory(t)
	cache := t.TempDir()
	r := openShallow(t, h.url, cache)
	fetch(t, r)
	wantNotFound(t, r, h.one)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	whole := openIn(t, h.url, cache, nil)
	h.srv.Reset()
	if err := whole.Deepen(context.Background()); err != nil {
		t.Errorf("Deepen without Shallow: %v", err)
	}
	if got := h.srv.Requests(); len(got) != 0 {
		t.Errorf("Deepen without Shallow sent %+v, want nothing", got)
	}
	if err := whole.Close(); err != nil {
		t.Fatal(err)
	}

	r = openShallow(t, h.url, cache)

	h.srv.Reset()
	if err := r.Deepen(context.Background()); err != nil {
		t.Fatalf("Deepen: %v", err)
	}
	if got := h.srv.Count("POST", "/git-upload-pack"); got != 1 {
		t.Errorf("Deepen: %d pack requests, want 1", got)
	}
	if got := fileAt(t, r, resolve(t, r, h.one), "x.cue"); got != h.oneX {
		t.Errorf("x.cue at one = %q, want %q", got, h.oneX)
	}
	if isShallowCache(t, r) {
		t.Error("the cache is still shallow after Deepen")
	}

	h.srv.Reset()
	if err := r.Deepen(context.Background()); err != nil {
		t.Errorf("second Deepen: %v", err)
	}
	if got := h.srv.Requests(); len(got) != 0 {
		t.Errorf("Deepen of a whole cache sent %+v, want nothing", got)
	}
	h.src.WriteFile("z.cue", "z: 1\n")
	h.src.Commit("four")
	h.src.Push()
	fetch(t, r)
	if isShallowCache(t, r) {
		t.Error("a Fetch after Deepen made the cache shallow again")
	}
}

// FetchPull into a shallow cache brings every object the pull request's
// head needs, even one that only history older than the cache held.
func TestFetchPullShallow(t *testing.T) {
	h := newHistory(t)
	h.src.WriteFile("x.cue", h.oneX)
	head := h.src.Commit("pr head: x.cue as in one")
	h.src.Git("push", "-q", "origin", "HEAD:refs/pull/7/head")
	h.src.Git("reset", "-q", "--hard", "HEAD~1")
	h.push(t)

	r := openShallow(t, h.url, t.TempDir())
	fetch(t, r)
	if ok, err := r.FetchPull(context.Background(), 7); err != nil || !ok {
		t.Fatalf("FetchPull(7) = %v, %v", ok, err)
	}
	if got := fileAt(t, r, resolve(t, r, head), "x.cue"); got != h.oneX {
		t.Errorf("x.cue at the pull request's head = %q, want %q", got, h.oneX)
	}
}

// go-git's in-process upload-pack (no Git installed) serves no shallow
// fetch: a shallow Repo fetches whole there, and a shallow cache that a
// process with Git left is re-created and fetched whole.
func TestShallowWithoutGit(t *testing.T) {
	if args := os.Getenv("MOLT_TEST_SHALLOW_NO_GIT"); args != "" {
		shallowNoGitChild(t, strings.Split(args, string(os.PathListSeparator)))
		return
	}
	h := newHistory(t)
	bare := filepath.Join(t.TempDir(), "bare.git")
	h.src.Git("clone", "-q", "--bare", h.src.Dir, bare)
	cache := t.TempDir()
	func() {
		r := openShallow(t, bare, cache) // git-upload-pack serves it shallow
		defer r.Close()
		fetch(t, r)
		if !isShallowCache(t, r) {
			t.Fatal("the cache made with git-upload-pack is not shallow")
		}
	}()

	cmd := exec.Command(os.Args[0], "-test.run=^TestShallowWithoutGit$", "-test.v")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir(),
		"MOLT_TEST_SHALLOW_NO_GIT="+strings.Join([]string{bare, cache, h.one}, string(os.PathListSeparator)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fetched whole in process") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func shallowNoGitChild(t *testing.T, args []string) {
	if _, err := exec.LookPath("git-upload-pack"); err == nil {
		t.Fatal("git-upload-pack is on PATH")
	}
	bare, shallowCache, one := args[0], args[1], args[2]
	for _, cache := range []string{t.TempDir(), shallowCache} {
		r := openShallow(t, bare, cache)
		fetch(t, r)
		resolve(t, r, one)
		if _, err := os.Stat(filepath.Join(r.Dir(), "shallow")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: shallow file: %v, want none", cache, err)
		}
	}
	if !t.Failed() {
		t.Log("fetched whole in process")
	}
}

// A Deepen that fails leaves the Repo shallow, and the next one deepens;
// Deepens at the same time all return once the history is there.
func TestDeepenRetriesAndWaits(t *testing.T) {
	h := newHistory(t)
	r := openShallow(t, h.url, t.TempDir())
	fetch(t, r)

	hidden := h.bare + ".away"
	if err := os.Rename(h.bare, hidden); err != nil {
		t.Fatal(err)
	}
	if err := r.Deepen(context.Background()); err == nil {
		t.Fatal("Deepen of a remote that is gone: no error")
	}
	wantNotFound(t, r, h.one)
	if err := os.Rename(hidden, h.bare); err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, 3)
	for range cap(errs) {
		go func() {
			err := r.Deepen(context.Background())
			if err == nil {
				_, err = r.Resolve(context.Background(), h.one)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Deepen, then Resolve(one): %v", err)
		}
	}
	if isShallowCache(t, r) {
		t.Error("the cache is still shallow")
	}
}
