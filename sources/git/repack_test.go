package git_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/git/gittest"
)

// stuck is how long a test waits for something that should be quick
// before it reports it as blocked: a safety net against a hung test, not a
// timing.
const stuck = 30 * time.Second

// within runs f in a goroutine and fails the test with its error, or if
// it has not returned after stuck.
func within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(stuck):
		t.Fatalf("%s: blocked", what)
	}
}

// waitReached waits for a held repack to stop at its hold.
func waitReached(t *testing.T, reached <-chan struct{}) {
	t.Helper()
	select {
	case <-reached:
	case <-time.After(stuck):
		t.Fatal("the repack did not reach its hold")
	}
}

// packsIn returns the pack files of the cache r.
func packsIn(t *testing.T, r *git.Repo) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "*.pack"))
	must(t, err)
	return m
}

// pushNews commits a change to NEWS and pushes it; it returns the commit.
func pushNews(f *fixture, n int) string {
	f.src.WriteFile("NEWS", strings.Repeat("news\n", n))
	head := f.src.Commit(fmt.Sprintf("news %d", n))
	f.src.Push()
	return head
}

// fetchUntilRepack pushes and fetches until the cache holds more than
// maxPacks packs, which starts a repack; it returns the last commit.
func fetchUntilRepack(t *testing.T, f *fixture, r *git.Repo, maxPacks int, n *int) string {
	t.Helper()
	var head string
	for range maxPacks + 1 {
		if len(packsIn(t, r)) > maxPacks {
			return head
		}
		*n++
		head = pushNews(f, *n)
		fetch(t, r)
	}
	if len(packsIn(t, r)) <= maxPacks {
		t.Fatalf("%d packs after %d fetches", len(packsIn(t, r)), maxPacks+1)
	}
	return head
}

// checkCache checks that every branch and tag of the fixture's source
// resolves in r to the same commit, that every commit of the source reads
// whole from a snapshot, and that git finds the cache sound.
func checkCache(t *testing.T, f *fixture, r *git.Repo) {
	t.Helper()
	for ref := range strings.FieldsSeq(f.src.Git("for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags")) {
		want := strings.TrimSpace(f.src.Git("rev-parse", ref+"^{commit}"))
		if c := resolve(t, r, ref); c.Hash != want {
			t.Errorf("Resolve(%s) = %s, want %s", ref, c.Hash, want)
		}
	}
	for h := range strings.FieldsSeq(f.src.Git("rev-list", "--all")) {
		fsys := snapshot(t, r, resolve(t, r, h), "")
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			got, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			if want := f.src.Git("rev-parse", h+":"+p); blobHash(got) != want {
				t.Errorf("%s:%s = %q, not blob %s", h, p, got, want)
			}
			return nil
		})
		if err != nil {
			t.Errorf("snapshot of %s: %v", h, err)
		}
	}
	gittest.Git(t, "", nil, "--git-dir", r.Dir(), "fsck", "--no-progress")
}

// blobHash is the Git object name of a blob with content b.
func blobHash(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// A repack running in the background does not block a fetch: while it is
// held after writing its pack, Fetch (with new commits, and unchanged in
// one ref advertisement), Resolve and Snapshot complete and see the new
// commits, and no second repack starts. Released, it leaves the repacked
// pack and the pack of the fetch made meanwhile; the next repack leaves
// one pack, and every ref and every commit still reads.
func TestRepackInBackgroundDoesNotBlockFetch(t *testing.T) {
	defer git.SetMaxPacks(2)()
	reached, release, restore := git.HoldRepack()
	defer restore()
	defer release()
	f := newFixture(t)
	srv, url := f.served(t)
	log, logs := newLogger()
	r := openIn(t, url, t.TempDir(), log)
	fetch(t, r)

	n := 0
	fetchUntilRepack(t, f, r, 2, &n)
	waitReached(t, reached)
	old := packsIn(t, r) // the 3 old packs and the new one beside them

	n++
	head := pushNews(f, n)
	ctx := context.Background()
	within(t, "Fetch during the repack", func() error {
		res, err := r.Fetch(ctx)
		if err != nil || !res.Changed || len(res.Updated) != 1 || res.Updated[0].New != head {
			return fmt.Errorf("got %+v, %v; want main moved to %s", res, err, head)
		}
		return nil
	})
	within(t, "Resolve and Snapshot during the repack", func() error {
		c, err := r.Resolve(ctx, "main")
		if err != nil || c.Hash != head {
			return fmt.Errorf("main = %s, %v; want %s", c.Hash, err, head)
		}
		fsys, err := r.Snapshot(ctx, c, "")
		if err != nil {
			return err
		}
		if b, err := readFile(fsys, "NEWS"); err != nil || string(b) != strings.Repeat("news\n", n) {
			return fmt.Errorf("NEWS = %q, %v", b, err)
		}
		if c, err = r.Resolve(ctx, "v1"); err != nil {
			return err
		}
		if fsys, err = r.Snapshot(ctx, c, "fleet"); err != nil {
			return err
		}
		if b, err := readFile(fsys, "sub/values.cue"); err != nil || !strings.Contains(string(b), "8080") {
			return fmt.Errorf("v1 fleet/sub/values.cue = %q, %v", b, err)
		}
		return nil
	})
	srv.Reset()
	within(t, "an unchanged Fetch during the repack", func() error {
		if res, err := r.Fetch(ctx); err != nil || res.Changed {
			return fmt.Errorf("got %+v, %v; want no change", res, err)
		}
		return nil
	})
	if got := len(srv.Requests()); got != 1 || srv.Count("GET", "/info/refs") != 1 {
		t.Errorf("unchanged Fetch during the repack: %d requests, want 1 ref advertisement: %+v", got, srv.Requests())
	}
	if got := len(packsIn(t, r)); got != len(old)+1 {
		t.Errorf("%d packs during the repack, want %d (a second repack started?)", got, len(old)+1)
	}
	if strings.Contains(logs.String(), "repacked") {
		t.Errorf("repack finished while held:\n%s", logs)
	}

	release()
	git.WaitRepack(r)
	if !strings.Contains(logs.String(), "git cache repacked") {
		t.Fatalf("no repack logged:\n%s", logs)
	}
	if got := len(packsIn(t, r)); got != 2 {
		t.Errorf("after the repack: %d packs, want 2 (the repacked one and the fetch's)", got)
	}
	checkCache(t, f, r)

	// The next fetch that brings objects repacks again, into one pack.
	fetchUntilRepack(t, f, r, 2, &n)
	git.WaitRepack(r)
	if got := packsIn(t, r); len(got) != 1 {
		t.Errorf("after the second repack: %d packs, want 1: %v", len(got), got)
	}
	checkCache(t, f, r)
}

// Close during a held repack cuts it off and returns; the cache it leaves
// opens without repair, and fetches, repacks and reads.
func TestCloseDuringRepack(t *testing.T) {
	defer git.SetMaxPacks(2)()
	reached, release, restore := git.HoldRepack()
	defer restore()
	defer release()
	f := newFixture(t)
	_, url := f.served(t)
	cacheDir := t.TempDir()
	log, logs := newLogger()
	r, err := git.Open(context.Background(), git.Options{URL: url, CacheDir: cacheDir, Logger: log})
	must(t, err)
	fetch(t, r)
	n := 0
	fetchUntilRepack(t, f, r, 2, &n)
	waitReached(t, reached)

	within(t, "Close during the repack", r.Close)
	if !strings.Contains(logs.String(), "compaction failed") {
		t.Errorf("cut-off repack not logged:\n%s", logs)
	}
	if _, err := r.Resolve(context.Background(), "main"); err == nil {
		t.Error("Resolve after Close succeeded")
	}

	restore()
	log, logs = newLogger()
	r = openIn(t, url, cacheDir, log)
	if strings.Contains(logs.String(), "unusable") {
		t.Fatalf("the cache left by Close was re-created:\n%s", logs)
	}
	checkCache(t, f, r)
	// The old packs and the new one are all there: the next fetch that
	// brings objects repacks them.
	n++
	pushNews(f, n)
	fetch(t, r)
	git.WaitRepack(r)
	if got := packsIn(t, r); len(got) != 1 {
		t.Errorf("after a repack: %d packs, want 1: %v", len(got), got)
	}
	checkCache(t, f, r)
}

// A repack cut off by its time limit leaves the cache as it was, without
// temporary files, and a later fetch repacks.
func TestRepackTimeout(t *testing.T) {
	defer git.SetMaxPacks(2)()
	restoreTimeout := git.SetRepackTimeout(time.Nanosecond)
	defer restoreTimeout()
	f := newFixture(t)
	_, url := f.served(t)
	log, logs := newLogger()
	r := openIn(t, url, t.TempDir(), log)
	fetch(t, r)
	n := 0
	fetchUntilRepack(t, f, r, 2, &n)
	git.WaitRepack(r)
	if !strings.Contains(logs.String(), "compaction failed") || !strings.Contains(logs.String(), "deadline exceeded") {
		t.Errorf("timed-out repack not logged:\n%s", logs)
	}
	if got := len(packsIn(t, r)); got != 3 {
		t.Errorf("after a timed-out repack: %d packs, want the 3 it started from", got)
	}
	entries, err := os.ReadDir(filepath.Join(r.Dir(), "objects", "pack"))
	must(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tmp_") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	checkCache(t, f, r)

	restoreTimeout()
	n++
	pushNews(f, n)
	fetch(t, r)
	git.WaitRepack(r)
	if got := packsIn(t, r); len(got) != 1 {
		t.Errorf("after the retry: %d packs, want 1: %v", len(got), got)
	}
	checkCache(t, f, r)
}
