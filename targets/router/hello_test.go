package router

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// helloApp is the demo app (testdata/apps/hello) running for a test.
type helloApp struct {
	addr    string
	started time.Time // just before the process started
}

// startHello runs the demo app on a free loopback port with env (such as
// "ERROR_RATE=0.5") until the test ends, and returns once it answers.
func startHello(t *testing.T, version string, env ...string) helloApp {
	t.Helper()
	addr := freeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(targetstest.Hello(t))
	cmd.Env = append([]string{"PORT=" + port, "VERSION=" + version, "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout = t.Output()
	cmd.Stderr = t.Output()
	app := helloApp{addr: addr, started: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	hc := newHTTPClient(t)
	within(t, "hello answers on "+addr, func() bool {
		r, err := get(hc, "http://"+addr+"/healthz")
		return err == nil && r.status == http.StatusOK
	})
	return app
}

// The demo app's fault knobs, which the counts tests rely on.
func TestHelloFaults(t *testing.T) {
	hc := newHTTPClient(t)

	t.Run("ERROR_RATE", func(t *testing.T) {
		app := startHello(t, "v1", "ERROR_RATE=0.5")
		for i := range 100 {
			got := mustGet(t, hc, "http://"+app.addr+"/")
			want := http.StatusOK
			if i%2 == 1 { // every second request
				want = http.StatusInternalServerError
			}
			if got.status != want {
				t.Fatalf("request %d answered %+v, want %d", i+1, got, want)
			}
		}
		if got := mustGet(t, hc, "http://"+app.addr+"/healthz"); got.status != http.StatusOK {
			t.Errorf("healthz with ERROR_RATE answered %+v, want 200", got)
		}
	})

	t.Run("FAIL_AFTER", func(t *testing.T) {
		const after = 300 * time.Millisecond
		app := startHello(t, "v1", "FAIL_AFTER="+after.String())
		deadline := app.started.Add(after) // the process started later
		failed := false
		within(t, "hello fails after "+after.String(), func() bool {
			sent := time.Now()
			got := mustGet(t, hc, "http://"+app.addr+"/")
			switch {
			case got.status == http.StatusInternalServerError:
				failed = true
			case got.status != http.StatusOK:
				t.Fatalf("GET / answered %+v", got)
			case got.body != "hello from v1\n":
				t.Fatalf("GET / answered %q", got.body)
			}
			if failed && sent.Before(deadline) {
				t.Fatalf("GET / sent %v after start failed, before FAIL_AFTER=%v", sent.Sub(app.started), after)
			}
			return failed
		})
		for range 5 {
			if got := mustGet(t, hc, "http://"+app.addr+"/"); got.status != http.StatusInternalServerError {
				t.Fatalf("GET / after the first 500 answered %+v, want 500", got)
			}
		}
		if got := mustGet(t, hc, "http://"+app.addr+"/healthz"); got.status != http.StatusOK {
			t.Errorf("healthz after FAIL_AFTER answered %+v, want 200", got)
		}
	})

	t.Run("LATENCY", func(t *testing.T) {
		const latency = 50 * time.Millisecond
		app := startHello(t, "v1", "LATENCY="+latency.String())
		for range 3 {
			start := time.Now()
			got := mustGet(t, hc, "http://"+app.addr+"/")
			if took := time.Since(start); got.status != http.StatusOK || took < latency {
				t.Errorf("GET / answered %+v in %v, want 200 after at least %v", got, took, latency)
			}
		}
	})
}
