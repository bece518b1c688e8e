package main

import (
	"bytes"
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
)

// privateHTTP serves the bare repositories under root with git
// http-backend behind basic auth that wants token as the password, on
// 127.0.0.1, and returns the base URL.
func privateHTTP(t *testing.T, root, token string) string {
	t.Helper()
	gitSrv := gittest.ServeHTTP(t, root)
	u, _ := url.Parse(gitSrv.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	guard := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "Invalid username or password.", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: guard}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// moltRun runs the molt binary with extra environment and returns its
// exit status, stdout and stderr.
func moltRun(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("molt", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestPrivateRepoHTTP: plan, apply and validate --repo read a repository
// that demands a token, from --git-token-file or MOLT_GIT_TOKEN; without
// one, or with a wrong one, the error says which credential was sent and
// what the server answered, and never the token.
func TestPrivateRepoHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const token = "ghs_privaterepotoken0123456789"
	const wrong = "ghs_wrongtoken9876543210"
	repo := newFleetRepo(t)
	u := privateHTTP(t, repo.Root, token) + "/fleet.git"
	state := stateDir(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, _, stderr := moltRun(t, []string{"MOLT_GIT_TOKEN="}, "plan", "--repo", u, "--state-dir", state)
	if code != 1 || !strings.Contains(stderr, "the server answered HTTP 401") || !strings.Contains(stderr, `"Invalid username or password."`) ||
		!strings.Contains(stderr, "no credential (give a token with --git-token-file or MOLT_GIT_TOKEN)") {
		t.Errorf("plan without a token: exit %d\n%s", code, stderr)
	}
	code, _, stderr = moltRun(t, []string{"MOLT_GIT_TOKEN=" + wrong}, "plan", "--repo", u, "--state-dir", state)
	if code != 1 || !strings.Contains(stderr, "HTTP 401") || !strings.Contains(stderr, "to the token from MOLT_GIT_TOKEN") || strings.Contains(stderr, wrong) {
		t.Errorf("plan with a wrong token: exit %d\n%s", code, stderr)
	}
	code, _, stderr = moltRun(t, []string{"MOLT_GIT_TOKEN=" + wrong}, "validate", "--repo", u, "--git-token-file", tokenFile)
	if code != 0 {
		t.Errorf("validate --repo with --git-token-file (which wins over the environment): exit %d\n%s", code, stderr)
	}

	code, stdout, stderr := moltRun(t, []string{"MOLT_GIT_TOKEN=" + token}, "plan", "--repo", u, "--state-dir", state)
	if code != 2 || !strings.Contains(stdout, "web") {
		t.Fatalf("plan with MOLT_GIT_TOKEN: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = moltRun(t, nil, "apply", "--repo", u, "--state-dir", state, "--git-token-file", tokenFile)
	if code != 0 {
		t.Fatalf("apply with --git-token-file: exit %d\n%s%s", code, stdout, stderr)
	}
	answers(t, repo.App, "hello from v1", 10*time.Second)
	code, stdout, stderr = moltRun(t, nil, "plan", "--repo", u, "--state-dir", state, "--git-token-file", tokenFile)
	if code != 0 {
		t.Errorf("plan after apply: exit %d\n%s%s", code, stdout, stderr)
	}
	assertNoSecret(t, state, token, wrong)
}

// TestPrivateRepoSSH: plan and apply read a repository over SSH with a
// key file and known_hosts; a key the server does not accept is named in
// the error.
func TestPrivateRepoSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	sshSrv := gittest.ServeSSH(t, repo.Root)
	other := gittest.ServeSSH(t, repo.Root) // its client key is not sshSrv's
	u := "ssh://git@" + sshSrv.Addr + "/fleet.git"
	state := stateDir(t)

	code, _, stderr := moltRun(t, nil, "plan", "--repo", u, "--state-dir", state, "--ssh-key-file", other.KeyFile, "--ssh-known-hosts", sshSrv.KnownHosts)
	if code != 1 || !strings.Contains(stderr, "the ssh server refused the ssh key "+other.KeyFile) {
		t.Errorf("plan with a key the server refuses: exit %d\n%s", code, stderr)
	}
	code, _, stderr = moltRun(t, nil, "plan", "--repo", u, "--state-dir", state, "--ssh-key-file", sshSrv.KeyFile)
	if code != 64 || !strings.Contains(stderr, "--ssh-known-hosts is required") {
		t.Errorf("plan without known_hosts: exit %d\n%s", code, stderr)
	}
	creds := []string{"--ssh-key-file", sshSrv.KeyFile, "--ssh-known-hosts", sshSrv.KnownHosts}
	code, stdout, stderr := moltRun(t, nil, append([]string{"plan", "--repo", u, "--state-dir", state}, creds...)...)
	if code != 2 {
		t.Fatalf("plan over ssh: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = moltRun(t, nil, append([]string{"apply", "--repo", u, "--state-dir", state}, creds...)...)
	if code != 0 {
		t.Fatalf("apply over ssh: exit %d\n%s%s", code, stdout, stderr)
	}
	answers(t, repo.App, "hello from v1", 10*time.Second)
	code, _, stderr = moltRun(t, nil, append([]string{"validate", "--repo", u}, creds...)...)
	if code != 0 {
		t.Errorf("validate --repo over ssh: exit %d\n%s", code, stderr)
	}
	if key, _ := os.ReadFile(sshSrv.KeyFile); len(key) > 80 {
		assertNoSecret(t, state, string(key[40:80]))
	}
}

// assertNoSecret fails when a file under dir holds one of the secrets.
func assertNoSecret(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a secret is written in %s", p)
			}
		}
		return nil
	})
}
