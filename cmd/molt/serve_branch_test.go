package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeDefaultBranch: without --branch, serve follows the remote's
// default branch (here "trunk", not "main"), also when the remote's HEAD
// moves to another branch; a --branch that does not exist is said
// plainly, in the log and on /readyz, and nothing is deployed.
func TestServeDefaultBranch(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	bare := repo.Root + "/fleet.git"
	// The remote's default branch is trunk; main does not exist there.
	repo.Git("--git-dir", bare, "branch", "-m", "main", "trunk")
	if head := strings.TrimSpace(repo.Git("--git-dir", bare, "symbolic-ref", "HEAD")); head != "refs/heads/trunk" {
		t.Fatalf("remote HEAD = %s", head)
	}

	missing := startServe(t, bare, stateDir(t), "@every 1s", "--branch", "main")
	var body string
	targetstest.Eventually(t, 20*time.Second, "/readyz naming the missing branch", func() bool {
		resp, err := http.Get("http://" + missing.listen + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, `branch "main" does not exist in `)
	})
	if !strings.Contains(missing.logs.String(), `branch \"main\" does not exist`) {
		t.Errorf("the log does not say the branch is missing:\n%s", missing.logs.String())
	}
	if strings.Contains(body, "has not been fetched yet") {
		t.Errorf("/readyz: %s", body)
	}

	s := startServe(t, bare, stateDir(t), "@every 1s", "--branch=")
	answers(t, repo.App, "hello from v1", 30*time.Second)
	if !strings.Contains(s.logs.String(), "(the remote's default branch)") {
		t.Errorf("the start line does not say serve follows the default branch:\n%s", s.logs.String())
	}

	// v2 on another branch, which becomes the remote's default branch.
	repo.WriteFile("fleet.cue", repo.source("v2"))
	repo.Commit("v2")
	repo.Git("push", "-q", bare, "HEAD:refs/heads/release")
	repo.Git("--git-dir", bare, "symbolic-ref", "HEAD", "refs/heads/release")
	answers(t, repo.App, "hello from v2", 30*time.Second)
	if !strings.Contains(s.logs.String(), "release@sha1:") {
		t.Errorf("the revision does not name the branch it came from:\n%s", s.logs.String())
	}
}
