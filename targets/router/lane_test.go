package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawConn is a client connection that writes requests as given and reads
// the responses' bytes.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// response reads one response to a request of method, through its 1xx
// responses, and returns it as its header bytes on the wire (the Date
// field's value blanked), then its body and trailers as read (a chunked
// body's chunks are cut where its bytes happened to arrive: they are not
// compared). It reads ahead: only for the one response of a connection.
func (c *rawConn) response(method string) string {
	c.t.Helper()
	var raw strings.Builder
	br := bufio.NewReader(io.TeeReader(c.br, &raw))
	blocks := 0
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			c.t.Fatalf("read a response: %v (read %q)", err, raw.String())
		}
		blocks++
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			c.t.Fatalf("read a response's body: %v", err)
		}
		if resp.StatusCode < 200 {
			continue // (1xx responses come before the final one)
		}
		wire := raw.String()
		end := 0
		for range blocks {
			end += strings.Index(wire[end:], "\r\n\r\n") + 4
		}
		return fmt.Sprintf("%s[body %q, trailer %v]", dateField.ReplaceAllString(wire[:end], "Date: -\r\n"), body, resp.Trailer)
	}
}

var dateField = regexp.MustCompile(`Date: [^\r]*\r\n`)

// read reads one response to a request of method and returns its body.
func (c *rawConn) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("read a response's body: %v", err)
	}
	return resp, string(body)
}

// closed reports whether the router closed the connection (nothing more
// to read).
func (c *rawConn) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	return err == io.EOF
}

// routedBackend starts a router and a backend answering with handler
// (nil: its name), routed from the address it returns.
func routedBackend(t testing.TB, handler http.HandlerFunc) (*testBackend, string) {
	t.Helper()
	r := startRouter(t, shortDir(t))
	b := newBackend(t, "b", "gena", handler)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	return b, listen
}

// expect reads one response to a request of method and fails the test
// unless its body is want.
func (c *rawConn) expect(method, want string) {
	c.t.Helper()
	if resp, got := c.read(method); got != want {
		c.t.Fatalf("%s answer: %s %q, want %q", method, resp.Status, got, want)
	}
}

// laneCase is a backend answer, to a request of method.
type laneCase struct {
	name   string
	method string
	answer http.HandlerFunc
}

// laneCases are backend answers of every framing the lane writes.
var laneCases = []laneCase{
	{"length", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}},
	{"short, no length", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush() // the backend sends it chunked
	}},
	{"long, no length", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 5000))
		w.(http.Flusher).Flush()
		io.WriteString(w, strings.Repeat("y", 3000))
	}},
	{"no type", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // the backend sends none
		io.WriteString(w, "<html><body>hi</body></html>")
	}},
	{"empty", "GET", func(w http.ResponseWriter, r *http.Request) {}},
	{"head", "HEAD", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "1234")
	}},
	{"no content", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }},
	{"not modified", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	}},
	{"unknown status", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) }},
	{"trailers", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}},
	{"informational", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "final")
	}},
	{"multiple values", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}},
}

// TestLaneAnswersAsNetHTTP: what the lane writes for each kind of answer
// is, byte for byte (the date aside), what net/http's server writes for
// the same request handed over to it (a Host the lane leaves to it).
func TestLaneAnswersAsNetHTTP(t *testing.T) {
	for _, tc := range laneCases {
		t.Run(tc.name, func(t *testing.T) {
			b, listen := routedBackend(t, tc.answer)
			lane := dialRaw(t, listen)
			lane.send(tc.method + " /x HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			got := lane.response(tc.method)

			nethttp := dialRaw(t, listen)
			nethttp.send(tc.method + " /x HTTP/1.1\r\nHost: shop~x.example\r\n\r\n") // "~": net/http's
			want := nethttp.response(tc.method)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the lane's answer differs from net/http's (-net/http +lane):\n%s", diff)
			}
			if b.hits.Load() != 2 {
				t.Errorf("backend hit %d times, want 2", b.hits.Load())
			}
		})
	}
}

// TestLaneKeepsAliveAndPipelines: requests sent one after another, and
// three sent in one write, are answered in order on one connection.
func TestLaneKeepsAliveAndPipelines(t *testing.T) {
	_, listen := routedBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	c := dialRaw(t, listen)
	for i := range 3 {
		c.send(fmt.Sprintf("GET /one-%d HTTP/1.1\r\nHost: a\r\n\r\n", i))
		c.expect("GET", fmt.Sprintf("/one-%d", i))
	}
	c.send("GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /p3 HTTP/1.1\r\nHost: a\r\n\r\n")
	for i, m := range []string{"GET", "GET", "HEAD"} {
		resp, got := c.read(m)
		if want := map[bool]string{true: fmt.Sprintf("/p%d", i+1)}[m == "GET"]; got != want || resp.StatusCode != 200 {
			t.Errorf("pipelined answer %d: %d %q, want %q", i+1, resp.StatusCode, got, want)
		}
	}
}

// TestLaneHandsOver: a connection whose requests the lane stops taking
// (a POST with a body, a header larger than the lane's buffer) goes on
// under net/http, with nothing lost: the request that made it leave and
// the ones after it are answered, in order.
func TestLaneHandsOver(t *testing.T) {
	_, listen := routedBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})

	c := dialRaw(t, listen)
	c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expect("GET", "GET /first ")
	// The POST and the GET after it in one write: both reach net/http.
	c.send("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\nx=1&y=2GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expect("POST", "POST /form x=1&y=2")
	c.expect("GET", "GET /after ")

	big := dialRaw(t, listen)
	big.send("GET /big HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 2*laneBuffer) + "\r\n\r\n")
	big.expect("GET", "GET /big ")
}

// TestLaneLeavesToNetHTTP: requests that net/http's server refuses, or
// reads by rules of its own (bare line feeds, HTTP/1.0), are answered as
// it answers them.
func TestLaneLeavesToNetHTTP(t *testing.T) {
	_, listen := routedBackend(t, nil)

	for _, tc := range []struct{ name, req, status string }{
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad field", "GET / HTTP/1.1\r\nHost: a\r\nBad Field: 1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bare line feeds", "GET / HTTP/1.1\nHost: a\n\n", "HTTP/1.1 200 OK"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", "HTTP/1.0 200 OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, listen)
			c.send(tc.req)
			line, err := c.br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, tc.status) {
				t.Errorf("status line %q (%v), want %q", line, err, tc.status)
			}
		})
	}
}

// TestLaneConnectionClose: a request that asks for the connection to be
// closed is answered with "Connection: close", and the connection closes.
func TestLaneConnectionClose(t *testing.T) {
	_, listen := routedBackend(t, nil)
	c := dialRaw(t, listen)
	c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if resp, _ := c.read("GET"); !resp.Close {
		t.Errorf("answer %v lacks Connection: close", resp.Header)
	}
	if !c.closed() {
		t.Error("the connection stayed open")
	}
}

// TestLaneClosesIdleOnRetire: when a listener goes (its route removed),
// its idle keep-alive connections are closed at once, and a request in
// flight is answered first, with "Connection: close".
func TestLaneClosesIdleOnRetire(t *testing.T) {
	r := startRouter(t, shortDir(t))
	release := make(chan struct{})
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))

	idle := dialRaw(t, listen)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	busy := dialRaw(t, listen)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	within(t, "the slow request to arrive", func() bool { return b.hits.Load() == 2 })

	mustSet(t, r.Client, testFleet, nil) // the listener goes
	if !idle.closed() {
		t.Error("the idle connection stayed open")
	}
	close(release)
	if resp, got := busy.read("GET"); got != "done" || !resp.Close {
		t.Errorf("the request in flight: %q (Connection: close %v, want true)", got, resp.Close)
	}
	if !busy.closed() {
		t.Error("the busy connection stayed open after its answer")
	}
}

// TestLaneAnswersBeforeWaiting: an answer held back because the next
// request's first bytes had come is sent before the lane waits for the
// rest of that request, and before it hands the connection over.
func TestLaneAnswersBeforeWaiting(t *testing.T) {
	_, listen := routedBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	c := dialRaw(t, listen)
	c.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HT")
	c.expect("GET", "/a")
	c.send("TP/1.1\r\nHost: a\r\n\r\n")
	c.expect("GET", "/b")
	// A fuzzed input: the rest is not a request, so net/http answers it,
	// after the lane's answer has been sent whole.
	c = dialRaw(t, listen)
	c.send("GET /c HTTP/1.1\r\nHost: a\r\n\r\n0")
	c.nc.(*net.TCPConn).CloseWrite()
	c.expect("GET", "/c")
	if resp, _ := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the rest got %d, want net/http's 400", resp.StatusCode)
	}
}

// TestLaneHandsOverOnce: a header that ends early (at "\n\r\n") before
// the next request is handed over with each byte once: net/http answers
// the two requests, not the second twice (the answer after them is the
// third request's).
func TestLaneHandsOverOnce(t *testing.T) {
	_, listen := routedBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Method+" "+r.URL.Path) })
	c := dialRaw(t, listen)
	c.send("PUT /one HTTP/1.1\nHost: a\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"PUT /one", "GET /two"} {
		c.expect("GET", want)
	}
	c.send("GET /three HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expect("GET", "GET /three")
}
