package dockertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TLSEngine is a second Docker Engine that a test starts on this machine:
// its own dockerd with its own data root, exec root, pid file and bridge,
// listening on loopback TCP with TLS (a CA, a server certificate for
// 127.0.0.1 and a client certificate, all made by StartTLSEngine), as an
// engine on another host would. Its published ports are on 127.0.0.1,
// its host-ip.
//
// Kill stops it the way a crash or a lost host does (SIGKILL: it stops
// answering, and its port proxies die with it); Start brings it back.
// Everything goes when the test ends: its containers and images, the
// daemon, its bridge, its mounts and its directory.
type TLSEngine struct {
	// Host is tcp://127.0.0.1:PORT.
	Host string
	// CA, Cert and Key are the client's PEM files.
	CA, Cert, Key string
	// API is a client of the engine (TLS), closed when the test ends.
	API *client.Client

	dir, bridge string
	args        []string
	cmd         *exec.Cmd
	exited      chan struct{}
}

// startTimeout bounds a start of the engine (until it answers).
const startTimeout = 60 * time.Second

// StartTLSEngine starts a TLS engine. It skips t when dockerd cannot be
// started here (no dockerd, not root, no bridge), and fails it instead
// with MOLT_REQUIRE_DOCKER=1. base is a client of the test engine, whose
// storage driver the new engine uses.
func StartTLSEngine(t testing.TB, base *client.Client) *TLSEngine {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf("cannot start a second Docker Engine here (%s=1 makes this a failure): ", RequireEnv) + fmt.Sprintf(format, args...)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		skip("%v", err)
	}
	if os.Geteuid() != 0 {
		skip("dockerd needs root")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	info, err := base.Info(ctx, client.InfoOptions{})
	cancel()
	if err != nil {
		skip("info of the test engine: %v", err)
	}
	dir, err := os.MkdirTemp("", "mde") // short: containerd's sockets live under it
	if err != nil {
		t.Fatal(err)
	}
	e := &TLSEngine{dir: dir, bridge: "moltb" + token(3)}
	t.Cleanup(func() { e.cleanup(t) })

	if err := e.makeCerts(); err != nil {
		t.Fatal(err)
	}
	// Its own bridge: --bip would collide with the test engine's docker0
	// and --bridge=none leaves nothing to publish ports from; without
	// iptables, published ports go through the engine's userland proxy.
	subnet := fmt.Sprintf("10.%d.%d", 200+randByte()%50, randByte())
	for _, args := range [][]string{
		{"link", "add", e.bridge, "type", "bridge"},
		{"addr", "add", subnet + ".1/24", "dev", e.bridge},
		{"link", "set", e.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			skip("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	conf, err := json.Marshal(map[string]any{"storage-driver": info.Info.Driver})
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "daemon.json") // not /etc/docker's, which names the test engine's data root
	if err := os.WriteFile(confFile, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	e.Host = "tcp://127.0.0.1:" + port
	e.args = []string{dockerd,
		"--config-file", confFile,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", e.Host,
		"--tlsverify",
		"--tlscacert", filepath.Join(dir, "ca.pem"),
		"--tlscert", filepath.Join(dir, "server-cert.pem"),
		"--tlskey", filepath.Join(dir, "server-key.pem"),
		"--bridge", e.bridge,
		"--iptables=false", "--ip-masq=false",
		"--log-level", "warn",
	}
	api, err := client.New(client.WithHost(e.Host), client.WithTLSClientConfig(e.CA, e.Cert, e.Key))
	if err != nil {
		t.Fatal(err)
	}
	e.API = api
	if err := e.start(t.Context()); err != nil {
		skip("%v", err)
	}
	return e
}

// Flag is the engine as --docker-engine spells it, named name, with
// host-ip 127.0.0.1 and opts appended (such as "max=3").
func (e *TLSEngine) Flag(name string, opts ...string) string {
	s := fmt.Sprintf("%s=%s,ca=%s,cert=%s,key=%s,host-ip=127.0.0.1", name, e.Host, e.CA, e.Cert, e.Key)
	for _, o := range opts {
		s += "," + o
	}
	return s
}

// Start starts the engine again after Kill, and returns once it answers.
func (e *TLSEngine) Start(t testing.TB) {
	t.Helper()
	if err := e.start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Kill kills the engine's dockerd and the containerd it runs (SIGKILL to
// their process group) and waits until dockerd is gone: from then on the
// engine does not answer, and its published ports are closed. The
// containers' own processes (under their shims) live on, as on a host
// whose engine crashed, until the engine's next start stops them.
func (e *TLSEngine) Kill(t testing.TB) {
	t.Helper()
	if e.cmd == nil {
		return
	}
	// (A containerd still alive when dockerd starts again would be taken
	// up, dying: wait for it too.)
	pid, _ := os.ReadFile(filepath.Join(e.dir, "exec", "containerd", "containerd.pid"))
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("dockerd did not exit within 30s of SIGKILL")
	}
	e.cmd = nil
	if p := strings.TrimSpace(string(pid)); p != "" {
		for deadline := time.Now().Add(30 * time.Second); ; {
			if _, err := os.Stat("/proc/" + p + "/exe"); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("containerd (pid %s) did not exit within 30s of SIGKILL", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Load copies images (by reference) from the engine of api into this
// engine, ids unchanged (docker save | docker load).
func (e *TLSEngine) Load(t testing.TB, api *client.Client, refs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	saved, err := api.ImageSave(ctx, refs)
	if err != nil {
		t.Fatalf("save %v: %v", refs, err)
	}
	defer saved.Close()
	res, err := e.API.ImageLoad(ctx, saved, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("load %v into the TLS engine: %v", refs, err)
	}
	err = drain(res)
	res.Close()
	if err != nil {
		t.Fatalf("load %v into the TLS engine: %v", refs, err)
	}
}

// start starts dockerd and waits until it answers. A dockerd started
// right after a kill may give up waiting for its containerd, which is
// still reconnecting to the shims of the containers left running: it is
// tried again, a few times.
func (e *TLSEngine) start(ctx context.Context) error {
	var err error
	for range 3 {
		if err = e.startOnce(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		e.killContainerd()
	}
	return err
}

// killContainerd kills a containerd that a dockerd which gave up left.
func (e *TLSEngine) killContainerd() {
	b, _ := os.ReadFile(filepath.Join(e.dir, "exec", "containerd", "containerd.pid"))
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 1 {
		return
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.Contains(exe, "containerd") {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid)); err != nil {
			return
		}
	}
}

func (e *TLSEngine) startOnce(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(e.args[0], e.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start dockerd: %w", err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.cmd, e.exited = cmd, exited
	deadline := time.Now().Add(startTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.API.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			e.cmd = nil
			return fmt.Errorf("dockerd exited: %s", e.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd does not answer within %s: %v: %s", startTimeout, err, e.logTail())
		}
	}
}

func (e *TLSEngine) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// cleanup removes everything: a killed engine is started again first, so
// that its own restart stops the containers it left; then its containers
// and images go, the daemon stops, and the mounts, the bridge and the
// directory are removed.
func (e *TLSEngine) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if e.API != nil {
		if e.cmd == nil && e.args != nil {
			if err := e.start(ctx); err != nil {
				t.Logf("tls engine: start for cleanup: %v", err)
			}
		}
		if e.cmd != nil {
			if res, err := e.API.ContainerList(ctx, client.ContainerListOptions{All: true}); err == nil {
				for _, c := range res.Items {
					if _, err := e.API.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
						t.Errorf("tls engine: remove container %s: %v", c.ID, err)
					}
				}
			}
		}
		e.API.Close()
	}
	if e.cmd != nil {
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-e.exited
		}
	}
	// Mounts the daemon left under its directory (the data root is one).
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		var mounts []string
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], e.dir+"/") {
				mounts = append(mounts, f[1])
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				t.Errorf("tls engine: unmount %s: %v", m, err)
			}
		}
	}
	if out, err := exec.Command("ip", "link", "del", e.bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
		t.Errorf("tls engine: remove bridge %s: %v: %s", e.bridge, err, out)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		t.Errorf("tls engine: %v", err)
	}
}

// makeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, with their keys, into the engine's directory.
func (e *TLSEngine) makeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "molt test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	e.CA = filepath.Join(e.dir, "ca.pem")
	if err := writePEM(e.CA, "CERTIFICATE", caDER); err != nil {
		return err
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(e.dir, name+"-cert.pem"), "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(filepath.Join(e.dir, name+"-key.pem"), "EC PRIVATE KEY", keyDER)
	}
	if err := leaf(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return err
	}
	if err := leaf(3, "client", x509.ExtKeyUsageClientAuth, nil); err != nil {
		return err
	}
	e.Cert, e.Key = filepath.Join(e.dir, "client-cert.pem"), filepath.Join(e.dir, "client-key.pem")
	return nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

func randByte() int {
	var b [1]byte
	rand.Read(b[:])
	return int(b[0])
}
