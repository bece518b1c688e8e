//go:build linux

package process

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

func TestDigest(t *testing.T) {
	b, err := os.ReadFile(helloBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)

	tests := []struct {
		name   string
		digest string
		ok     bool
	}{
		{"match", digest, true},
		{"match in upper case", strings.ToUpper(digest), true},
		{"mismatch", wrong, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, t.TempDir())
			svc := helloService(nil)
			svc.Process.SHA256 = tc.digest
			inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: svc})
			if tc.ok {
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
				tgt.Retire(t.Context(), inst.ID)
				return
			}
			if !errors.Is(err, targets.ErrInvalidSpec) {
				t.Fatalf("Provision = %v, want ErrInvalidSpec", err)
			}
			if !strings.Contains(err.Error(), digest) || !strings.Contains(err.Error(), wrong) {
				t.Errorf("error %q does not name both the expected and the actual digest", err)
			}
			assertEmpty(t, tgt.dir)
		})
	}
}

// Provisions that fail leave nothing behind.
func TestProvisionFailures(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		svc     func() *schema.Service
		labels  func(l *targets.Labels)
		invalid bool
	}{
		{name: "no such executable", svc: func() *schema.Service { return command("/nonexistent/hello") }},
		{name: "not in PATH", svc: func() *schema.Service { return command("molt-no-such-command") }},
		{name: "not executable", svc: func() *schema.Service { return command(notExec) }},
		{name: "empty command", svc: func() *schema.Service { return command() }, invalid: true},
		{name: "docker service", svc: func() *schema.Service {
			return &schema.Service{Name: "web", Docker: &schema.Docker{Image: "hello"}}
		}, invalid: true},
		{name: "no fleet label", svc: func() *schema.Service { return helloService(nil) },
			labels: func(l *targets.Labels) { l.Fleet = "" }, invalid: true},
		{name: "env name with =", svc: func() *schema.Service {
			return helloService(map[string]string{"A=B": "c"})
		}, invalid: true},
		{name: "port names that collide", svc: func() *schema.Service {
			s := helloService(nil)
			s.Ports = map[string]int{"a-b": 0, "a_b": 0}
			return s
		}, invalid: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, t.TempDir())
			l := labels("hello")
			if tc.labels != nil {
				tc.labels(&l)
			}
			inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: l, Service: tc.svc()})
			if err == nil {
				tgt.Retire(t.Context(), inst.ID)
				t.Fatal("Provision succeeded")
			}
			if got := errors.Is(err, targets.ErrInvalidSpec); got != tc.invalid {
				t.Errorf("Provision = %v; ErrInvalidSpec %v, want %v", err, got, tc.invalid)
			}
			assertEmpty(t, tgt.dir)
		})
	}
}

func command(argv ...string) *schema.Service {
	return &schema.Service{Name: "cmd", Process: &schema.Process{Command: argv}}
}

// assertEmpty fails unless dir is missing or empty (hidden entries too).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

// A relative command resolves against the directory molt runs in; the
// process runs in its instance directory.
func TestRelativeCommand(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	bin := t.TempDir()
	b, err := os.ReadFile(helloBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "hello"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(bin)
	svc := helloService(map[string]string{"VERSION": "relative"})
	svc.Process.Command = []string{"./hello", "-unused-arg"}
	inst := provision(t, tgt, svc)

	rec := mustRecord(t, tgt, inst.ID)
	if want := []string{filepath.Join(bin, "hello"), "-unused-arg"}; !slices.Equal(rec.Command, want) {
		t.Errorf("recorded command %q, want %q", rec.Command, want)
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(rec.PID) + "/cwd")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(tgt.dir, inst.ID); cwd != want {
		t.Errorf("process runs in %s, want %s", cwd, want)
	}
	if got := waitGet(t, inst.Endpoints["http"], "/"); got != "hello from relative\n" {
		t.Errorf("GET / = %q", got)
	}
}

// Every named port gets a free port, in PORT_<NAME>; PORT is "http", or
// else the first name; the rest of molt's environment does not leak in.
func TestPortsAndEnv(t *testing.T) {
	t.Setenv("MOLT_TEST_LEAK", "molt's own")
	tests := []struct {
		name    string
		ports   []string
		primary string
	}{
		{"http wins", []string{"metrics-x", "admin", "http"}, "http"},
		{"first in order", []string{"web", "api"}, "api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, t.TempDir())
			svc := helloService(map[string]string{"PORT": "1", "MOLT_INSTANCE": "spoofed", "MINE": "yes"})
			svc.Ports = map[string]int{}
			for _, p := range tc.ports {
				svc.Ports[p] = 8080 // ignored by this target
			}
			inst := provision(t, tgt, svc)
			if len(inst.Endpoints) != len(tc.ports) {
				t.Fatalf("endpoints %v, want one per port %v", inst.Endpoints, tc.ports)
			}
			ep := inst.Endpoints[tc.primary] // the app listens on PORT
			env := func(name string) string {
				t.Helper()
				v, ok := httpGet(ep, "/env?name="+name)
				if !ok {
					return "<unset>"
				}
				return v
			}
			waitGet(t, ep, "/healthz")

			seen := map[string]bool{}
			for _, p := range tc.ports {
				_, port, _ := net.SplitHostPort(inst.Endpoints[p])
				if got := env(targets.PortVar(p)); got != port {
					t.Errorf("%s = %q, want %s", targets.PortVar(p), got, port)
				}
				if seen[port] || port == "8080" {
					t.Errorf("port %s of %q is not a fresh distinct port", port, p)
				}
				seen[port] = true
			}
			_, primary, _ := net.SplitHostPort(ep)
			for name, want := range map[string]string{
				"PORT":           primary,
				"MOLT_INSTANCE":  inst.ID,
				"MOLT_SERVICE":   "hello",
				"MOLT_FLEET":     "test",
				"MOLT_REVISION":  "main@sha1:abc123",
				"MINE":           "yes",
				"PATH":           os.Getenv("PATH"),
				"MOLT_TEST_LEAK": "<unset>",
			} {
				if got := env(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestPortVar(t *testing.T) {
	for name, want := range map[string]string{
		"http":      "PORT_HTTP",
		"metrics-x": "PORT_METRICS_X",
		"grpc.v2":   "PORT_GRPC_V2",
		"Admin9":    "PORT_ADMIN9",
	} {
		if got := targets.PortVar(name); got != want {
			t.Errorf("targets.PortVar(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"dir only", Options{Dir: "state/instances"}, true},
		{"host", Options{Dir: "d", Host: "127.0.0.2"}, true},
		{"ipv6 host", Options{Dir: "d", Host: "::1"}, true},
		{"no dir", Options{}, false},
		{"host name", Options{Dir: "d", Host: "localhost"}, false},
		{"artifacts", Options{Dir: "state/instances", Artifacts: "state/artifacts"}, true},
		{"artifacts in dir itself", Options{Dir: "d", Artifacts: "d/"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
