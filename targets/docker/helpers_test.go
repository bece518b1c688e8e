package docker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// env is one test's engine and hello images.
type env struct {
	api *client.Client
	ref string // molt-test-hello:<...>, variant "v1"
	id  string // its content id
}

// setup finds the engine (or skips) and builds a hello image for t.
func setup(t *testing.T) *env {
	t.Helper()
	api := dockertest.Client(t)
	ref := dockertest.Ref(t.Name())
	return &env{api: api, ref: ref, id: dockertest.HelloImage(t, api, ref, "v1")}
}

// newTarget builds a Target over opts (one engine "local" at the test
// engine when opts has none), closed when t ends.
func newTarget(t *testing.T, opts docker.Options) *docker.Target {
	t.Helper()
	if len(opts.Engines) == 0 {
		opts.Engines = []docker.Engine{{Name: "local", Host: dockertest.Host()}}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	tgt, err := docker.New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// service is a docker service of the hello app with a port "http".
func service(name, image string, env map[string]string) *schema.Service {
	return &schema.Service{
		Name:      name,
		Replicas:  1,
		Docker:    &schema.Docker{Image: image, ReadOnlyRootfs: true},
		Env:       env,
		Ports:     map[string]int{"http": 8080},
		StopGrace: 3 * time.Second,
	}
}

// spec is a spec of svc in fleet, resolved by tgt when resolved is set.
func spec(t *testing.T, tgt *docker.Target, fleet string, svc *schema.Service, resolve bool) targets.Spec {
	t.Helper()
	var extra map[string]string
	if resolve {
		var err error
		if extra, err = tgt.Resolve(t.Context(), svc); err != nil {
			t.Fatalf("Resolve: %v", err)
		}
	}
	return targets.Spec{
		Labels: targets.Labels{
			Fleet: fleet, Service: svc.Name, SpecHash: svc.SpecHash(extra),
			Revision: "main@sha1:" + dockertest.Token(20), CreatedAt: time.Now(),
		},
		Service:  svc,
		Resolved: extra,
	}
}

// provision provisions s and retires the instance when t ends.
func provision(t *testing.T, tgt targets.Target, s targets.Spec) targets.Instance {
	t.Helper()
	inst, err := tgt.Provision(t.Context(), s)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tgt.Retire(ctx, inst.ID); err != nil {
			t.Errorf("cleanup: Retire(%s): %v", inst.ID, err)
		}
	})
	return inst
}

// listFleet lists the instances of fleet.
func listFleet(t *testing.T, tgt targets.Target, fleet string) []targets.Instance {
	t.Helper()
	all, err := tgt.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []targets.Instance
	for _, in := range all {
		if in.Labels.Fleet == fleet {
			out = append(out, in)
		}
	}
	return out
}

func fleetName() string { return "dt-" + dockertest.Token(4) }

// inspect inspects the container of a docker instance id.
func inspect(t *testing.T, api *client.Client, id string) container.InspectResponse {
	t.Helper()
	res, err := api.ContainerInspect(t.Context(), dockertest.ContainerID(t, id), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return res.Container
}

// get fetches path from the http endpoint of inst.
func get(ctx context.Context, inst targets.Instance, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+inst.Endpoints["http"]+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// waitAnswer waits until inst answers GET / as the hello app of version.
func waitAnswer(t *testing.T, inst targets.Instance, version string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, err := get(t.Context(), inst, "/")
		if code == http.StatusOK && body == "hello from "+version+"\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered as %s; last: %d %q %v", inst.ID, version, code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getEnv asks the hello app of inst for a variable.
func getEnv(t *testing.T, inst targets.Instance, name string) string {
	t.Helper()
	code, body, err := get(t.Context(), inst, "/env?name="+name)
	if err != nil || code != http.StatusOK {
		t.Errorf("GET /env?name=%s: %d %q %v", name, code, body, err)
	}
	return body
}
