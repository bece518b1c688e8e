package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/sources/github/githubtest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// recordingProxy is an HTTP proxy that forwards nothing: it records the
// host of every request it is asked to carry (CONNECT for https) and
// refuses it.
type recordingProxy struct {
	*httptest.Server
	mu    sync.Mutex
	hosts []string
}

func newRecordingProxy(t *testing.T) *recordingProxy {
	t.Helper()
	p := &recordingProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hosts = append(p.hosts, r.Host)
		p.mu.Unlock()
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *recordingProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.hosts...)
}

// TestServeGitHubEnterpriseWithoutAPIURL: a repository on a GitHub
// Enterprise host, with a token but without --github-api-url, turns
// reporting off with a warning that says why, and a pull request's
// reports go nowhere: every request molt makes goes through a recording
// proxy, which is asked for the Git host only, never for api.github.com
// or any other.
func TestServeGitHubEnterpriseWithoutAPIURL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	proxy := newRecordingProxy(t)
	for _, v := range []string{"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"} {
		t.Setenv(v, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	t.Setenv("MOLT_GITHUB_TOKEN", "")
	tokenFile := filepath.Join(t.TempDir(), "gh-token")
	if err := os.WriteFile(tokenFile, []byte("ghp_enterprise_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "https://ghe.example/acme/fleet.git", stateDir(t), "@every 1h", "--github-token-file", tokenFile)
	const head = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	if code := s.sendHook(t, "pull_request", pullRequestPayload(t, "opened", 7, head, "feature")); code != http.StatusAccepted {
		t.Fatalf("pull_request delivery: %d", code)
	}
	elsewhere := func() bool {
		for _, host := range proxy.seen() {
			if host != "ghe.example:443" { // the Git fetch, refused by the proxy
				return true
			}
		}
		return false
	}
	targetstest.Eventually(t, 30*time.Second, "the plan and its status, logged and not sent", func() bool {
		return strings.Count(s.logs.String(), "github report not sent: reporting is off") >= 2 || elsewhere()
	})
	logs := s.logs.String()
	const warn = "GitHub reporting is off: nothing is sent to any host: the repository is on ghe.example, not github.com, and --github-api-url is not given"
	if !strings.Contains(logs, warn) || !strings.Contains(logs, "level=WARN") {
		t.Errorf("no warning saying why reporting is off:\n%s", logs)
	}
	if strings.Contains(logs, "ghp_enterprise_secret") {
		t.Error("the log shows the token")
	}
	seen := proxy.seen()
	for _, host := range seen {
		if host != "ghe.example:443" {
			t.Errorf("a request for %s went out", host)
		}
	}
	if len(seen) == 0 {
		t.Error("the proxy saw not even the Git fetch: molt did not use it, and this test shows nothing")
	}
}

// TestServeGitHubApp runs molt serve as a GitHub App against the
// in-process GitHub: it finds its installation from the repository,
// exchanges a JWT signed with the app's key (PKCS#8) for an installation
// token, and uses that token for every report; the pull request's
// molt/plan status links to the plan comment, and molt/deploy to
// --public-url.
func TestServeGitHubApp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	t.Setenv("MOLT_GITHUB_TOKEN", "")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := newFleetRepo(t)
	gitSrv := gittest.ServeHTTP(t, repo.Root)
	gh := githubtest.Start(t, githubtest.Options{Owner: "acme", Repo: "fleet",
		App: &githubtest.App{ID: 5150, PublicKey: &key.PublicKey, InstallationID: 77}})
	gh.PutCommit(repo.First, "v1", githubtest.TreeSHA("v1"))
	gh.SetRef("heads/main", repo.First)

	s := startServe(t, gitSrv.RepoURL("fleet.git"), stateDir(t), "@every 1s",
		"--github-repo", "acme/fleet", "--github-api-url", gh.URL,
		"--github-app-id", "5150", "--github-app-key-file", keyFile, "--public-url", "https://molt.example/")
	answers(t, repo.App, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "deploy success status", func() bool { return hasStatus(gh, repo.First, "molt/deploy", "success") })
	for _, st := range gh.Statuses(repo.First) {
		if st.TargetURL != "https://molt.example/" || st.Creator != "molt[bot]" {
			t.Errorf("deploy status %+v: want it by molt[bot], linking --public-url", st)
		}
	}

	repo.Git("checkout", "-q", "-b", "feature")
	repo.WriteFile("fleet.cue", repo.source("v2"))
	head := repo.Commit("v2")
	gh.PutCommit(head, "v2", githubtest.TreeSHA("v2"), repo.First)
	repo.Push()
	pr := gh.AddPull(githubtest.PullSeed{Title: "v2", Head: "feature", Base: "main", HeadSHA: head, Commits: []string{head}})
	if code := s.sendHook(t, "pull_request", pullRequestPayload(t, "opened", pr, head, "feature")); code != http.StatusAccepted {
		t.Fatalf("pull_request delivery: %d", code)
	}
	targetstest.Eventually(t, 20*time.Second, "a successful plan status", func() bool { return hasStatus(gh, head, "molt/plan", "success") })
	comments := gh.Comments(pr)
	if len(comments) != 1 || comments[0].User != "molt[bot]" {
		t.Fatalf("comments %+v: want the plan, by molt[bot]", comments)
	}
	want := fmt.Sprintf("%sacme/fleet/pull/%d#issuecomment-%d", gh.URL, pr, comments[0].ID)
	for _, st := range gh.Statuses(head) {
		if st.TargetURL != want {
			t.Errorf("plan status %+v: want it to link the plan comment %s", st, want)
		}
	}

	exchanges := 0
	for _, r := range gh.Requests() {
		switch {
		case r.Status == http.StatusUnauthorized:
			t.Errorf("refused: %s %s", r.Method, r.Path)
		case r.Path == "/repos/acme/fleet/installation" || strings.HasPrefix(r.Path, "/app/"):
			if r.Credential != githubtest.CredentialJWT {
				t.Errorf("%s %s with %q, want the JWT", r.Method, r.Path, r.Credential)
			}
			if strings.HasSuffix(r.Path, "/access_tokens") {
				exchanges++
			}
		case r.Credential != githubtest.CredentialInstallation:
			t.Errorf("%s %s with %q, want the installation token", r.Method, r.Path, r.Credential)
		}
	}
	if exchanges != 1 {
		t.Errorf("%d token exchanges, want 1", exchanges)
	}
	if !strings.Contains(s.logs.String(), "github app installation found") || !strings.Contains(s.logs.String(), "installation=77") {
		t.Errorf("the installation was not found from the repository:\n%s", s.logs.String())
	}
}
