package router

import (
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
)

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
	stop func() // cancels Run and waits for it; idempotent
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
	return testRouter{Client: c, stop: stop}
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

func (b *testBackend) backend(weight int) Backend {
	return Backend{Instance: b.name, Addr: b.addr, Generation: b.gen, Weight: weight}
}

func backends(bs ...*testBackend) []Backend {
	out := make([]Backend, len(bs))
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

// webTable is a table with one service, web, on listen.
func webTable(listen string, bs ...Backend) Table {
	return Table{Services: map[string]Route{"web": {Listen: listen, Backends: bs}}}
}

func mustApply(t testing.TB, c *Client, tbl Table) Table {
	t.Helper()
	out, err := c.Apply(t.Context(), tbl)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return out
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
