//go:build linux

package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/targetstest"
)

// helloBin is the hello demo app, built once for the test binary.
var helloBin string

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildDir); dir != "" {
		os.Exit(crashChild(dir)) // see crashProvision
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "molt-process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	helloBin = filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", helloBin, ".")
	build.Dir = filepath.Join("..", "..", "testdata", "apps", "hello")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hello:", err)
		return 1
	}
	return m.Run()
}

func TestConformance(t *testing.T) {
	targetstest.Run(t, newHarness)
}

func newHarness(t *testing.T) targetstest.Harness {
	state := t.TempDir()
	tgt := newTarget(t, state)
	return targetstest.Harness{
		Target:  tgt,
		Service: func(t *testing.T, env map[string]string) *schema.Service { return helloService(env) },
		Kill: func(t *testing.T, inst targets.Instance) {
			rec := mustRecord(t, tgt, inst.ID)
			if err := syscall.Kill(-rec.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
		},
		Reopen: func(t *testing.T) targets.Target { return newTarget(t, state) },
		Foreign: map[string]func(t *testing.T) (string, func(t *testing.T)){
			"directory without instance.json": func(t *testing.T) (string, func(t *testing.T)) {
				return strayFile(t, tgt.dir, "stray-dir", "notes.txt", "not molt's")
			},
			"corrupt instance.json": func(t *testing.T) (string, func(t *testing.T)) {
				return strayFile(t, tgt.dir, "hello-12345678-abcdef", recordFile, "{not json")
			},
			"process not started by molt": func(t *testing.T) (string, func(t *testing.T)) {
				sleep := startSleep(t)
				return strconv.Itoa(sleep.Process.Pid), func(t *testing.T) {
					t.Helper()
					if !alive(sleep.Process.Pid) {
						t.Errorf("the foreign process %d was stopped", sleep.Process.Pid)
					}
				}
			},
		},
	}
}

// newTarget returns a Target over state/instances, closed when t ends.
func newTarget(t *testing.T, state string) *Target {
	t.Helper()
	tgt, err := New(Options{
		Dir:    filepath.Join(state, "instances"),
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

func helloService(env map[string]string) *schema.Service {
	return &schema.Service{
		Name:      "hello",
		Replicas:  1,
		Process:   &schema.Process{Command: []string{helloBin}},
		Env:       env,
		Ports:     map[string]int{"http": 0},
		StopGrace: 5 * time.Second,
	}
}

func labels(service string) targets.Labels {
	return targets.Labels{
		Fleet:     "test",
		Service:   service,
		SpecHash:  "0123456789abcdef",
		Revision:  "main@sha1:abc123",
		CreatedAt: time.Now(),
	}
}

// provision provisions svc on tgt and retires it when the test ends.
func provision(t *testing.T, tgt *Target, svc *schema.Service) targets.Instance {
	t.Helper()
	inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels(svc.Name), Service: svc})
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		if err := tgt.Retire(context.Background(), inst.ID); err != nil {
			t.Errorf("cleanup: Retire: %v", err)
		}
	})
	return inst
}

func mustRecord(t *testing.T, tgt *Target, id string) *record {
	t.Helper()
	rec, err := readRecord(filepath.Join(tgt.dir, id))
	if err != nil {
		t.Fatalf("read record of %s: %v", id, err)
	}
	return rec
}

// strayFile makes dir/name/file holding content, and returns name and a
// check that all three are unchanged.
func strayFile(t *testing.T, dir, name, file, content string) (string, func(t *testing.T)) {
	t.Helper()
	p := filepath.Join(dir, name, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return name, func(t *testing.T) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Errorf("%s was touched: %q, %v", p, b, err)
		}
	}
}

// startSleep starts "sleep 60" in a session of its own (so that a signal
// to its process group would reach it) and kills it when the test ends.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// alive reports whether pid is a live (not exited) process.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && !st.exited()
}

// eventually polls cond every 20ms for up to 15 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGet fetches http://endpoint+path; ok is false on any failure.
func httpGet(endpoint, path string) (body string, ok bool) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + endpoint + path)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err == nil && resp.StatusCode == http.StatusOK
}

// waitGet polls until endpoint answers path with 200 and returns the body.
func waitGet(t *testing.T, endpoint, path string) string {
	t.Helper()
	var body string
	eventually(t, "GET http://"+endpoint+path, func() bool {
		var ok bool
		body, ok = httpGet(endpoint, path)
		return ok
	})
	return body
}
