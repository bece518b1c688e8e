// Package dockertest helps tests that need a real Docker Engine: it finds
// the engine (skipping the test when none answers, failing it when
// MOLT_REQUIRE_DOCKER=1), builds the hello demo app into images FROM
// scratch (no registry, no pull), and does to containers what an operator
// would behind molt's back (kill, copy a file in, run a container without
// molt's labels). Everything it creates is removed with t.Cleanup.
//
// It is for tests only, and deliberately does not fake an engine.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets/docker"
)

// RequireEnv is the variable that turns "no Docker engine" from a skip
// into a failure.
const RequireEnv = "MOLT_REQUIRE_DOCKER"

// Host is the address of the engine tests use: DOCKER_HOST, or
// docker.DefaultHost.
func Host() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return docker.DefaultHost
}

// Client returns an API client of the test engine, closed when t ends. It
// skips t when the engine does not answer, and fails t instead when
// MOLT_REQUIRE_DOCKER=1.
func Client(t testing.TB) *client.Client {
	t.Helper()
	api, err := client.New(client.WithHost(Host()))
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err != nil {
			api.Close()
		}
	}
	if err != nil {
		msg := fmt.Sprintf("no Docker engine answers at %s (set DOCKER_HOST, or %s=1 to make this a failure): %v", Host(), RequireEnv, err)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { api.Close() })
	return api
}

// Ref returns a fresh image reference for the hello app, unique to this
// call: "molt-test-hello:<name>-<random>", name cut to what a tag holds.
func Ref(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, name)
	return "molt-test-hello:t" + name[:min(len(name), 40)] + "-" + token(4)
}

// Token returns n random bytes in hex.
func Token(n int) string { return token(n) }

// HelloImage builds the hello demo app into an image FROM scratch with
// testdata/apps/hello/Dockerfile, tags it ref, and returns its content id.
// Builds of the same variant give the same image (the engine's build
// cache); different variants give different images (a label differs).
// The tag is removed when t ends. The first build of each variant is also
// tagged molt-test-hello:keep-..., so that later builds hit the cache (an
// uncached build takes seconds); Main removes those tags.
func HelloImage(t testing.TB, api *client.Client, ref, variant string) string {
	t.Helper()
	id := build(t, api, ref, variant)
	keepMu.Lock()
	defer keepMu.Unlock()
	if _, ok := keepers[variant]; !ok {
		keep := "molt-test-hello:keep-" + keepRun + "-" + variant
		if _, err := api.ImageTag(t.Context(), client.ImageTagOptions{Source: id, Target: keep}); err == nil {
			keepers[variant] = keep
		}
	}
	return id
}

var (
	keepMu  sync.Mutex
	keepers = map[string]string{} // by variant
	keepRun = token(4)
)

// Main runs the tests of m and then removes the images HelloImage kept
// for the whole run. Call it from TestMain: os.Exit(dockertest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	keepMu.Lock()
	defer keepMu.Unlock()
	if len(keepers) == 0 {
		return code
	}
	api, err := client.New(client.WithHost(Host()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: %v\n", err)
		return code
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ref := range keepers {
		if _, err := api.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
			fmt.Fprintf(os.Stderr, "dockertest: remove image %s: %v\n", ref, err)
		}
	}
	return code
}

// build builds variant of the hello image as ref and returns its id.
func build(t testing.TB, api *client.Client, ref, variant string) string {
	t.Helper()
	bin, dockerfile := helloFiles(t)
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"hello", 0o755, bin}} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := api.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{
		Tags:        []string{ref},
		Dockerfile:  "Dockerfile",
		Labels:      map[string]string{"molt.test.variant": variant},
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	err = drain(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	t.Cleanup(func() { RemoveImage(t, api, ref) })
	img, err := api.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	return img.ID
}

// Tag points ref at the image src (docker tag), and removes the tag when
// t ends.
func Tag(t testing.TB, api *client.Client, src, ref string) {
	t.Helper()
	if _, err := api.ImageTag(t.Context(), client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatalf("tag %s as %s: %v", src, ref, err)
	}
	t.Cleanup(func() { RemoveImage(t, api, ref) })
}

// RemoveImage removes the tag ref, and the image when it was the last tag
// and no container uses it; a failure is logged, not fatal.
func RemoveImage(t testing.TB, api *client.Client, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := api.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
		t.Logf("cleanup: remove image %s: %v", ref, err)
	}
}

// drain reads a build's JSON message stream to its end and returns the
// error it reports, if any.
func drain(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
	}
}

var (
	helloOnce             sync.Once
	helloBin, helloDocker []byte
	helloErr              error
)

// helloFiles builds the hello app (static, CGO_ENABLED=0) once per test
// binary and returns it with its Dockerfile.
func helloFiles(t testing.TB) (bin, dockerfile []byte) {
	t.Helper()
	helloOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "apps", "hello")
		dir, err := os.MkdirTemp("", "molt-hello-image")
		if err != nil {
			helloErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "hello")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			helloErr = fmt.Errorf("build hello: %v\n%s", err, b)
			return
		}
		if helloBin, helloErr = os.ReadFile(out); helloErr != nil {
			return
		}
		helloDocker, helloErr = os.ReadFile(filepath.Join(src, "Dockerfile"))
	})
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return helloBin, helloDocker
}

// ContainerID returns the container part of an instance id.
func ContainerID(t testing.TB, instanceID string) string {
	t.Helper()
	for i := len(instanceID) - 1; i >= 0; i-- {
		if instanceID[i] == '/' {
			return instanceID[i+1:]
		}
	}
	t.Fatalf("%q is not a docker instance id", instanceID)
	return ""
}

// Kill sends SIGKILL to a container, as docker kill does.
func Kill(t testing.TB, api *client.Client, containerID string) {
	t.Helper()
	if _, err := api.ContainerKill(t.Context(), containerID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("kill %s: %v", containerID, err)
	}
}

// CopyFile writes a file of the given content at path in a container, as
// docker cp does. It returns the engine's error (a read-only container
// refuses).
func CopyFile(ctx context.Context, api *client.Client, containerID, path, content string) error {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(path), Mode: 0o644, Size: int64(len(content))}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, content); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	_, err := api.CopyToContainer(ctx, containerID, client.CopyToContainerOptions{
		DestinationPath: filepath.Dir(path),
		Content:         &b,
	})
	return err
}

// Foreign runs a container of image without molt's labels, publishing
// 8080 on 127.0.0.1, as an operator might next to molt. It returns the
// container's full id and a check that fails t if the container has been
// stopped, restarted or removed since. The container is removed when t
// ends.
func Foreign(t testing.TB, api *client.Client, image string) (id string, untouched func(t testing.TB)) {
	t.Helper()
	ctx := t.Context()
	port := network.MustParsePort("8080/tcp")
	created, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: "molt-test-foreign-" + token(4),
		Config: &container.Config{
			Image:  image,
			Env:    []string{"VERSION=foreign"},
			Labels: map[string]string{"owner": "not molt"},
		},
		HostConfig: &container.HostConfig{
			PortBindings: network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
		},
	})
	if err != nil {
		t.Fatalf("create foreign container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := api.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			t.Logf("cleanup: remove foreign container: %v", err)
		}
	})
	if _, err := api.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start foreign container: %v", err)
	}
	before, err := api.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect foreign container: %v", err)
	}
	return created.ID, func(t testing.TB) {
		t.Helper()
		after, err := api.ContainerInspect(context.Background(), created.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Errorf("foreign container %s: %v", created.ID[:12], err)
			return
		}
		st := after.Container.State
		if !st.Running || st.StartedAt != before.Container.State.StartedAt {
			t.Errorf("foreign container %s was touched: running %v, started %s (was %s)",
				created.ID[:12], st.Running, st.StartedAt, before.Container.State.StartedAt)
		}
	}
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func token(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// shortTempDir is a temporary directory with a path short enough for a
// unix socket, removed when t ends.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mdt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Unreachable returns the address of a unix socket where nothing listens.
func Unreachable(t testing.TB) string {
	t.Helper()
	return "unix://" + filepath.Join(shortTempDir(t), "nothing.sock")
}
