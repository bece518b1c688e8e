package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/sources/github/githubtest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// sendComment delivers a signed issue_comment webhook (GitHub's real
// payload, moved onto pull request pr of acme/fleet) under the given
// delivery id, and returns the status of the answer.
func (s *served) sendComment(t *testing.T, delivery string, pr int, login, body string) int {
	t.Helper()
	raw, err := os.ReadFile("../../sources/github/testdata/issue_comment.created.json")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p["repository"].(map[string]any)["full_name"] = "acme/fleet"
	issue := p["issue"].(map[string]any)
	issue["number"] = pr
	issue["pull_request"] = map[string]any{"url": "https://api.github.com/repos/acme/fleet/pulls/" + strconv.Itoa(pr), "merged_at": nil}
	cm := p["comment"].(map[string]any)
	cm["id"] = 3_000_000 + s.counter.Add(1)
	cm["body"] = body
	cm["user"].(map[string]any)["login"] = login
	payload, _ := json.Marshal(p)
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write(payload)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.listen+"/hooks/github", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "issue_comment")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// commentsWith returns the comments of a pull request that contain s.
func commentsWith(gh *githubtest.Server, pr int, s string) []githubtest.Comment {
	var out []githubtest.Comment
	for _, c := range gh.Comments(pr) {
		if strings.Contains(c.Body, s) {
			out = append(out, c)
		}
	}
	return out
}

// recordedDecisions reads STATE/decisions.json (none when it is absent).
func recordedDecisions(t *testing.T, state string) []reconciler.Decision {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "decisions.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ds []reconciler.Decision
	if err := json.Unmarshal(b, &ds); err != nil {
		t.Fatalf("decisions.json: %v\n%s", err, b)
	}
	return ds
}

func pausedStatus(gh *githubtest.Server, sha string) bool {
	for _, st := range gh.Statuses(sha) {
		if st.Context == "molt/deploy" && st.State == "pending" && strings.HasPrefix(st.Description, "paused") {
			return true
		}
	}
	return false
}

// TestCommentPromoteAndAbort runs molt serve against git http-backend and
// the in-process GitHub: a blue-green rollout with pause: true waits
// before its switch; "/molt promote web" from a user not on
// --github-allow gets a refusal and changes nothing, from an allowed user
// on another pull request gets "no paused rollout from this pull
// request", and from an allowed user on the rollout's own pull request
// switches to v2 and is confirmed; "/molt abort" on the next paused
// rollout rolls it back.
func TestCommentPromoteAndAbort(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	gitSrv := gittest.ServeHTTP(t, repo.Root)
	gh := githubtest.Start(t, githubtest.Options{Owner: "acme", Repo: "fleet", Token: "ghs_token_for_tests"})
	gh.PutCommit(repo.First, "v1", githubtest.TreeSHA("v1"))
	gh.SetRef("heads/main", repo.First)
	state := stateDir(t)
	tokenFile := filepath.Join(t.TempDir(), "gh-token")
	if err := os.WriteFile(tokenFile, []byte("ghs_token_for_tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, gitSrv.RepoURL("fleet.git"), state, "@every 1s",
		"--github-repo", "acme/fleet", "--github-api-url", gh.URL, "--github-token-file", tokenFile,
		"--github-allow", "Alice", "--github-allow", "bob,carol")
	answers(t, repo.App, "hello from v1", 30*time.Second)

	// merge commits version on main as the merge of its own pull request,
	// with rollout.pause set, and tells serve.
	parent := repo.First
	merge := func(version string) (string, int) {
		src := strings.Replace(repo.source(version), `keepPrevious: "10m"}`, `keepPrevious: "10m", pause: true}`, 1)
		if src == repo.source(version) {
			t.Fatal("the fleet's rollout line changed: cannot set pause")
		}
		repo.WriteFile("fleet.cue", src)
		c := repo.Commit(version)
		gh.PutCommit(c, version, githubtest.TreeSHA(version), parent)
		pr := gh.AddPull(githubtest.PullSeed{Title: version, Head: version, Base: "main", HeadSHA: c, Commits: []string{c},
			State: "closed", Merged: true, MergeCommit: c})
		gh.SetRef("heads/main", c)
		repo.Push()
		if code := s.sendHook(t, "push", pushPayload(t, c)); code != http.StatusAccepted {
			t.Fatalf("push delivery: %d", code)
		}
		parent = c
		return c, pr
	}

	v2, pr2 := merge("v2")
	targetstest.Eventually(t, 40*time.Second, "v2 paused (status)", func() bool { return pausedStatus(gh, v2) })
	targetstest.Eventually(t, 20*time.Second, "the paused comment", func() bool { return len(commentsWith(gh, pr2, "is paused")) == 1 })
	answers(t, repo.App, "hello from v1", time.Second)
	unrelated := gh.AddPull(githubtest.PullSeed{Title: "docs", Head: "docs", Base: "main", HeadSHA: strings.Repeat("d", 40)})

	t.Run("refused author", func(t *testing.T) {
		if code := s.sendComment(t, "refused-1", pr2, "mallory", "/molt promote web"); code != http.StatusAccepted {
			t.Fatalf("comment delivery: %d", code)
		}
		targetstest.Eventually(t, 20*time.Second, "the refusal", func() bool {
			return len(commentsWith(gh, pr2, "@mallory is not allowed to /molt promote here (ask someone named by --github-allow)")) == 1
		})
		time.Sleep(2 * time.Second) // two poll ticks: a promotion would have switched by now
		answers(t, repo.App, "hello from v1", time.Second)
		if ds := recordedDecisions(t, state); len(ds) != 0 {
			t.Errorf("a refused comment recorded %+v", ds)
		}
		if hasStatus(gh, v2, "molt/deploy", "success") {
			t.Error("v2 deployed after a refused comment")
		}
	})

	t.Run("another pull request", func(t *testing.T) {
		s.sendComment(t, "elsewhere-1", unrelated, "alice", "/molt promote web")
		targetstest.Eventually(t, 20*time.Second, "the answer on the other pull request", func() bool {
			return len(commentsWith(gh, unrelated, "@alice: there is no paused rollout from this pull request")) == 1
		})
		if ds := recordedDecisions(t, state); len(ds) != 0 {
			t.Errorf("a comment on another pull request recorded %+v", ds)
		}
		answers(t, repo.App, "hello from v1", time.Second)
	})

	t.Run("promote", func(t *testing.T) {
		s.sendComment(t, "promote-1", pr2, "alice", "/molt promote web\n\nThe new generation looks good.")
		answers(t, repo.App, "hello from v2", 30*time.Second)
		targetstest.Eventually(t, 20*time.Second, "the confirmation", func() bool {
			return len(commentsWith(gh, pr2, "promoted web (by @alice): molt goes on with the rollout")) == 1
		})
		targetstest.Eventually(t, 20*time.Second, "deploy success status", func() bool { return hasStatus(gh, v2, "molt/deploy", "success") })
		// GitHub redelivers the same delivery: answered, not acted on again.
		if code := s.sendComment(t, "promote-1", pr2, "alice", "/molt promote web"); code != http.StatusOK {
			t.Errorf("redelivery answered %d, want 200", code)
		}
		time.Sleep(2 * time.Second)
		if n := len(commentsWith(gh, pr2, "promoted web")); n != 1 {
			t.Errorf("%d confirmations, want 1", n)
		}
		// The promotion was for v2's rollout only: it is gone once converged.
		targetstest.Eventually(t, 10*time.Second, "the decision dropped", func() bool { return len(recordedDecisions(t, state)) == 0 })
	})

	t.Run("abort", func(t *testing.T) {
		v3, pr3 := merge("v3")
		targetstest.Eventually(t, 40*time.Second, "v3 paused (status)", func() bool { return pausedStatus(gh, v3) })
		answers(t, repo.App, "hello from v2", time.Second)
		s.sendComment(t, "abort-1", pr3, "carol", "/molt abort")
		targetstest.Eventually(t, 20*time.Second, "the confirmation", func() bool {
			return len(commentsWith(gh, pr3, "aborting web (by @carol): molt rolls the rollout back")) == 1
		})
		targetstest.Eventually(t, 30*time.Second, "deploy failure status", func() bool { return hasStatus(gh, v3, "molt/deploy", "failure") })
		targetstest.Eventually(t, 20*time.Second, "the failure comment", func() bool {
			return len(commentsWith(gh, pr3, "aborted by github:carol")) > 0
		})
		answers(t, repo.App, "hello from v2", time.Second)
		time.Sleep(2 * time.Second)
		answers(t, repo.App, "hello from v2", time.Second)
	})

	for _, w := range gh.Requests() {
		if w.Status == http.StatusUnauthorized {
			t.Errorf("an unauthenticated request reached GitHub: %s %s", w.Method, w.Path)
		}
	}
}
