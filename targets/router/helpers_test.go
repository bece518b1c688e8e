package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/molt-dev/molt/targets"
)

// ignoreLatency compares Counts without their latency histogram.
var ignoreLatency = cmpopts.IgnoreFields(Counts{}, "Latency", "LatencySum")

// shortDir returns a fresh state directory with a short path, since the
// admin socket's path must fit a unix socket address.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testRouter is a Server running in the test process.
type testRouter struct {
	*Client
	server *Server
	stop   func() // cancels Run and waits for it; idempotent
}

// startRouter runs a Server on dir until the test ends (or stop is called)
// and waits until it answers.
func startRouter(t testing.TB, dir string, opts ...func(*Options)) testRouter {
	t.Helper()
	o := Options{StateDir: dir, Logger: testLogger(t), DrainTimeout: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("router Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	c := NewClient(dir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(t.Context())
		if err == nil {
			break
		}
		select {
		case err := <-done:
			once.Do(func() {})
			t.Fatalf("router exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("router does not answer: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return testRouter{Client: c, server: s, stop: stop}
}

// testBackend is an instance: an HTTP server on 127.0.0.1 that answers
// with its name, or runs handler.
type testBackend struct {
	name, gen string
	addr      string
	hits      atomic.Int64
	srv       *httptest.Server
}

func newBackend(t testing.TB, name, gen string, handler http.HandlerFunc) *testBackend {
	t.Helper()
	b := &testBackend{name: name, gen: gen}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if handler != nil {
			handler(w, r)
			return
		}
		io.WriteString(w, name)
	}))
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBackend) backend(weight int) targets.Backend {
	return targets.Backend{Instance: b.name, Addr: b.addr, Generation: b.gen, Weight: weight}
}

func backends(bs ...*testBackend) []targets.Backend {
	out := make([]targets.Backend, len(bs))
	for i, b := range bs {
		out[i] = b.backend(0)
	}
	return out
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testFleet is the fleet of the tests that need only one.
const testFleet = "shop"

// webRoutes are the routes of a fleet with one service, web, on listen.
func webRoutes(listen string, bs ...targets.Backend) []targets.Route {
	if bs == nil {
		bs = []targets.Backend{}
	}
	return []targets.Route{{Service: "web", Listen: listen, Backends: bs}}
}

// mustSet sets the routes of fleet.
func mustSet(t testing.TB, c *Client, fleet string, routes []targets.Route) {
	t.Helper()
	if err := c.SetRoutes(t.Context(), fleet, routes); err != nil {
		t.Fatalf("set routes of %s: %v", fleet, err)
	}
}

// mustSetWeb sets the routes of testFleet to webRoutes(listen, bs...).
func mustSetWeb(t testing.TB, c *Client, listen string, bs ...targets.Backend) {
	t.Helper()
	mustSet(t, c, testFleet, webRoutes(listen, bs...))
}

// mustRoutes returns the routes of fleet.
func mustRoutes(t testing.TB, c *Client, fleet string) []targets.Route {
	t.Helper()
	routes, err := c.Routes(t.Context(), fleet)
	if err != nil {
		t.Fatalf("routes of %s: %v", fleet, err)
	}
	return routes
}

// tableOf reads the whole table (GET /table, for debugging).
func tableOf(t testing.TB, c *Client) Table {
	t.Helper()
	var tbl Table
	if err := c.call(t.Context(), http.MethodGet, "/table", nil, &tbl); err != nil {
		t.Fatalf("table: %v", err)
	}
	return tbl
}

// webCounts returns the counters per generation of fleet's web.
func webCounts(t testing.TB, c *Client, fleet string) map[string]Counts {
	t.Helper()
	st, err := c.Stats(t.Context(), fleet)
	if err != nil {
		t.Fatalf("stats of %s: %v", fleet, err)
	}
	return st.Services["web"].Generations
}

// newHTTPClient returns a keep-alive client that does not follow redirects.
func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type reply struct {
	status int
	body   string
	gen    string
}

func get(hc *http.Client, url string) (reply, error) {
	return do(hc, http.MethodGet, url, nil)
}

func do(hc *http.Client, method, url string, body io.Reader) (reply, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return reply{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, body: string(data), gen: resp.Header.Get(GenerationHeader)}, nil
}

func mustGet(t *testing.T, hc *http.Client, url string) reply {
	t.Helper()
	r, err := get(hc, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return r
}

// keptAlive opens one connection to addr and returns a function that sends
// a GET on it and returns the answer's body. It fails the test if the
// connection breaks, such as when the router closes its listener.
func keptAlive(t *testing.T, addr string) func() string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	return func() string {
		t.Helper()
		if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: web\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
}

// refused reports whether connecting to addr is refused.
func refused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		return false
	}
	var op *net.OpError
	return errors.As(err, &op)
}

// within polls cond until it holds or the (generous) deadline passes.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting: %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
