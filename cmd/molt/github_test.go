package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/sources/github/githubtest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// sendHook delivers a signed GitHub webhook of the given event to serve.
func (s *served) sendHook(t *testing.T, event string, payload map[string]any) int {
	t.Helper()
	body, _ := json.Marshal(payload)
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.listen+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("gh-%s-%d", s.listen, s.counter.Add(1)))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pullRequestPayload is GitHub's pull_request payload (from the real
// example) pointed at our repository, pull request and head.
func pullRequestPayload(t *testing.T, action string, number int, headSHA, headRef string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../sources/github/testdata/pull_request.opened.json")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p["action"], p["number"] = action, number
	p["repository"].(map[string]any)["full_name"] = "acme/fleet"
	pr := p["pull_request"].(map[string]any)
	pr["number"] = number
	head := pr["head"].(map[string]any)
	head["sha"], head["ref"] = headSHA, headRef
	head["repo"].(map[string]any)["full_name"] = "acme/fleet"
	pr["base"].(map[string]any)["ref"] = "main"
	return p
}

func pushPayload(t *testing.T, after string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../sources/github/testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p["ref"], p["after"], p["deleted"] = "refs/heads/main", after, false
	p["repository"].(map[string]any)["full_name"] = "acme/fleet"
	return p
}

func hasStatus(gh *githubtest.Server, sha, context, state string) bool {
	for _, st := range gh.Statuses(sha) {
		if st.Context == context && st.State == state {
			return true
		}
	}
	return false
}

// TestServeReportsToGitHub runs molt serve against git http-backend and an
// in-process server speaking GitHub's REST API: a pull request with a bad
// CUE file gets a failure status and a comment naming the file and line;
// fixing it edits the same comment into a plan; merging deploys and
// comments the outcome on the pull request; a merged commit whose rollout
// fails gets a failure status, the reason, and exactly one revert PR.
func TestServeReportsToGitHub(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	root, app := repo.Root, repo.App
	base := repo.First
	gitSrv := gittest.ServeHTTP(t, root)
	gh := githubtest.Start(t, githubtest.Options{Owner: "acme", Repo: "fleet", Token: "ghs_token_for_tests"})
	// GitHub knows the commits that are pushed to it.
	gh.PutCommit(base, "v1", githubtest.TreeSHA("v1"))
	gh.SetRef("heads/main", base)

	state := stateDir(t)
	tokenFile := t.TempDir() + "/gh-token"
	os.WriteFile(tokenFile, []byte("ghs_token_for_tests\n"), 0o600)
	s := startServe(t, gitSrv.RepoURL("fleet.git"), state, "@every 1s",
		"--github-repo", "acme/fleet", "--github-api-url", gh.URL, "--github-token-file", tokenFile, "--github-revert-pr")
	answers(t, app, "hello from v1", 30*time.Second)

	// A pull request whose head has an invalid fleet (line 2).
	repo.Git("checkout", "-q", "-b", "feature")
	repo.WriteFile("fleet.cue", strings.Replace(repo.source("v2"), "replicas: 2", `replicas: "two"`, 1))
	bad := repo.Commit("bad replicas")
	gh.PutCommit(bad, "bad replicas", githubtest.TreeSHA("bad"), base)
	repo.Push()
	pr := gh.AddPull(githubtest.PullSeed{Title: "v2", Head: "feature", Base: "main", HeadSHA: bad, Commits: []string{bad}})
	if code := s.sendHook(t, "pull_request", pullRequestPayload(t, "opened", pr, bad, "feature")); code != http.StatusAccepted {
		t.Fatalf("pull_request delivery: %d", code)
	}
	targetstest.Eventually(t, 20*time.Second, "a failed plan status", func() bool { return hasStatus(gh, bad, "molt/plan", "failure") })
	targetstest.Eventually(t, 10*time.Second, "the plan comment", func() bool { return len(gh.Comments(pr)) == 1 })
	body := gh.Comments(pr)[0].Body
	if !strings.Contains(body, "fleet.cue") || !strings.Contains(body, "/blob/"+bad+"/fleet.cue#L2") {
		t.Errorf("the comment does not link the error to fleet.cue line 2:\n%s", body)
	}

	// Fixed: the same comment now holds the plan.
	repo.WriteFile("fleet.cue", repo.source("v2"))
	good := repo.Commit("v2")
	gh.PutCommit(good, "v2", githubtest.TreeSHA("v2"), bad)
	repo.Push()
	gh.PushToPull(pr, good)
	if code := s.sendHook(t, "pull_request", pullRequestPayload(t, "synchronize", pr, good, "feature")); code != http.StatusAccepted {
		t.Fatalf("synchronize delivery: %d", code)
	}
	targetstest.Eventually(t, 20*time.Second, "a successful plan status", func() bool { return hasStatus(gh, good, "molt/plan", "success") })
	targetstest.Eventually(t, 10*time.Second, "the comment edited into a plan", func() bool {
		c := gh.Comments(pr)
		return len(c) == 1 && strings.Contains(c[0].Body, "web") && !strings.Contains(c[0].Body, "#L2")
	})
	if n := len(gh.Comments(pr)); n != 1 {
		t.Errorf("%d comments on the pull request, want 1", n)
	}
	// Still v1 in production: a plan changes nothing.
	answers(t, app, "hello from v1", time.Second)

	// Merge (fast-forward main to the pull request's head) and push.
	gh.AddPull(githubtest.PullSeed{}) // an unrelated pull request must not get the outcome
	ghPR := pr
	repo.Git("checkout", "-q", "main")
	repo.Git("merge", "-q", "--ff-only", "feature")
	gh.SetRef("heads/main", good)
	repo.Push()
	s.sendHook(t, "push", pushPayload(t, good))
	answers(t, app, "hello from v2", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "deploy success status", func() bool { return hasStatus(gh, good, "molt/deploy", "success") })
	if !hasStatus(gh, good, "molt/deploy", "pending") {
		t.Error("no pending deploy status before the success")
	}
	targetstest.Eventually(t, 10*time.Second, "the outcome comment", func() bool { return len(gh.Comments(ghPR)) == 2 })
	if outcome := gh.Comments(ghPR)[1].Body; !strings.Contains(outcome, "provisioned") {
		t.Errorf("outcome comment:\n%s", outcome)
	}

	// A merged commit whose rollout fails.
	repo.WriteFile("fleet.cue", repo.source("v3")+"\nservices: web: env: FAIL_HEALTH: \"1\"\n")
	broken := repo.Commit("v3 (broken)")
	gh.PutCommit(broken, "v3 (broken)", githubtest.TreeSHA("v3"), good)
	gh.SetRef("heads/main", broken)
	brokenPR := gh.AddPull(githubtest.PullSeed{Title: "v3", Head: "v3", Base: "main", HeadSHA: broken, Commits: []string{broken}, State: "closed", Merged: true, MergeCommit: broken})
	repo.Push()
	s.sendHook(t, "push", pushPayload(t, broken))
	targetstest.Eventually(t, 40*time.Second, "deploy failure status", func() bool { return hasStatus(gh, broken, "molt/deploy", "failure") })
	answers(t, app, "hello from v2", time.Second)
	targetstest.Eventually(t, 20*time.Second, "the failure comment", func() bool {
		for _, c := range gh.Comments(brokenPR) {
			if strings.Contains(c.Body, "health") {
				return true
			}
		}
		return false
	})
	revertPRs := func() int {
		n := 0
		for _, p := range gh.Pulls() {
			if strings.HasPrefix(p.Head, "molt/revert-") {
				n++
			}
		}
		return n
	}
	targetstest.Eventually(t, 20*time.Second, "the revert pull request", func() bool { return revertPRs() == 1 })
	// More triggers for the same failed commit: still one revert PR.
	s.sendHook(t, "push", pushPayload(t, broken))
	time.Sleep(2 * time.Second) // two poll ticks
	if n := revertPRs(); n != 1 {
		t.Errorf("%d revert pull requests, want exactly 1", n)
	}
	for _, w := range gh.Requests() {
		if w.Status == http.StatusUnauthorized {
			t.Errorf("an unauthenticated request reached GitHub: %s %s", w.Method, w.Path)
		}
	}
}
