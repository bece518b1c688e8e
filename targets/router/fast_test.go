package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawBackend is a backend that answers every request with answer's bytes,
// as they are (but a request for /warm with warm's, if not empty), and
// closes the connection after each answer if closeAfter: the answers
// net/http's server would never write.
func rawBackend(t *testing.T, closeAfter bool, answer, warm string) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &testBackend{name: "raw", gen: "gena", addr: ln.Addr().String()}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					b.hits.Add(1)
					a := answer
					if req.URL.Path == "/warm" && warm != "" {
						a = warm
					}
					if _, err := io.WriteString(nc, a); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return b
}

// routed starts a router in front of b and returns it with the address
// it routes from.
func routed(t *testing.T, b *testBackend) (testRouter, string) {
	t.Helper()
	r := startRouter(t, shortDir(t))
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	return r, listen
}

// fastCases are backend answers of the shapes the fast exchange writes
// (fast: true) and of those it leaves to the lane.
var fastCases = []struct {
	name   string
	method string
	answer string // a raw answer; "" for the laneCase of the same name
	warm   string // a raw answer to the first request of a connection, if not answer
	// (which then asks for /warm)
	fast bool
}{
	{name: "length", method: "GET", fast: true},
	{name: "empty", method: "GET", fast: true},
	{name: "head", method: "HEAD", fast: true},
	{name: "unknown status", method: "GET", fast: true},
	{name: "multiple values", method: "GET", fast: true},
	{name: "short, no length", method: "GET"},
	{name: "long, no length", method: "GET"},
	{name: "no type", method: "GET"},
	{name: "no content", method: "GET"},
	{name: "not modified", method: "GET"},
	{name: "trailers", method: "GET"},
	{name: "informational", method: "GET"},
	{name: "raw: names of any case, hop-by-hop fields, no date", method: "GET", fast: true,
		answer: "HTTP/1.1 200 Fine\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nx-molt-generation: fake\r\n" +
			"Keep-Alive: timeout=5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nx-MIXED-case: v\r\n" +
			"X-Twice: 1\r\nx-twice: 2\r\n\r\nok"},
	{name: "raw: a length with leading zeros", method: "GET", fast: true,
		answer: "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 004\r\n\r\ngone"},
	{name: "raw: a status without a text", method: "GET", fast: true,
		answer: "HTTP/1.1 299 Whatever\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"},
	{name: "raw: no length, no type, empty", method: "GET", fast: true,
		answer: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"},
	{name: "raw: a body larger than the buffers", method: "GET", fast: true,
		answer: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20000\r\n\r\n" + strings.Repeat("0123456789", 2000)},
	{name: "raw: the backend closes", method: "GET", fast: true,
		warm:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
		answer: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye"},
	{name: "raw: a length twice", method: "GET",
		answer: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
	{name: "raw: server-sent events", method: "GET",
		answer: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 8\r\n\r\ndata: 1\n"},
	{name: "raw: HTTP/1.0", method: "GET",
		answer: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"},
	{name: "raw: a folded line", method: "GET",
		answer: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Long: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
	{name: "raw: bare line feeds", method: "GET",
		answer: "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nok"},
}

// TestFastAnswersAsNetHTTP: the second request of a lane connection (the
// first left a kept-alive backend connection) is answered by the fast
// exchange when its answer is of a shape it takes, and by the lane
// otherwise; either way the client gets, byte for byte (the date aside),
// what net/http's server writes for the same request.
func TestFastAnswersAsNetHTTP(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			var b *testBackend
			switch {
			case tc.answer != "":
				b = rawBackend(t, false, tc.answer, tc.warm)
			default:
				i := slices.IndexFunc(laneCases, func(c laneCase) bool { return c.name == tc.name })
				b = newBackend(t, "b", "gena", laneCases[i].answer)
			}
			r, listen := routed(t, b)
			req := tc.method + " /x HTTP/1.1\r\nHost: shop.example\r\n\r\n"
			lane := dialRaw(t, listen)
			if tc.warm != "" {
				lane.send("GET /warm HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			} else {
				lane.send(req)
			}
			first := lane.response(tc.method)
			before := r.server.fastAnswers.Load()
			lane.send(req)
			got := lane.response(tc.method)
			fast := r.server.fastAnswers.Load() - before

			nethttp := dialRaw(t, listen)
			nethttp.send(tc.method + " /x HTTP/1.1\r\nHost: shop~x.example\r\n\r\n") // "~": net/http's
			want := nethttp.response(tc.method)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the answer differs from net/http's (-net/http +lane):\n%s", diff)
			}
			if diff := cmp.Diff(first, got); diff != "" && tc.warm == "" {
				t.Errorf("the second answer differs from the first (-first +second):\n%s", diff)
			}
			if tc.fast && fast != 1 || !tc.fast && fast != 0 {
				t.Errorf("the fast exchange answered %d request(s), want %v", fast, tc.fast)
			}
		})
	}
}

// TestFastForwardsAsNetHTTP: a backend receives from the fast exchange the
// request it receives when net/http's server forwards the same one: the
// same target, the client's fields without the hop-by-hop ones and those
// its Connection field names, and the router's X-Forwarded-* in place of
// the client's.
func TestFastForwardsAsNetHTTP(t *testing.T) {
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		var lines []string
		for k, vv := range req.Header {
			for _, v := range vv {
				lines = append(lines, k+": "+v)
			}
		}
		slices.Sort(lines)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s\n%s\n", req.Method, req.RequestURI, req.Host, strings.Join(lines, "\n"))
	})
	r, listen := routed(t, b)
	for _, tc := range []struct{ method, target, fields string }{
		{"GET", "/", ""},
		{"GET", "/p/a;b=c/d.e:f@g~h?x=1&y=%20&z=/?", "user-agent: t\r\nACCEPT: */*\r\n"},
		{"GET", "/", "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Host: evil\r\nx-forwarded-proto: https\r\nForwarded: for=192.0.2.1\r\n"},
		{"GET", "/", "Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nUpgrade-Insecure-Requests: 1\r\n"},
		{"GET", "/", "Te: trailers, deflate\r\nTrailer: X\r\nProxy-Authorization: basic x\r\n"},
		{"GET", "/", "Te: deflate\r\nX-Multi: 1\r\nx-multi: 2\r\nX-Empty:\r\nX-Tab: \ta b\t\r\nX-Utf8: \xc3\xa9\r\n"},
		{"HEAD", "/head", "Accept: text/html\r\n"},
		{"OPTIONS", "/opt", "Origin: http://a.example\r\n"},
	} {
		t.Run(tc.method+" "+tc.target+" "+strings.ReplaceAll(tc.fields, "\r\n", "|"), func(t *testing.T) {
			req := func(host string) string {
				return tc.method + " " + tc.target + " HTTP/1.1\r\nHost: " + host + "\r\n" + tc.fields + "\r\n"
			}
			// The echo is read from the body; HEAD has none: ask its
			// GET twin for the comparison, through both paths.
			m := tc.method
			if m == "HEAD" {
				m = "GET"
			}
			lane := dialRaw(t, listen)
			lane.send(req("shop.example"))
			lane.read(tc.method)
			before := r.server.fastAnswers.Load()
			lane.send(strings.Replace(req("shop.example"), tc.method, m, 1))
			_, got := lane.read(m)
			if n := r.server.fastAnswers.Load() - before; n != 1 {
				t.Fatalf("the fast exchange answered %d request(s), want 1", n)
			}
			nethttp := dialRaw(t, listen)
			nethttp.send(strings.Replace(req("shop~x.example"), tc.method, m, 1))
			_, want := nethttp.read(m)
			want = strings.ReplaceAll(want, "shop~x.example", "shop.example")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the backend received another request (-net/http +fast):\n%s", diff)
			}
		})
	}
}

// TestFastDeclines: parseFastRequest takes only the requests that the
// lane would forward unchanged, and leaves the rest (the lane or net/http
// serves them, as before).
func TestFastDeclines(t *testing.T) {
	take := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /a/b?c=d HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\n\r\n",
		"OPTIONS /x HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
	}
	for _, in := range take {
		if _, ok := parseFastRequest([]byte(in), nil); !ok {
			t.Errorf("declined %q", in)
		}
	}
	many := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", maxFastFields+1) + "\r\n"
	for _, in := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\n\r\n",
		"get / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a~b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /?a;b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /?a=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /?a=#b HTTP/1.1\r\nHost: a\r\n\r\n",
		many,
	} {
		if _, ok := parseFastRequest([]byte(in), nil); ok {
			t.Errorf("took %q", in)
		}
	}
}

// TestFastResendsOnAClosedConnection: a kept-alive connection that the
// backend closed without saying so fails the fast exchange before any
// answer: the request is sent again on a new connection, and counted
// once, not as a proxy error.
func TestFastResendsOnAClosedConnection(t *testing.T) {
	b := rawBackend(t, true, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", "")
	r, listen := routed(t, b)
	c := dialRaw(t, listen)
	for range 3 {
		c.send("GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		c.expect("GET", "ok")
	}
	got := webCounts(t, r.Client, testFleet)["gena"]
	if got.Requests != 3 || got.Status2xx != 3 || got.ProxyErrors != 0 {
		t.Errorf("counts %+v, want 3 requests, 3 2xx, no proxy error", got)
	}
	if n := b.hits.Load(); n != 3 {
		t.Errorf("the backend answered %d requests, want 3", n)
	}
}

// waitingAtBackend starts a router in front of a backend that answers
// "ok", but runs wait first for a request for /wait; on a lane connection
// it sends a first request (which leaves a kept-alive backend connection
// for the fast exchange), then a request for /wait, and returns once that
// one has arrived at the backend.
func waitingAtBackend(t *testing.T, wait func(*http.Request)) (testRouter, string, *rawConn) {
	t.Helper()
	arrived := make(chan struct{}, 1)
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/wait" {
			arrived <- struct{}{}
			wait(req)
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	r, listen := routed(t, b)
	c := dialRaw(t, listen)
	c.send("GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	c.expect("GET", "ok")
	c.send("GET /wait HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	<-arrived
	return r, listen, c
}

// TestFastClientLeaves: a client that leaves while the fast exchange waits
// for its backend cuts the router's connection to the backend, and the
// attempt is not a proxy error.
func TestFastClientLeaves(t *testing.T) {
	cut := make(chan struct{})
	r, _, c := waitingAtBackend(t, func(req *http.Request) {
		select {
		case <-req.Context().Done(): // the router closed the connection
			close(cut)
		case <-time.After(10 * time.Second):
		}
	})
	c.nc.Close()
	select {
	case <-cut:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's connection was not cut")
	}
	within(t, "the attempts counted", func() bool { return webCounts(t, r.Client, testFleet)["gena"].Requests == 2 })
	if got := webCounts(t, r.Client, testFleet)["gena"]; got.ProxyErrors != 0 || got.Status2xx != 1 {
		t.Errorf("counts %+v, want one 2xx and no proxy error", got)
	}
}

// TestFastPipelined: requests sent in one write are answered in order by
// the fast exchange, and the answers go out together.
func TestFastPipelined(t *testing.T) {
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, req.URL.Path)
	})
	r, listen := routed(t, b)
	c := dialRaw(t, listen)
	c.send("GET /0 HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expect("GET", "/0")
	before := r.server.fastAnswers.Load()
	c.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expect("GET", "/1")
	c.expect("HEAD", "")
	c.expect("GET", "/3")
	if n := r.server.fastAnswers.Load() - before; n != 3 {
		t.Errorf("the fast exchange answered %d of 3 requests", n)
	}
}

// TestFastShutdown: a request that the fast exchange serves while the
// router shuts down is answered whole, with Connection: close.
func TestFastShutdown(t *testing.T) {
	release := make(chan struct{})
	r, listen, c := waitingAtBackend(t, func(*http.Request) { <-release })
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	within(t, "the listener closed", func() bool { return refused(listen) })
	close(release)
	resp, body := c.read("GET")
	if body != "ok" || !resp.Close {
		t.Errorf("answer %q, close %v; want ok and Connection: close", body, resp.Close)
	}
	<-stopped
}

// TestFastNextRequestBeforeItsAnswer: a client that sends its next request
// while the last one is still at the backend (before its answer, but
// after the router read that one) gets both answers, though the read that
// waits for the next request does not look first (sendReader): its wait
// is bounded by laneBlindWait (and then the client loses it). Twice on
// one connection.
func TestFastNextRequestBeforeItsAnswer(t *testing.T) {
	sent := make(chan struct{})
	r, _, c := waitingAtBackend(t, func(*http.Request) { <-sent })
	c.send("GET /next HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	close(sent)
	c.expect("GET", "ok")
	c.expect("GET", "ok")

	sent = make(chan struct{})
	c.send("GET /wait HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	within(t, "the request at the backend", func() bool { return webCounts(t, r.Client, testFleet)["gena"].Requests == 4 })
	c.send("GET /next HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	close(sent)
	c.expect("GET", "ok")
	c.expect("GET", "ok")
	if got := webCounts(t, r.Client, testFleet)["gena"]; got.Status2xx != 5 {
		t.Errorf("counts %+v, want five 2xx", got)
	}
}
