package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// The commands of README.md's "## Docker" section, as it writes them.
// TestImage checks that the README holds each of them, word for word, and
// runs them with the names in them made unique (see recipeVars).
const (
	readmeValidate = `docker run --rm -v "$FLEET":/fleet:ro molt:latest validate --repo /fleet`
	readmeVolume   = `docker volume create molt-state`
	readmeServe    = `docker run -d --name molt --init --stop-timeout 45 -v molt-state:/var/lib/molt -v "$FLEET":/fleet:ro -v "$APPS":/apps:ro -p 127.0.0.1:7070:7070 -p 127.0.0.1:8080:8080 molt:latest serve --repo /fleet --listen 0.0.0.0:7070`
	readmeStop     = `docker stop molt`
	readmeStart    = `docker start molt`
	readmeSocket   = `docker run -d --name molt --init --stop-timeout 45 --network host --group-add "$(stat -c %g /var/run/docker.sock)" -v /var/run/docker.sock:/var/run/docker.sock -v molt-state:/var/lib/molt -v "$FLEET":/fleet:ro molt:latest serve --repo /fleet --listen 127.0.0.1:7070`
)

// TestImage builds molt's image with `make image` (FROM scratch, a static
// binary, no pull) and runs the README's recipes in it on the real
// engine: validate of a mounted repository; serve of a process fleet with
// its state in a named volume, answering /healthz on a published loopback
// port and routing to its instance through another; a clean docker stop
// (exit 0) and a start on the same volume (the lock taken again); and
// serve of docker services through the engine's socket, whose containers
// outlive molt's. It checks the image's labels, user and directories.
// Everything it creates (the image, volumes, containers) has a unique name
// and is removed when it ends.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	dockertest.Client(t) // skips without an engine, fails with MOLT_REQUIRE_DOCKER=1
	readme := readmeDocker(t)
	for _, c := range []string{readmeValidate, readmeVolume, readmeServe, readmeStop, readmeStart, readmeSocket} {
		if !readme.commands[c] {
			t.Errorf("README.md's Docker section does not hold the command the test runs:\n%s", c)
		}
	}

	start := time.Now()
	name := "molt-test-image-" + dockertest.Token(8)
	image := name + ":test"
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image, name+":latest").Run() })
	build := exec.Command("make", "-C", "../..", "image", "BIN="+t.TempDir(), "IMAGE="+name, "VERSION=test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image: %s", time.Since(start).Round(time.Millisecond))

	t.Run("Labels", func(t *testing.T) {
		rev, err := exec.Command("git", "-C", "../..", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"org.opencontainers.image.source":   "https://github.com/molt-dev/molt",
			"org.opencontainers.image.version":  "test",
			"org.opencontainers.image.revision": strings.TrimSpace(string(rev)),
			"org.opencontainers.image.title":    "molt",
		}
		for label, v := range want {
			if got := inspect(t, "image", image, fmt.Sprintf("{{index .Config.Labels %q}}", label)); got != v {
				t.Errorf("label %s = %q, want %q", label, got, v)
			}
		}
		if got := inspect(t, "image", image, "{{.Config.User}}"); got != "65532:65532" {
			t.Errorf("user %q, want 65532:65532", got)
		}
		if got := inspect(t, "image", image, "{{json .Config.Env}}"); !strings.Contains(got, `"MOLT_STATE_DIR=/var/lib/molt"`) {
			t.Errorf("environment %s, want MOLT_STATE_DIR=/var/lib/molt", got)
		}
	})

	t.Run("Directories", func(t *testing.T) {
		c := name + "-files"
		t.Cleanup(func() { exec.Command("docker", "rm", "-f", c).Run() })
		dockerCmd(t, "create", "--name", c, image)
		for path, want := range map[string]string{
			"/var/lib/molt": "drwx------ 65532:65532",
			"/tmp":          "dtrwxrwxrwx 0:0",
			"/var/lib":      "drwxr-xr-x 0:0",
		} {
			if got := fileMode(t, c, path); got != want {
				t.Errorf("%s in the image: %s, want %s", path, got, want)
			}
		}
	})

	t.Run("Version", func(t *testing.T) {
		out, err := exec.Command("docker", "run", "--rm", image, "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "molt test (") {
			t.Fatalf("molt version in the image: %v\n%s", err, out)
		}
	})

	t.Run("ValidateDirectory", func(t *testing.T) {
		dir := t.TempDir()
		good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
		for d, replicas := range map[string]string{good: "3", bad: "-1"} {
			os.Mkdir(d, 0o755)
			src := fmt.Sprintf("services: web: {\n\treplicas: %s\n\tdocker: image: \"web:v1\"\n\tports: http: 8080\n}\n", replicas)
			if err := os.WriteFile(filepath.Join(d, "fleet.cue"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		readable(t, dir)
		out, err := exec.Command("docker", "run", "--rm", "-v", good+":/fleet:ro", image, "validate", "/fleet").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `valid: fleet "default", 1 service(s), 3 instance(s)`) {
			t.Errorf("molt validate in the image: %v\n%s", err, out)
		}
		out, err = exec.Command("docker", "run", "--rm", "-v", bad+":/fleet:ro", image, "validate", "/fleet").CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "fleet.cue:2:") {
			t.Errorf("molt validate of a bad fleet in the image: exit %d\n%s", code, out)
		}
	})

	t.Run("Process", func(t *testing.T) { testImageProcess(t, image, readme.fleet) })
	t.Run("Socket", func(t *testing.T) { testImageSocket(t, image) })
	t.Logf("TestImage: %s", time.Since(start).Round(time.Millisecond))
}

// testImageProcess runs the README's recipe for a fleet of processes:
// they run in molt's container, and the router there too.
func testImageProcess(t *testing.T, image, fleet string) {
	repo := gittest.NewRepo(t)
	repo.WriteFile("fleet.cue", fleet)
	head := repo.Commit("hello")
	readable(t, repo.Dir)
	apps := t.TempDir()
	copyExecutable(t, targetstest.Hello(t), filepath.Join(apps, "hello"))
	readable(t, apps)
	serveURL, appURL := "http://127.0.0.1:"+port(t), "http://127.0.0.1:"+port(t)
	v := newRecipeVars(t, image)
	v.sub["$FLEET"] = repo.Dir
	v.sub["$APPS"] = apps
	v.sub["127.0.0.1:7070"] = strings.TrimPrefix(serveURL, "http://")
	v.sub["127.0.0.1:8080"] = strings.TrimPrefix(appURL, "http://")

	out := dockerCmd(t, v.args(t, readmeValidate)...)
	if want := fmt.Sprintf("main@sha1:%s: valid: fleet \"default\", 1 service(s), 1 instance(s)", head[:12]); !strings.Contains(out, want) {
		t.Errorf("validate --repo in the image: %q, want %q", out, want)
	}

	dockerCmd(t, v.args(t, readmeVolume)...)
	dockerCmd(t, v.args(t, readmeServe)...)
	ready := func() {
		t.Helper()
		waitHTTP(t, serveURL+"/healthz", "ok")
		waitHTTP(t, serveURL+"/readyz", head)
		waitHTTP(t, appURL+"/", "hello from")
	}
	ready()

	// A second molt on the same volume is refused: the lock is held.
	second := []string{"run", "--rm", "-v", v.volume + ":/var/lib/molt", "-v", repo.Dir + ":/fleet:ro", image, "serve", "--repo", "/fleet"}
	b, err := exec.Command("docker", second...).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(b), "in use by another molt") {
		t.Errorf("a second serve on the volume: exit %d\n%s", code, b)
	}

	stop(t, v)
	if _, err := http.Get(appURL + "/"); err == nil {
		t.Errorf("the router still answers after docker stop: it should have stopped with the container")
	}
	dockerCmd(t, v.args(t, readmeStart)...)
	ready()
}

// testImageSocket runs the README's recipe for docker services: molt
// drives the engine through its socket, on the host's network, and the
// instances' containers outlive molt's.
func testImageSocket(t *testing.T, image string) {
	if dockertest.Host() != "unix:///var/run/docker.sock" {
		t.Skipf("the recipe mounts /var/run/docker.sock; the engine is at %s", dockertest.Host())
	}
	st, err := os.Stat("/var/run/docker.sock")
	if err != nil {
		t.Fatal(err)
	}
	gid := strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Gid))
	ref := dockertest.Ref("image-socket")
	dockertest.HelloImage(t, dockertest.Client(t), ref, "v1")
	fleetName := "molt-test-image-" + dockertest.Token(4) // unique: no other fleet's containers are touched
	serveAddr, appAddr := "127.0.0.1:"+port(t), "127.0.0.1:"+port(t)
	instances := func() string {
		t.Helper()
		return dockerCmd(t, "ps", "-q", "--no-trunc", "--filter", "label=molt.fleet="+fleetName)
	}
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=molt.fleet="+fleetName).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).Run()
		}
	})

	repo := gittest.NewRepo(t)
	repo.WriteFile("fleet.cue", fmt.Sprintf(`name: %q
services: hello: {
	docker: image: %q
	ports: http: 8080
	expose: listen: %q
	health: interval: "200ms"
	stopGrace: "2s"
}
`, fleetName, ref, appAddr))
	head := repo.Commit("hello")
	readable(t, repo.Dir)
	v := newRecipeVars(t, image)
	v.sub["$FLEET"] = repo.Dir
	v.sub[`$(stat -c %g /var/run/docker.sock)`] = gid
	v.sub["127.0.0.1:7070"] = serveAddr

	dockerCmd(t, v.args(t, readmeVolume)...)
	dockerCmd(t, v.args(t, readmeSocket)...)
	waitHTTP(t, "http://"+serveAddr+"/healthz", "ok")
	waitHTTP(t, "http://"+serveAddr+"/readyz", head)
	waitHTTP(t, "http://"+appAddr+"/", "hello from")
	before := instances()
	if len(strings.Fields(before)) != 1 {
		t.Fatalf("containers of the fleet: %q, want one", before)
	}

	stop(t, v)
	if after := instances(); after != before {
		t.Errorf("after docker stop of molt, the fleet's running containers are %q, want %q (they outlive molt's container)", after, before)
	}
	dockerCmd(t, v.args(t, readmeStart)...)
	waitHTTP(t, "http://"+serveAddr+"/readyz", head)
	waitHTTP(t, "http://"+appAddr+"/", "hello from")
	if after := instances(); after != before {
		t.Errorf("after docker start of molt, the fleet's containers are %q, want the same %q (found again, not replaced)", after, before)
	}
}

// stop runs the README's docker stop and checks that serve exited 0 on
// SIGTERM (and in time: docker kills it after --stop-timeout).
func stop(t *testing.T, v *recipeVars) {
	t.Helper()
	start := time.Now()
	dockerCmd(t, v.args(t, readmeStop)...)
	t.Logf("docker stop: %s", time.Since(start).Round(time.Millisecond))
	if code := inspect(t, "container", v.container, "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("serve exited %s on docker stop, want 0", code)
	}
	if logs, _ := exec.Command("docker", "logs", v.container).CombinedOutput(); !strings.Contains(string(logs), "stopped") {
		t.Errorf("serve's log does not say it stopped:\n%s", logs)
	}
}

// dockerCmd runs docker with args, for at most two minutes, and returns its
// standard output, trimmed; it fails t when docker fails.
func dockerCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// inspect returns the field of a docker object that format names.
func inspect(t *testing.T, kind, name, format string) string {
	t.Helper()
	return dockerCmd(t, kind, "inspect", "-f", format, name)
}

// fileMode returns "MODE UID:GID" of path in a container, read with
// docker cp (the image has no shell to run ls in).
func fileMode(t *testing.T, container, path string) string {
	t.Helper()
	cmd := exec.Command("docker", "cp", container+":"+path, "-")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer io.Copy(io.Discard, out)
	hdr, err := tar.NewReader(out).Next()
	if err != nil {
		t.Fatalf("docker cp %s:%s: %v", container, path, err)
	}
	return fmt.Sprintf("%s %d:%d", hdr.FileInfo().Mode(), hdr.Uid, hdr.Gid)
}

// waitHTTP polls url until it answers 200 with a body that holds want,
// for at most a minute (the image starts in well under a second; the
// rest is room for a busy machine).
func waitHTTP(t *testing.T, url, want string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		resp, err := c.Get(url)
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s: %s", resp.Status, b)
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: no 200 with %q within a minute; last: %s", url, want, last)
		}
		<-tick.C
	}
}

// port returns a free port of 127.0.0.1.
func port(t *testing.T) string {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readable makes dir and everything in it readable by the image's user
// (t.TempDir is the test user's only).
func readable(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm() | 0o444
		if d.IsDir() || info.Mode()&0o100 != 0 {
			mode |= 0o111
		}
		return os.Chmod(path, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyExecutable copies the file src to dst with mode 0755.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// exitCode is the exit status of a command that ended with err; -1 when
// it did not run.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
