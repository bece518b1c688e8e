package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/targetstest"
	"github.com/rogpeppe/go-internal/testscript"
)

// withDockerCleanup runs the tests, then removes the images dockertest
// kept for the whole run and the demo app they built.
type withDockerCleanup struct{ m *testing.M }

func (w withDockerCleanup) Run() int {
	if raceEnabled {
		// Every fleet is evaluated in a child of molt, which here is this
		// test binary: under the race detector each one spends about a
		// second starting up (CUE's package initialisation, instrumented),
		// which doubled the suite. The children run a build of the same
		// source without it; the evaluation itself is raced in package
		// schema, in process.
		dir, err := os.MkdirTemp("", "molt-eval-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		exe := filepath.Join(dir, "molt")
		build := exec.Command("go", "build", "-o", exe, ".")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build molt for the evaluation children: %v\n%s", err, out)
			return 1
		}
		os.Setenv(evalExecutableEnv, exe)
	}
	code := dockertest.Main(w.m)
	targetstest.RemoveHello()
	return code
}

func TestMain(m *testing.M) {
	testscript.Main(withDockerCleanup{m}, map[string]func(){
		"molt": func() {
			ctx, stop := signalNotify()
			code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScript runs the CLI scripts in testdata/script: one txtar file per
// behaviour, named <command>_<case>.txtar. MOLT_UPDATE_SCRIPTS=1 rewrites
// their expected output.
func TestScript(t *testing.T) {
	helloBin := targetstest.Hello(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       os.Getenv("MOLT_UPDATE_SCRIPTS") == "1",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("HELLO", helloBin)
			e.Setenv("HOME", e.WorkDir)
			e.Setenv("GIT_AUTHOR_NAME", "molt test")
			e.Setenv("GIT_AUTHOR_EMAIL", "test@example.com")
			e.Setenv("GIT_COMMITTER_NAME", "molt test")
			e.Setenv("GIT_COMMITTER_EMAIL", "test@example.com")
			e.Setenv("GIT_CONFIG_NOSYSTEM", "1")
			// A short state dir: unix socket paths are limited to ~107 bytes.
			state, err := os.MkdirTemp("", "ms")
			if err != nil {
				return err
			}
			e.Setenv("STATE", state)
			e.Defer(func() {
				// Whatever a script left running goes with it.
				// "molt" is on PATH: testscript.Main put a copy of this binary there.
				_ = exec.Command("molt", "down", "--yes", "--state-dir", state).Run()
				os.RemoveAll(state)
			})
			for _, port := range []string{"PORT1", "PORT2", "PORT3"} {
				p, err := freePort()
				if err != nil {
					return err
				}
				e.Setenv(port, p)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"githttp": cmdGitHTTP,
			"httpget": cmdHTTPGet,
			"tmpl":    cmdTmpl,
		},
	})
}

// cmdGitHTTP serves the repositories under a directory with git
// http-backend for the rest of the script: githttp DIR sets $GITURL.
func cmdGitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: githttp DIR")
	}
	out, err := exec.Command("git", "--exec-path").Output()
	ts.Check(err)
	h := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + ts.MkAbs(args[0]), "GIT_HTTP_EXPORT_ALL=1"},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	ts.Defer(func() { srv.Close() })
	ts.Setenv("GITURL", "http://"+l.Addr().String())
}

// cmdHTTPGet fetches a URL and checks the body: httpget URL WANT.
// With ! it checks that the request fails.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: httpget URL [WANT]")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(args[0])
	if neg {
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				ts.Fatalf("GET %s: %s, want a failure", args[0], resp.Status)
			}
		}
		return
	}
	ts.Check(err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	ts.Check(err)
	if resp.StatusCode != http.StatusOK {
		ts.Fatalf("GET %s: %s: %s", args[0], resp.Status, body)
	}
	if len(args) == 2 && !strings.Contains(string(body), args[1]) {
		ts.Fatalf("GET %s: body %q does not contain %q", args[0], body, args[1])
	}
	fmt.Fprintf(ts.Stdout(), "%s", body)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// cmdTmpl writes SRC to DST with $VAR and ${VAR} replaced from the script's
// environment: tmpl SRC DST.
func cmdTmpl(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tmpl SRC DST")
	}
	src := ts.ReadFile(args[0])
	out := os.Expand(src, ts.Getenv)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o644))
}
