package git_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFetchLocalWithoutGit reads local repositories (a work tree, a bare
// repository, a linked work tree whose .git is a file) in a process that
// cannot run git-upload-pack, as molt's image cannot: go-git's own
// upload-pack serves them in process, with the same refs and files.
func TestFetchLocalWithoutGit(t *testing.T) {
	if dirs := os.Getenv("MOLT_TEST_NO_GIT_REPOS"); dirs != "" {
		noGitChild(t, strings.Split(dirs, string(os.PathListSeparator)))
		return
	}
	f := newFixture(t)
	bare := filepath.Join(t.TempDir(), "bare.git")
	f.src.Git("clone", "-q", "--bare", f.src.Dir, bare)
	linked := filepath.Join(t.TempDir(), "linked")
	f.src.Git("worktree", "add", "-q", "--detach", linked, "main")

	cmd := exec.Command(os.Args[0], "-test.run=^TestFetchLocalWithoutGit$", "-test.v")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir(), // nothing to run there
		"MOLT_TEST_NO_GIT_REPOS="+strings.Join([]string{f.src.Dir, bare, linked, f.second}, string(os.PathListSeparator)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "served in process: 3 repositories") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func noGitChild(t *testing.T, args []string) {
	if _, err := exec.LookPath("git-upload-pack"); err == nil {
		t.Fatal("git-upload-pack is on PATH")
	}
	dirs, want := args[:3], args[3]
	for _, dir := range dirs {
		r := open(t, dir)
		res := fetch(t, r)
		if !res.Changed {
			t.Errorf("%s: first Fetch = %+v, want a change", dir, res)
		}
		c := resolve(t, r, "main")
		if c.Hash != want {
			t.Errorf("%s: main = %s, want %s", dir, c.Hash, want)
		}
		if _, err := r.Resolve(t.Context(), "feature"); err != nil {
			t.Errorf("%s: feature: %v", dir, err)
		}
		snap, err := r.Snapshot(t.Context(), c, "fleet")
		if err != nil {
			t.Fatal(err)
		}
		b, err := fs.ReadFile(snap, "services.cue")
		if err != nil || !strings.Contains(string(b), "replicas: 2") {
			t.Errorf("%s: services.cue = %q, %v", dir, b, err)
		}
		if res := fetch(t, r); res.Changed {
			t.Errorf("%s: second Fetch = %+v, want no change", dir, res)
		}
	}
	if _, err := exec.LookPath("git-upload-pack"); err == nil {
		t.Fatal("git-upload-pack appeared")
	}
	if !t.Failed() {
		t.Logf("served in process: %d repositories", len(dirs))
	}
}
