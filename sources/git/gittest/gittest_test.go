package gittest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/molt-dev/molt/sources/git/gittest"
)

// The same calls make the same commits, on any machine.
func TestRepoDeterministic(t *testing.T) {
	build := func() (string, string) {
		r := gittest.NewRepo(t)
		r.WriteFile("a/b.txt", "b\n")
		r.WriteExecutable("run.sh", "#!/bin/sh\n")
		r.Symlink("a/b.txt", "link")
		first := r.Commit("first")
		r.AnnotatedTag("v1", "one")
		r.WriteFile("a/b.txt", "c\n")
		return first, r.Commit("second")
	}
	a1, a2 := build()
	b1, b2 := build()
	if a1 != b1 || a2 != b2 {
		t.Errorf("hashes differ: %s %s vs %s %s", a1, a2, b1, b2)
	}
	if a1 == a2 {
		t.Error("two commits share a hash")
	}
}

func TestServeHTTP(t *testing.T) {
	r := gittest.NewRepo(t)
	r.WriteFile("README", "hi\n")
	head := r.Commit("first")
	root := t.TempDir()
	r.Publish(root, "x.git")
	srv := gittest.ServeHTTP(t, root)

	resp, err := http.Get(srv.RepoURL("x.git") + "/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), head+" refs/heads/main") {
		t.Errorf("info/refs: %s\n%s", resp.Status, body)
	}

	clone := t.TempDir()
	gittest.Git(t, "", nil, "clone", "-q", srv.RepoURL("x.git"), clone)
	if got := gittest.Git(t, clone, nil, "rev-parse", "HEAD"); got != head {
		t.Errorf("clone HEAD = %s, want %s", got, head)
	}
	if srv.Count("GET", "/info/refs") < 2 || srv.Count("POST", "/git-upload-pack") < 1 {
		t.Errorf("requests: %+v", srv.Requests())
	}

	// Pushes go to the bare repository directly and are served at once.
	r.WriteFile("README", "changed\n")
	next := r.Commit("second")
	r.Push()
	srv.Reset()
	gittest.Git(t, clone, nil, "pull", "-q", "--ff-only")
	if got := gittest.Git(t, clone, nil, "rev-parse", "HEAD"); got != next {
		t.Errorf("after pull HEAD = %s, want %s", got, next)
	}
	if len(srv.Requests()) == 0 {
		t.Error("Reset then pull: no requests recorded")
	}
	srv.Close()
	srv.Close()
}
