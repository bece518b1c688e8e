// Package haproxytest starts a real HAProxy for tests: a frontend on a
// loopback port per backend, each backend empty but for one disabled
// server of the user's (which molt must never touch), and the Runtime API
// on a unix socket of level admin. It never installs HAProxy: without
// one, tests skip, unless MOLT_REQUIRE_HAPROXY=1 (then they fail).
package haproxytest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// UserServer is the name of the server of the user that every backend of
// the test configuration has (disabled): molt must leave it as it is.
const UserServer = "user-keep"

// Binary returns the path of haproxy (/usr/sbin/haproxy, else haproxy on
// PATH). Without one it skips tb, or fails it when MOLT_REQUIRE_HAPROXY=1.
func Binary(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"/usr/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if os.Getenv("MOLT_REQUIRE_HAPROXY") == "1" {
		tb.Fatal("haproxy is not installed (/usr/sbin/haproxy) and MOLT_REQUIRE_HAPROXY=1: install Debian's haproxy package")
	}
	tb.Skip("haproxy is not installed (/usr/sbin/haproxy): skipping the tests against a real HAProxy (MOLT_REQUIRE_HAPROXY=1 makes this a failure)")
	return ""
}

// Config says what the test haproxy.cfg declares.
type Config struct {
	// Backends are the backends, each served by a frontend of its own.
	Backends []string
	// Extra is appended to the defaults section (retries, options).
	Extra string
}

// HAProxy is a running HAProxy of a test.
type HAProxy struct {
	tb  testing.TB
	bin string
	cfg string
	dir string
	// Socket is the Runtime API's address for molt: "unix:PATH".
	Socket string
	// Addrs are the frontends' addresses ("127.0.0.1:PORT") by backend.
	Addrs map[string]string
	cmd   *exec.Cmd
	done  chan struct{}
	log   *lockedBuffer
}

// lockedBuffer is HAProxy's output, written by exec's copying goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start writes the configuration and starts HAProxy in the foreground
// (-db); it is stopped when the test ends.
func Start(tb testing.TB, c Config) *HAProxy {
	tb.Helper()
	bin := Binary(tb)
	dir, err := os.MkdirTemp("", "hx") // short: a unix socket path is at most 107 bytes
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	h := &HAProxy{tb: tb, bin: bin, dir: dir, cfg: filepath.Join(dir, "haproxy.cfg"),
		Socket: "unix:" + filepath.Join(dir, "admin.sock"), Addrs: map[string]string{}}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    stats socket %s level admin\n    stats timeout 30s\n\n", filepath.Join(dir, "admin.sock"))
	fmt.Fprintf(&b, "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n%s\n", c.Extra)
	for _, be := range c.Backends {
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		h.Addrs[be] = "127.0.0.1:" + port
		fmt.Fprintf(&b, "frontend fe_%s\n    bind 127.0.0.1:%s\n    default_backend %s\n\n", be, port, be)
		fmt.Fprintf(&b, "backend %s\n    balance roundrobin\n    server %s 127.0.0.1:9 disabled\n\n", be, UserServer)
	}
	if err := os.WriteFile(h.cfg, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", h.cfg).CombinedOutput(); err != nil {
		tb.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	h.start()
	tb.Cleanup(h.Stop)
	return h
}

func (h *HAProxy) start() {
	h.tb.Helper()
	h.log = &lockedBuffer{}
	h.cmd = exec.Command(h.bin, "-db", "-f", h.cfg)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		h.tb.Fatalf("start haproxy: %v", err)
	}
	h.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(h.cmd, h.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.Command(context.Background(), "show info"); err == nil {
			return
		}
		select {
		case <-h.done:
			h.tb.Fatalf("haproxy exited: %s", h.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.tb.Fatalf("haproxy's socket does not answer: %s", h.log)
		}
	}
}

// Stop stops HAProxy (it forgets every dynamic server); it is idempotent.
func (h *HAProxy) Stop() {
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Kill()
	<-h.done
	h.cmd = nil
}

// Restart stops HAProxy and starts it again on the same configuration:
// the backends are empty again but for the user's server.
func (h *HAProxy) Restart() {
	h.tb.Helper()
	h.Stop()
	h.start()
}

// Command runs one Runtime API command and returns HAProxy's answer.
func (h *HAProxy) Command(ctx context.Context, command string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", strings.TrimPrefix(h.Socket, "unix:"))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// Server is one line of "show servers state".
type Server struct {
	Name  string
	Addr  string // "127.0.0.1:PORT"
	Admin string // "ready", "drain" or "maint"
}

// Servers returns the servers of backend as "show servers state" lists
// them, sorted by name.
func (h *HAProxy) Servers(tb testing.TB, backend string) []Server {
	tb.Helper()
	out, err := h.Command(context.Background(), "show servers state "+backend)
	if err != nil {
		tb.Fatalf("show servers state: %v", err)
	}
	var cols []string
	var list []Server
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "# "):
			cols = strings.Fields(line[2:])
			continue
		case line == "" || cols == nil:
			continue
		}
		f := strings.Fields(line)
		get := func(name string) string {
			if i := slices.Index(cols, name); i >= 0 && i < len(f) {
				return f[i]
			}
			return ""
		}
		s := Server{Name: get("srv_name"), Addr: get("srv_addr") + ":" + get("srv_port"), Admin: "ready"}
		var mask int
		fmt.Sscan(get("srv_admin_state"), &mask)
		switch {
		case mask&0x27 != 0: // FMAINT, IMAINT, CMAINT, RMAINT
			s.Admin = "maint"
		case mask&0x18 != 0: // FDRAIN, IDRAIN
			s.Admin = "drain"
		}
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b Server) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// Log is what HAProxy wrote so far.
func (h *HAProxy) Log() string { return h.log.String() }

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}
