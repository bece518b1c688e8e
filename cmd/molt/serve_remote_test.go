package main

import (
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestServeGitDaemon follows a branch served by `git daemon` (git://).
func TestServeGitDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	root, app := repo.Root, repo.App

	daemonPort, _ := freePort()
	daemon := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+root,
		"--listen=127.0.0.1", "--port="+daemonPort, root)
	daemon.Env = gittest.Env()
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait() })
	targetstest.Eventually(t, 10*time.Second, "git daemon", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+daemonPort)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	state := stateDir(t)
	startServe(t, "git://127.0.0.1:"+daemonPort+"/fleet.git", state, "@every 1s")
	answers(t, app, "hello from v1", 30*time.Second)
	repo.WriteFile("fleet.cue", repo.source("v2"))
	repo.Commit("v2")
	repo.Push()
	answers(t, app, "hello from v2", 30*time.Second)
	repo.Git("revert", "--no-edit", "HEAD")
	repo.Push()
	answers(t, app, "hello from v1", 30*time.Second)
}

// TestServePrivateHTTPS reads a repository that demands a token, and never
// writes the token to its output or its state directory.
func TestServePrivateHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const token = "ghs_molttesttoken0123456789"
	repo := newFleetRepo(t)
	root, app := repo.Root, repo.App
	base := privateHTTP(t, root, token)

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := stateDir(t)
	s := startServe(t, base+"/fleet.git", state, "@every 1s", "--git-token-file", tokenFile)
	answers(t, app, "hello from v1", 30*time.Second)

	if strings.Contains(s.logs.String(), token) {
		t.Error("the token appears in molt's output")
	}
	filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), token) {
			t.Errorf("the token is written in %s", p)
		}
		return nil
	})

	// Without the token, the fetch is refused and the error says so, without a secret.
	state2 := stateDir(t)
	s2 := startServe(t, base+"/fleet.git", state2, "@every 1s")
	targetstest.Eventually(t, 10*time.Second, "a refused fetch", func() bool { return s2.metric("molt_fetch_errors_total") > 0 })
	if !strings.Contains(strings.ToLower(s2.logs.String()), "auth") {
		t.Errorf("the refusal is not explained in the log:\n%s", s2.logs.String())
	}
}

// TestServeSSH follows a branch over SSH with a key file, checking the
// server's host key against known_hosts; a host key that does not match
// is refused and the fleet stays as it is.
func TestServeSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	root, app := repo.Root, repo.App
	sshSrv := gittest.ServeSSH(t, root)
	url := "ssh://git@" + sshSrv.Addr + "/fleet.git"

	state := stateDir(t)
	s := startServe(t, url, state, "@every 1s", "--ssh-key-file", sshSrv.KeyFile, "--ssh-known-hosts", sshSrv.KnownHosts)
	answers(t, app, "hello from v1", 30*time.Second)
	repo.WriteFile("fleet.cue", repo.source("v2"))
	repo.Commit("v2")
	repo.Push()
	answers(t, app, "hello from v2", 30*time.Second)
	if key, _ := os.ReadFile(sshSrv.KeyFile); strings.Contains(s.logs.String(), string(key[40:80])) {
		t.Error("the private key appears in molt's output")
	}

	// known_hosts naming another key for this host: refused.
	other := gittest.ServeSSH(t, root)
	host := strings.SplitN(other.Addr, ":", 2)
	wrong, _ := os.ReadFile(other.KnownHosts)
	badKnown := filepath.Join(t.TempDir(), "known_hosts")
	port := strings.SplitN(sshSrv.Addr, ":", 2)[1]
	line := strings.Replace(string(wrong), "]:"+host[1], "]:"+port, 1)
	if err := os.WriteFile(badKnown, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	state2 := stateDir(t)
	s2 := startServe(t, url, state2, "@every 1s", "--ssh-key-file", sshSrv.KeyFile, "--ssh-known-hosts", badKnown)
	targetstest.Eventually(t, 10*time.Second, "a refused host key", func() bool { return s2.metric("molt_fetch_errors_total") > 0 })
	if !strings.Contains(s2.logs.String(), "key") {
		t.Errorf("the refusal does not say why:\n%s", s2.logs.String())
	}

	// Without known_hosts molt refuses to start: host keys are always checked.
	out, err := exec.Command("molt", "serve", "--repo", url, "--state-dir", stateDir(t), "--ssh-key-file", sshSrv.KeyFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--ssh-known-hosts is required") {
		t.Errorf("serve without known_hosts: %v\n%s", err, out)
	}
}
