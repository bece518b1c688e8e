package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// PodmanRequireEnv is the variable that turns "no podman" from a skip into
// a failure.
const PodmanRequireEnv = "MOLT_REQUIRE_PODMAN"

// podmanStartTimeout bounds the wait for a new Podman service to answer.
const podmanStartTimeout = 30 * time.Second

// Podman is a Podman API service (podman system service) that one test
// started, on a unix socket and with storage of its own.
type Podman struct {
	// Host is the service's address, as a docker.Engine's Host spells it:
	// unix:///tmp/.../podman.sock.
	Host string
	// API is a client of the service's Docker-compatible API, its version
	// negotiated.
	API *client.Client

	env []string // CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, for the CLI
}

// podmanConf is the containers.conf of a test's service: runc, because
// crun refuses cgroups in hybrid mode; fixed RLIMIT_NOFILE and NPROC,
// because Podman running as root otherwise raises them for every
// container, which fails without CAP_SYS_RESOURCE (in a container, say);
// cgroupfs and journal-free events and logs, so that nothing needs
// systemd; file locks in its own directory, not the shared memory segment
// of all of root's Podman on the host; and its state under the test's
// directory. Conmon passes the configuration on to the "podman container
// cleanup" it runs when a container exits, which otherwise reads the
// host's: that command gets the storage and directories as flags, but not
// the rest (with a static_dir of its own, for one, the cleanup finds no
// container, and a kill through the API waits 20 seconds for it).
const podmanConf = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "%[1]s/tmp"
volume_path = "%[1]s/volumes"
conmon_env_vars = [
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "CONTAINERS_CONF=%[1]s/containers.conf",
  "CONTAINERS_STORAGE_CONF=%[1]s/storage.conf",
]
`

// podmanStorageConf is the storage.conf of a test's service: vfs, which
// mounts nothing (so the directory can always be removed, and it works on
// any file system, overlayfs included).
const podmanStorageConf = `[storage]
driver = "vfs"
graphroot = "%[1]s/root"
runroot = "%[1]s/run"
`

// StartPodman starts a Podman API service for t and waits, at most 30
// seconds, until it answers /_ping. It skips t when podman is not
// installed, and fails t instead when MOLT_REQUIRE_PODMAN=1.
//
// The service has its own containers.conf (see podmanConf), storage and
// state under a temporary directory; it shares only the host's network
// (Podman's default network, iptables). When t ends, every container and
// image of the service is removed, the service is stopped (SIGTERM, then
// SIGKILL after 10 seconds) and its directory removed.
func StartPodman(t testing.TB) *Podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		msg := fmt.Sprintf("podman is not installed (set %s=1 to make this a failure): %v", PodmanRequireEnv, err)
		if os.Getenv(PodmanRequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := shortTempDir(t) // unix socket paths are limited
	write := func(name, format string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, fmt.Appendf(nil, format, dir), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p := &Podman{
		Host: "unix://" + filepath.Join(dir, "podman.sock"),
		env: []string{
			"CONTAINERS_CONF=" + write("containers.conf", podmanConf),
			"CONTAINERS_STORAGE_CONF=" + write("storage.conf", podmanStorageConf),
		},
	}
	logPath := filepath.Join(dir, "service.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, "system", "service", "--time=0", p.Host)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start podman system service: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	serviceLog := func() string {
		b, _ := os.ReadFile(logPath)
		return strings.TrimSpace(string(b))
	}
	// Registered before the wait, so that a service that never answers is
	// stopped too; it runs after the cleanups of what the test makes with
	// the service, which are registered later.
	t.Cleanup(func() {
		if p.API != nil {
			p.removeAll(t)
			p.API.Close()
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Logf("cleanup: podman service did not stop on SIGTERM; killing it")
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("podman service log:\n%s", serviceLog())
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: remove the podman service's directory: %v", err)
		}
	})

	api, err := client.New(client.WithHost(p.Host))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), podmanStartTimeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = api.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		pcancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			api.Close()
			t.Fatalf("podman system service exited before answering: %v\n%s", cmd.ProcessState, serviceLog())
		case <-ctx.Done():
			api.Close()
			t.Fatalf("podman system service did not answer at %s within %s: %v\n%s", p.Host, podmanStartTimeout, err, serviceLog())
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.API = api
	return p
}

// HelloImage builds the hello demo app into an image of the service, as
// the package's HelloImage does for the Docker engine, tags it ref and
// returns its content id. The tag is removed when t ends (and the
// service's storage with it, when the service stops).
func (p *Podman) HelloImage(t testing.TB, ref, variant string) string {
	t.Helper()
	return build(t, p.API, ref, variant)
}

// removeAll removes every container (running ones too) and every image of
// the service, with the podman CLI over the same storage. A failure is
// reported, not fatal.
func (p *Podman) removeAll(t testing.TB) {
	for _, args := range [][]string{
		{"rm", "--all", "--force", "--time", "0"},
		{"rmi", "--all", "--force"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "podman", args...)
		cmd.Env = append(os.Environ(), p.env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Errorf("cleanup: podman %s: %v\n%s", strings.Join(args, " "), err, out.Bytes())
		}
	}
}
