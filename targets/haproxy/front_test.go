package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/haproxy/haproxytest"
)

var (
	_ reconciler.Front   = (*Front)(nil)
	_ reconciler.Counter = (*Front)(nil)
)

const testBackend = "be_web"

// startHAProxy starts a real HAProxy with one empty backend (and its
// frontend on loopback) and returns it with a front on its admin socket.
func startHAProxy(t *testing.T) (*haproxytest.HAProxy, *Front) {
	t.Helper()
	h := haproxytest.Start(t, haproxytest.Config{Backends: []string{testBackend}})
	return h, newFront(t, h, filepath.Join(t.TempDir(), "haproxy"))
}

func newFront(t *testing.T, h *haproxytest.HAProxy, dir string) *Front {
	t.Helper()
	f, err := New(Options{Socket: h.Socket, Dir: dir, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// app is an instance stand-in: an HTTP server answering its name, or 500
// when failing; a request to /slow waits until release is closed.
type app struct {
	name    string
	srv     *httptest.Server
	fail    atomic.Bool
	release chan struct{}
	slow    atomic.Int64
}

func newApp(t *testing.T, name string) *app {
	a := &app{name: name, release: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			a.slow.Add(1)
			<-a.release
		}
		if a.fail.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, a.name)
	}))
	t.Cleanup(func() {
		select {
		case <-a.release:
		default:
			close(a.release)
		}
		a.srv.Close()
	})
	return a
}

func (a *app) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

func (a *app) backend(gen string, weight int) targets.Backend {
	return targets.Backend{Instance: "web-" + gen + "-" + a.name, Addr: a.addr(), Generation: gen, Weight: weight}
}

func route(backends ...targets.Backend) targets.Route {
	return targets.Route{Service: "web", HAProxy: testBackend, Backends: backends, Meta: map[string]string{"molt.traffic": `{"active":"x"}`}}
}

// molt returns the molt servers of the test backend, as "name addr admin".
func molt(t *testing.T, h *haproxytest.HAProxy) []string {
	t.Helper()
	var out []string
	for _, s := range h.Servers(t, testBackend) {
		if strings.HasPrefix(s.Name, ServerPrefix) {
			out = append(out, s.Name+" "+s.Addr+" "+s.Admin)
		}
	}
	return out
}

// userServerUntouched checks the user's own server is still there, disabled.
func userServerUntouched(t *testing.T, h *haproxytest.HAProxy) {
	t.Helper()
	for _, s := range h.Servers(t, testBackend) {
		if s.Name == haproxytest.UserServer {
			if s.Admin != "maint" || s.Addr != "127.0.0.1:9" {
				t.Errorf("the user's server is %+v, want it untouched (127.0.0.1:9, maint)", s)
			}
			return
		}
	}
	t.Errorf("the user's server %s is gone", haproxytest.UserServer)
}

func get(t *testing.T, addr, path string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestSetRoutes: the backend's molt servers become the route's backends,
// ready, with their weights; Routes gives the route back as it was set
// (Meta included); requests through the frontend reach both; a new
// front on the same directory (molt restarted) reads the same routes.
func TestSetRoutes(t *testing.T) {
	h, f := startHAProxy(t)
	ctx := context.Background()
	a, b := newApp(t, "a"), newApp(t, "b")
	want := []targets.Route{route(a.backend("g1", 0), b.backend("g1", 0))}
	if err := f.SetRoutes(ctx, "fleet", want); err != nil {
		t.Fatal(err)
	}
	got, err := f.Routes(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes (-set +read):\n%s", diff)
	}
	if diff := cmp.Diff([]string{
		"molt-web-g1-a " + a.addr() + " ready",
		"molt-web-g1-b " + b.addr() + " ready",
	}, molt(t, h)); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	userServerUntouched(t, h)
	seen := map[string]int{}
	for range 10 {
		code, body, err := get(t, h.Addrs[testBackend], "/")
		if err != nil || code != 200 {
			t.Fatalf("GET through haproxy: %d %v", code, err)
		}
		seen[body]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("answers %v, want 5 each (round robin)", seen)
	}
	// Idempotent, and read back by a new front (molt restarted).
	if err := f.SetRoutes(ctx, "fleet", want); err != nil {
		t.Fatal(err)
	}
	again, err := newFront(t, h, f.opts.Dir).Routes(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("routes read by a new front (-set +read):\n%s", diff)
	}
	// Another fleet's routes are its own; it cannot take the backend.
	if rs, err := f.Routes(ctx, "other"); err != nil || len(rs) != 0 {
		t.Errorf("routes of another fleet: %v, %v; want none", rs, err)
	}
	err = f.SetRoutes(ctx, "other", []targets.Route{route(a.backend("g9", 0))})
	if !errors.Is(err, targets.ErrInvalidRoutes) {
		t.Errorf("another fleet on the same backend: %v, want ErrInvalidRoutes", err)
	}
}

// TestWeights: a canary's weights are HAProxy's weights; too large ones
// are scaled down in proportion.
func TestWeights(t *testing.T) {
	h, f := startHAProxy(t)
	ctx := context.Background()
	a, b := newApp(t, "a"), newApp(t, "b")
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(a.backend("g1", 80), b.backend("g2", 20))}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 100 {
		_, body, err := get(t, h.Addrs[testBackend], "/")
		if err != nil {
			t.Fatal(err)
		}
		seen[body]++
	}
	if seen["b"] < 15 || seen["b"] > 25 {
		t.Errorf("the canary answered %d of 100 requests, want about 20 (weights 80 and 20): %v", seen["b"], seen)
	}
	if got, want := haproxyWeights([]targets.Backend{{Weight: 600}, {Weight: 150}, {Weight: 0}}), []int{256, 64, 1}; !slices.Equal(got, want) {
		t.Errorf("weights %v, want %v", got, want)
	}
	// A weight changed behind molt's back shows as a route to set again.
	if _, err := h.Command(ctx, "set server "+testBackend+"/molt-web-g2-b weight 1"); err != nil {
		t.Fatal(err)
	}
	rs, err := f.Routes(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || cmp.Equal(rs[0].Backends, []targets.Backend{a.backend("g1", 80), b.backend("g2", 20)}) {
		t.Errorf("routes read %+v as they were set: the changed weight is not seen", rs)
	}
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(a.backend("g1", 80), b.backend("g2", 20))}); err != nil {
		t.Fatal(err)
	}
	if rs, err = f.Routes(ctx, "fleet"); err != nil || !cmp.Equal(rs[0].Backends, []targets.Backend{a.backend("g1", 80), b.backend("g2", 20)}) {
		t.Errorf("routes after setting them again: %+v, %v", rs, err)
	}
}

// TestSwitch: generation switches under load (the new servers in
// service before the old ones drain, Drain deleting them once idle) fail
// no request, and leave exactly the routed servers.
func TestSwitch(t *testing.T) {
	h, f := startHAProxy(t)
	ctx := context.Background()
	gens := [][]*app{{newApp(t, "a1"), newApp(t, "a2")}, {newApp(t, "b1"), newApp(t, "b2")}}
	backends := func(i int) []targets.Backend {
		var bs []targets.Backend
		for _, a := range gens[i%2] {
			bs = append(bs, a.backend(fmt.Sprint("g", i), 0))
		}
		return bs
	}
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(backends(0)...)}); err != nil {
		t.Fatal(err)
	}
	var total, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				code, _, err := get(t, h.Addrs[testBackend], "/")
				if err != nil || code != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint(code, " ", err))
				}
			}
		})
	}
	for i := 1; i <= 6; i++ {
		old := backends(i - 1)
		if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(backends(i)...)}); err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, b := range old {
			addrs = append(addrs, b.Addr)
		}
		if err := f.Drain(ctx, addrs); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, b := range backends(i) {
			want = append(want, serverName(b.Instance)+" "+b.Addr+" ready")
		}
		if diff := cmp.Diff(want, molt(t, h)); diff != "" {
			t.Errorf("switch %d: servers (-want +got):\n%s", i, diff)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests during 6 switches, %d failed", total.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed, first: %v", failed.Load(), total.Load(), firstErr.Load())
	}
	userServerUntouched(t, h)
}

// TestDrainWaitsForSessions: a server out of the route keeps its request
// in flight; Drain waits for it (and gives up at its deadline), then
// deletes the server; the request is answered.
func TestDrainWaitsForSessions(t *testing.T) {
	h, f := startHAProxy(t)
	ctx := context.Background()
	a, b := newApp(t, "a"), newApp(t, "b")
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(a.backend("g1", 0))}); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		code, body, err := get(t, h.Addrs[testBackend], "/slow")
		answered <- fmt.Sprint(code, " ", body, " ", err)
	}()
	for a.slow.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(b.backend("g2", 0))}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{
		"molt-web-g1-a " + a.addr() + " drain",
		"molt-web-g2-b " + b.addr() + " ready",
	}, molt(t, h)); diff != "" {
		t.Errorf("servers while the old one drains (-want +got):\n%s", diff)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := f.Drain(short, []string{a.addr()})
	cancel()
	if err == nil {
		t.Fatal("Drain returned with a request in flight")
	}
	if got := molt(t, h); len(got) != 2 {
		t.Errorf("servers after a drain that gave up: %v, want the draining one kept", got)
	}
	close(a.release)
	if err := f.Drain(ctx, []string{a.addr()}); err != nil {
		t.Fatal(err)
	}
	if got := <-answered; got != "200 a <nil>" {
		t.Errorf("the request in flight during the drain got %q, want 200 a", got)
	}
	if diff := cmp.Diff([]string{"molt-web-g2-b " + b.addr() + " ready"}, molt(t, h)); diff != "" {
		t.Errorf("servers after the drain (-want +got):\n%s", diff)
	}
}

// TestHAProxyRestart: HAProxy restarted forgets the dynamic servers;
// Routes then shows the route without them (Meta kept), so the reconciler
// sets it again, and SetRoutes brings them back.
func TestHAProxyRestart(t *testing.T) {
	h, f := startHAProxy(t)
	ctx := context.Background()
	a := newApp(t, "a")
	want := []targets.Route{route(a.backend("g1", 0))}
	if err := f.SetRoutes(ctx, "fleet", want); err != nil {
		t.Fatal(err)
	}
	h.Stop()
	if _, err := f.Routes(ctx, "fleet"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Routes with HAProxy down: %v, want ErrUnreachable", err)
	}
	h.Restart()
	got, err := f.Routes(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Backends) != 0 || !cmp.Equal(got[0].Meta, want[0].Meta) {
		t.Fatalf("routes after HAProxy's restart: %+v, want the route with its Meta and no backend", got)
	}
	if err := f.SetRoutes(ctx, "fleet", want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"molt-web-g1-a " + a.addr() + " ready"}, molt(t, h)); diff != "" {
		t.Errorf("servers after the route was set again (-want +got):\n%s", diff)
	}
	if code, body, err := get(t, h.Addrs[testBackend], "/"); err != nil || code != 200 || body != "a" {
		t.Errorf("GET after the rebuild: %d %q %v", code, body, err)
	}
	userServerUntouched(t, h)
}

// TestCounts: per generation counts from a time, read from show stat:
// requests and 5xx of each generation, the old generation's counts before
// the window left out.
func TestCounts(t *testing.T) {
	h, f := startHAProxy(t)
	ctx := context.Background()
	a, b := newApp(t, "a"), newApp(t, "b")
	b.fail.Store(true)
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(a.backend("g1", 0))}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		get(t, h.Addrs[testBackend], "/")
	}
	if _, err := f.Routes(ctx, "fleet"); err != nil { // a pass: a reading
		t.Fatal(err)
	}
	since := time.Now()
	time.Sleep(10 * time.Millisecond) // readings strictly after since
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(a.backend("g1", 0), b.backend("g2", 0))}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		get(t, h.Addrs[testBackend], "/")
	}
	m, from, err := f.Counts(ctx, "fleet", since)
	if err != nil {
		t.Fatal(err)
	}
	if !from.Equal(since) {
		t.Errorf("counts from %v, want since %v", from, since)
	}
	g1, g2 := m["web"]["g1"], m["web"]["g2"]
	t.Logf("g1 %+v, g2 %+v", g1, g2)
	if g1.Requests != 10 || g1.Status5xx != 0 || g2.Requests != 10 || g2.Status5xx != 10 {
		t.Errorf("counts g1 %d requests %d 5xx, g2 %d requests %d 5xx; want 10 and 0, 10 and 10", g1.Requests, g1.Status5xx, g2.Requests, g2.Status5xx)
	}
	if g1.Latency.Total() != 10 {
		t.Errorf("g1's latency has %d observations, want 10", g1.Latency.Total())
	}
	// Deleted servers keep their counts in the window.
	if err := f.SetRoutes(ctx, "fleet", []targets.Route{route(a.backend("g1", 0))}); err != nil {
		t.Fatal(err)
	}
	if err := f.Drain(ctx, []string{b.addr()}); err != nil {
		t.Fatal(err)
	}
	m, _, err = f.Counts(ctx, "fleet", since)
	if err != nil {
		t.Fatal(err)
	}
	if got := m["web"]["g2"]; got.Requests != 10 || got.Status5xx != 10 {
		t.Errorf("counts of the deleted g2 server: %+v, want 10 requests, 10 5xx", got)
	}
}
