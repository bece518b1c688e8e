package targetstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	helloOnce sync.Once
	helloPath string
	helloErr  error
)

// Hello returns the path of the demo app (testdata/apps/hello), built once
// per test binary, statically (CGO_ENABLED=0). Call RemoveHello from
// TestMain after the tests to delete it.
func Hello(tb testing.TB) string {
	tb.Helper()
	helloOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			helloErr = fmt.Errorf("find the module: %w", err)
			return
		}
		src := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "testdata", "apps", "hello")
		dir, err := os.MkdirTemp("", "molt-hello-")
		if err != nil {
			helloErr = err
			return
		}
		path := filepath.Join(dir, "hello")
		build := exec.Command("go", "build", "-o", path, ".")
		build.Dir = src
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			helloErr = fmt.Errorf("build hello: %v\n%s", err, out)
			return
		}
		helloPath = path
	})
	if helloErr != nil {
		tb.Fatal(helloErr)
	}
	return helloPath
}

// RemoveHello deletes what Hello built (nothing when it built nothing).
func RemoveHello() {
	if helloPath != "" {
		os.RemoveAll(filepath.Dir(helloPath))
	}
}

// Eventually calls cond every 20ms until it holds, and fails tb with what
// it waited for when it does not hold within d.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
