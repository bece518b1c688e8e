// Package gittest builds real Git repositories for tests and serves them
// over HTTP with git http-backend.
//
// Everything here drives the git command-line tool: repositories are made
// with `git init`, changed with `git add` and `git commit`, and published
// as bare repositories that [ServeHTTP] serves through the real smart-HTTP
// backend. There are no fakes of Git in this package.
//
// Commits are deterministic: author, committer and dates are fixed (the
// clock advances one minute per commit or tag), and the user's and the
// system's Git configuration are ignored, so the same sequence of calls
// produces the same commit hashes on every machine.
//
// The package is for tests only; every helper fails the test on error.
package gittest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// epoch is the date of the first commit a Repo makes.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Repo is a Git repository with a work tree in a test's temporary directory.
// It is not safe for concurrent use.
type Repo struct {
	// Dir is the work tree; its .git directory is Dir/.git.
	Dir string

	t     testing.TB
	ticks int // commits and tags made so far: drives the fixed clock
}

// NewRepo runs `git init -b main` in a new temporary directory.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	r := &Repo{Dir: t.TempDir(), t: t}
	r.Git("init", "-q", "-b", "main")
	return r
}

// Git runs git with args in the repository's work tree and returns its
// standard output with surrounding white space trimmed.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	return Git(r.t, r.Dir, r.env(), args...)
}

// env returns the clock of the next commit or tag.
func (r *Repo) env() []string {
	when := epoch.Add(time.Duration(r.ticks) * time.Minute).Format(time.RFC3339)
	return []string{"GIT_AUTHOR_DATE=" + when, "GIT_COMMITTER_DATE=" + when}
}

// WriteFile writes content to name (slash-separated, relative to the work
// tree) with mode 0644, creating parent directories.
func (r *Repo) WriteFile(name, content string) {
	r.t.Helper()
	r.write(name, content, 0o644)
}

// WriteExecutable writes content to name with mode 0755.
func (r *Repo) WriteExecutable(name, content string) {
	r.t.Helper()
	r.write(name, content, 0o755)
}

func (r *Repo) write(name, content string, mode os.FileMode) {
	r.t.Helper()
	p := r.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		r.t.Fatal(err)
	}
	// WriteFile keeps the mode of an existing file; make it the asked one.
	if err := os.Chmod(p, mode); err != nil {
		r.t.Fatal(err)
	}
}

// Symlink creates name as a symbolic link whose text is target.
func (r *Repo) Symlink(target, name string) {
	r.t.Helper()
	p := r.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		r.t.Fatal(err)
	}
}

// Gitlink stages a submodule entry (mode 160000) at name pointing at
// commit, without cloning anything: the next Commit records it. name
// becomes an empty directory, as an uninitialised submodule is.
func (r *Repo) Gitlink(name, commit string) {
	r.t.Helper()
	if err := os.MkdirAll(r.path(name), 0o755); err != nil {
		r.t.Fatal(err)
	}
	r.Git("update-index", "--add", "--cacheinfo", "160000,"+commit+","+name)
}

// Remove deletes name (a file or a whole directory) from the work tree.
func (r *Repo) Remove(name string) {
	r.t.Helper()
	if err := os.RemoveAll(r.path(name)); err != nil {
		r.t.Fatal(err)
	}
}

// Commit stages every change in the work tree (`git add -A`), commits it
// with message and returns the new commit's full hash. A commit with no
// change is allowed.
func (r *Repo) Commit(message string) string {
	r.t.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", message)
	r.ticks++
	return r.Head()
}

// Head returns the full hash of the commit HEAD points at.
func (r *Repo) Head() string {
	r.t.Helper()
	return r.Git("rev-parse", "HEAD")
}

// Tag creates a lightweight tag on HEAD.
func (r *Repo) Tag(name string) {
	r.t.Helper()
	r.Git("tag", name)
}

// AnnotatedTag creates an annotated tag on HEAD and returns the hash of
// the tag object (not of the commit).
func (r *Repo) AnnotatedTag(name, message string) string {
	r.t.Helper()
	r.Git("tag", "-a", "-m", message, name)
	r.ticks++
	return r.Git("rev-parse", "refs/tags/"+name)
}

// Publish creates a bare clone of the repository at root/name (name
// usually ends in ".git"), makes it the remote "origin" of the work tree,
// and returns its path. Serve root with [ServeHTTP] to reach it over HTTP
// at URL + "/" + name.
func (r *Repo) Publish(root, name string) string {
	r.t.Helper()
	bare := filepath.Join(root, filepath.FromSlash(name))
	Git(r.t, "", nil, "clone", "-q", "--bare", r.Dir, bare)
	r.Git("remote", "add", "origin", bare)
	return bare
}

// Push makes origin's branches and tags exactly the work tree's: it
// force-pushes every branch and tag and deletes those that no longer exist
// locally, so rewritten history and deleted branches reach the remote too.
func (r *Repo) Push() {
	r.t.Helper()
	r.Git("push", "-q", "--force", "--prune", "origin",
		"refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
}

// path turns a slash-separated name into a path inside the work tree.
func (r *Repo) path(name string) string {
	r.t.Helper()
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		r.t.Fatalf("gittest: %q is not a path inside the repository", name)
	}
	return filepath.Join(r.Dir, filepath.FromSlash(name))
}

// InitBare creates an empty bare repository at dir (which may exist and be
// empty) whose HEAD points at refs/heads/main.
func InitBare(t testing.TB, dir string) {
	t.Helper()
	Git(t, "", nil, "init", "-q", "--bare", "-b", "main", dir)
}

// Git runs the git command-line tool with args in dir ("" for the current
// directory) and fails t if it fails. It ignores the user's and the
// system's Git configuration and uses a fixed identity; extraEnv entries
// ("KEY=value") are added to the environment. It returns standard output
// with surrounding white space trimmed.
func Git(t testing.TB, dir string, extraEnv []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), Env()...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// Env returns the environment that makes git hermetic and deterministic:
// no global or system configuration, a fixed identity, no prompts. Tests
// that run git themselves (or a program that does) can append it to
// os.Environ().
func Env() []string {
	when := epoch.Format(time.RFC3339)
	return []string{
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Molt Test",
		"GIT_AUTHOR_EMAIL=test@molt.invalid",
		"GIT_COMMITTER_NAME=Molt Test",
		"GIT_COMMITTER_EMAIL=test@molt.invalid",
		"GIT_AUTHOR_DATE=" + when,
		"GIT_COMMITTER_DATE=" + when,
		"LC_ALL=C",
	}
}

// ExecPath returns the directory of git's helper programs (`git
// --exec-path`), where git-http-backend and git-upload-pack live.
func ExecPath(t testing.TB) string {
	t.Helper()
	return Git(t, "", nil, "--exec-path")
}

// String describes the repository in test failure messages.
func (r *Repo) String() string { return fmt.Sprintf("gittest.Repo(%s)", r.Dir) }
