package main

// End-to-end tests of secrets outside Git (secretEnv): real hello
// processes behind the router, the molt binary for plan, apply and serve,
// and the in-process GitHub. Helpers are prefixed "secret" (other files
// of the package are written by others at the same time).

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/sources/github/githubtest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestSecretRotationE2E: a service gets its secrets (read from files on
// molt's host) in its environment. Rotating one makes `molt plan` say
// "secret DB_PASSWORD changed" in every format, and `molt apply` roll the
// service to a new generation, rolling and health-gated, with no failed
// request through the router, while the service without secrets is not
// touched; a rotation whose new generation fails its health check is
// rolled back, the serving generation kept. No value appears in anything
// molt printed (debug logs included), nor in any file of the state
// directory.
func TestSecretRotationE2E(t *testing.T) {
	f := newCoreFleet(t)
	dir := filepath.Join(f.work, "secrets")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file, failFile := filepath.Join(dir, "db-password"), filepath.Join(dir, "fail-health")
	first, second := "pw-first-"+secretToken(), "pw-second-"+secretToken()
	secretWrite(t, file, first+"\n")
	secretWrite(t, failFile, "0\n")
	f.commit("v1", fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: "v1"
	secretEnv: {
		DB_PASSWORD: file: %q
		// The hello app's /healthz answers 503 with FAIL_HEALTH=1.
		FAIL_HEALTH: file: %q
	}
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s"}
}
services: api: {
	process: command: [%q]
	env: VERSION: "api"
	ports: http: 0
	health: {interval: "100ms", grace: "1s"}
}
`, f.hello, file, failFile, f.addr(), f.hello))

	var printed []string // everything molt printed, logs included
	molt := func(args ...string) coreResult {
		t.Helper()
		r := f.molt(args...)
		printed = append(printed, r.stdout, r.stderr)
		return r
	}
	if r := molt("apply", "--repo", f.repo, "--log-level", "debug"); r.code != 0 || !strings.Contains(r.stdout, "converged to ") {
		t.Fatalf("apply exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	oldGen, apiIDs := secretGenerations(f)
	if len(oldGen) != 1 || len(apiIDs) != 1 {
		t.Fatalf("web runs generations %v, api %v; want one each", oldGen, apiIDs)
	}
	secretWantEnv(t, f, first)

	// Rotated in place, atomically, as a secrets manager does.
	secretWrite(t, file, second+"\n")
	text := molt("plan", "--repo", f.repo)
	if text.code != 2 {
		t.Fatalf("plan exited %d, want 2 (a change):\n%s%s", text.code, text.stdout, text.stderr)
	}
	m := regexp.MustCompile(`service web \(rolling, 2 replicas\)\n  generation ([0-9a-f]{8}) \([^)]*\) → ([0-9a-f]{8}) \([^)]*\)\n  why: secret DB_PASSWORD changed\n`).FindStringSubmatch(text.stdout)
	if m == nil || m[1] == m[2] || !strings.HasPrefix(oldGen[0], m[1]) {
		t.Fatalf("the plan does not roll web from %s because secret DB_PASSWORD changed:\n%s", oldGen[0][:8], text.stdout)
	}
	if !regexp.MustCompile(`service api \(rolling, 1 replicas\)\n  generation [0-9a-f]{8} \([^)]*\)\n  no change\n`).MatchString(text.stdout) {
		t.Errorf("the plan changes api:\n%s", text.stdout)
	}
	js := molt("plan", "--repo", f.repo, "-o", "json")
	if js.code != 2 || !strings.Contains(js.stdout, `"text": "secret DB_PASSWORD changed"`) {
		t.Errorf("plan -o json exited %d without the reason:\n%s%s", js.code, js.stdout, js.stderr)
	}
	md := molt("plan", "--repo", f.repo, "-o", "markdown")
	if md.code != 2 || !strings.Contains(md.stdout, "| secret DB_PASSWORD changed |") {
		t.Errorf("plan -o markdown exited %d without the reason:\n%s%s", md.code, md.stdout, md.stderr)
	}

	load := targetstest.StartLoad(f.addr(), 3, 5*time.Millisecond)
	res := molt("apply", "--repo", f.repo, "--log-level", "debug")
	bodies := load.Finish(t)
	if res.code != 0 || !strings.Contains(res.stdout, "provisioned 2, retired 2") {
		t.Fatalf("apply exited %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
	if bodies["hello from v1"] == 0 || len(bodies) != 1 {
		t.Errorf("answers through the router during the rollout: %v, want only \"hello from v1\"", bodies)
	}
	newGen, apiAfter := secretGenerations(f)
	if len(newGen) != 1 || !strings.HasPrefix(newGen[0], m[2]) {
		t.Errorf("web runs generations %v, want %s", newGen, m[2])
	}
	if strings.Join(apiAfter, " ") != strings.Join(apiIDs, " ") {
		t.Errorf("api's instances %v, were %v: the rotation touched it", apiAfter, apiIDs)
	}
	secretWantEnv(t, f, second)
	if p := molt("plan", "--repo", f.repo); p.code != 0 {
		t.Errorf("after the rollout, plan exited %d:\n%s", p.code, p.stdout)
	}

	// A rotation whose new generation fails its health check is rolled
	// back like any bad change: the serving generation keeps serving.
	secretWrite(t, failFile, "1\n")
	if p := molt("plan", "--repo", f.repo); p.code != 2 || !strings.Contains(p.stdout, "why: secret FAIL_HEALTH changed\n") {
		t.Errorf("plan exited %d without the reason:\n%s", p.code, p.stdout)
	}
	load = targetstest.StartLoad(f.addr(), 3, 5*time.Millisecond)
	res = molt("apply", "--repo", f.repo, "--log-level", "debug")
	bodies = load.Finish(t)
	if res.code != 1 || !strings.Contains(res.stdout, "rolled back") {
		t.Errorf("apply of an unhealthy rotation exited %d, want 1 and a rollback:\n%s%s", res.code, res.stdout, res.stderr)
	}
	if len(bodies) != 1 || bodies["hello from v1"] == 0 {
		t.Errorf("answers through the router: %v", bodies)
	}
	if gens, _ := secretGenerations(f); len(gens) != 1 || gens[0] != newGen[0] {
		t.Errorf("web runs generations %v after the rollback, want %s", gens, newGen[0][:8])
	}
	secretWantEnv(t, f, second)

	if st, err := os.Stat(filepath.Join(f.state, "secret-key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secret-key: %v (want mode 0600)", err)
	}
	for _, v := range []string{first, second} {
		for _, out := range printed {
			if strings.Contains(out, v) {
				t.Errorf("molt printed the secret %q:\n%s", v, out)
			}
		}
		secretNotUnder(t, f.state, v)
	}
}

// TestSecretServeReportsNoValue: molt serve with GitHub reporting. A pull
// request that points the secret at another file (other content) gets a
// plan comment saying "secret DB_PASSWORD changed"; merged, it deploys and
// the instances get the new value. No value appears in any comment, status
// or pull request on GitHub, in serve's debug log, or under the state
// directory.
func TestSecretServeReportsNoValue(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	app := "127.0.0.1:" + port
	hello := targetstest.Hello(t)
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	valueA, valueB := "pw-a-"+secretToken(), "pw-b-"+secretToken()
	secretWrite(t, fileA, valueA)
	secretWrite(t, fileB, valueB)
	source := func(file string) string {
		return fmt.Sprintf(`services: web: {
	replicas: 2
	process: command: [%q]
	env: VERSION: "v1"
	secretEnv: DB_PASSWORD: file: %q
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "rolling", minHealthyFor: "200ms", progressDeadline: "30s"}
}
`, hello, file, app)
	}
	repo := gittest.NewRepo(t)
	root := t.TempDir()
	repo.WriteFile("fleet.cue", source(fileA))
	base := repo.Commit("v1")
	repo.Publish(root, "fleet.git")
	gitSrv := gittest.ServeHTTP(t, root)
	gh := githubtest.Start(t, githubtest.Options{Owner: "acme", Repo: "fleet", Token: "ghs_token_for_tests"})
	gh.PutCommit(base, "v1", githubtest.TreeSHA("v1"))
	gh.SetRef("heads/main", base)
	state := stateDir(t)
	tokenFile := filepath.Join(t.TempDir(), "gh-token")
	secretWrite(t, tokenFile, "ghs_token_for_tests\n")
	s := startServe(t, gitSrv.RepoURL("fleet.git"), state, "@every 1s",
		"--github-repo", "acme/fleet", "--github-api-url", gh.URL, "--github-token-file", tokenFile)
	answers(t, app, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "deploy success status", func() bool { return hasStatus(gh, base, "molt/deploy", "success") })
	secretGetEnv(t, app, valueA)

	// A pull request reads the secret from another file.
	repo.Git("checkout", "-q", "-b", "rotate")
	repo.WriteFile("fleet.cue", source(fileB))
	head := repo.Commit("read the password from b")
	gh.PutCommit(head, "read the password from b", githubtest.TreeSHA("b"), base)
	repo.Push()
	pr := gh.AddPull(githubtest.PullSeed{Title: "rotate", Head: "rotate", Base: "main", HeadSHA: head, Commits: []string{head}})
	if code := s.sendHook(t, "pull_request", pullRequestPayload(t, "opened", pr, head, "rotate")); code != http.StatusAccepted {
		t.Fatalf("pull_request delivery: %d", code)
	}
	targetstest.Eventually(t, 20*time.Second, "the plan comment", func() bool {
		c := gh.Comments(pr)
		return len(c) == 1 && strings.Contains(c[0].Body, "secret DB_PASSWORD changed")
	})
	targetstest.Eventually(t, 10*time.Second, "a successful plan status", func() bool { return hasStatus(gh, head, "molt/plan", "success") })
	secretGetEnv(t, app, valueA) // a plan changes nothing

	// Merged: deployed, the instances get the new value.
	repo.Git("checkout", "-q", "main")
	repo.Git("merge", "-q", "--ff-only", "rotate")
	gh.SetRef("heads/main", head)
	repo.Push()
	s.sendHook(t, "push", pushPayload(t, head))
	targetstest.Eventually(t, 40*time.Second, "deploy success status of the merge", func() bool { return hasStatus(gh, head, "molt/deploy", "success") })
	targetstest.Eventually(t, 10*time.Second, "the outcome comment", func() bool { return len(gh.Comments(pr)) == 2 })
	secretGetEnv(t, app, valueB)

	var sent []string
	for _, c := range gh.Comments(pr) {
		sent = append(sent, c.Body)
	}
	for _, sha := range []string{base, head} {
		for _, st := range gh.Statuses(sha) {
			sent = append(sent, st.Description, st.TargetURL)
		}
	}
	for _, p := range gh.Pulls() {
		sent = append(sent, p.Title, p.Body)
	}
	for _, r := range gh.Requests() {
		sent = append(sent, r.Path, r.Query)
	}
	for _, v := range []string{valueA, valueB} {
		for _, text := range sent {
			if strings.Contains(text, v) {
				t.Errorf("GitHub got the secret %q: %s", v, text)
			}
		}
		if strings.Contains(s.logs.String(), v) {
			t.Errorf("serve logged the secret %q", v)
		}
		secretNotUnder(t, state, v)
	}
}

// secretGenerations returns the generations of web's running instances
// and the ids of api's.
func secretGenerations(f *coreFleet) (web, api []string) {
	seen := map[string]bool{}
	for _, in := range f.running() {
		switch in.Labels.Service {
		case "web":
			if !seen[in.Labels.SpecHash] {
				seen[in.Labels.SpecHash] = true
				web = append(web, in.Labels.SpecHash)
			}
		case "api":
			api = append(api, in.ID)
		}
	}
	return web, api
}

// secretWantEnv checks, through the router, that web's instances have
// DB_PASSWORD = want (a few requests, so that each instance answers).
func secretWantEnv(t *testing.T, f *coreFleet, want string) {
	t.Helper()
	for range 6 {
		got, err := f.get("/env?name=DB_PASSWORD")
		if err != nil || got != want {
			t.Fatalf("an instance has DB_PASSWORD %q (%v), want the secret", got, err)
		}
	}
}

// secretGetEnv checks, through the router at addr, that the instances
// have DB_PASSWORD = want.
func secretGetEnv(t *testing.T, addr, want string) {
	t.Helper()
	for range 6 {
		body, err := secretGet(addr, "/env?name=DB_PASSWORD")
		if err != nil || body != want {
			t.Fatalf("an instance has DB_PASSWORD %q (%v), want the secret", body, err)
		}
	}
}

func secretGet(addr, path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b.String(), fmt.Errorf("status %s", resp.Status)
	}
	return b.String(), err
}

// secretNotUnder fails t when any file under dir holds value.
func secretNotUnder(t *testing.T, dir, value string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file retired meanwhile
		}
		if !d.Type().IsRegular() {
			return nil
		}
		files++
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret %q", path, value)
		}
		return nil
	})
	if err != nil || files < 5 {
		t.Errorf("walked %d files under %s (%v)", files, dir, err)
	}
}

// secretWrite replaces path with content atomically (a new file renamed
// over it).
func secretWrite(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func secretToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
