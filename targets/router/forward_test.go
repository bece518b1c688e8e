package router

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		target string
		body   string
		header map[string]string
		want   bool
	}{
		{name: "get", method: "GET", target: "/a?b=c", want: true},
		{name: "head", method: "HEAD", target: "/", want: true},
		{name: "options", method: "OPTIONS", target: "/", want: true},
		{name: "escaped query", method: "GET", target: "/?q=%20x", want: true},
		{name: "post", method: "POST", target: "/", body: "x"},
		{name: "post without body", method: "POST", target: "/"},
		{name: "delete", method: "DELETE", target: "/"},
		{name: "get with body", method: "GET", target: "/", body: "x"},
		{name: "upgrade", method: "GET", target: "/", header: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}},
		{name: "semicolon in query", method: "GET", target: "/?a=1;b=2"},
		{name: "bad escape in query", method: "GET", target: "/?a=%zz"},
		{name: "non-ASCII host", method: "GET", target: "/", header: map[string]string{"Host": "bücher.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.method + " " + tc.target + " HTTP/1.1\r\n"
			host := "shop.example"
			if h, ok := tc.header["Host"]; ok {
				host = h
			}
			raw += "Host: " + host + "\r\n"
			for k, v := range tc.header {
				if k != "Host" {
					raw += k + ": " + v + "\r\n"
				}
			}
			if tc.body != "" {
				raw += "Content-Length: 1\r\n"
			}
			raw += "\r\n" + tc.body
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if r.ContentLength == 0 {
				r.Body = http.NoBody // as the server has it
			}
			if got := plain(r); got != tc.want {
				t.Errorf("plain(%s %s) = %v, want %v", tc.method, tc.target, got, tc.want)
			}
		})
	}
}

// TestForwardedAlike sends requests that the router forwards itself (GET,
// HEAD) and through the ReverseProxy (POST, a GET whose query it
// re-encodes), and checks that the backend and the client see the same.
func TestForwardedAlike(t *testing.T) {
	r := startRouter(t, shortDir(t))
	echo := newBackend(t, "echo", "gena", func(w http.ResponseWriter, req *http.Request) {
		seen := map[string]any{"host": req.Host, "uri": req.URL.RequestURI(), "header": req.Header}
		data, _ := json.Marshal(seen)
		w.Header().Set("Connection", "X-Hop-Response")
		w.Header().Set("X-Hop-Response", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set(GenerationHeader, "forged")
		w.Header().Set("X-End", "kept")
		w.Header().Set("X-Seen", string(data))
		io.WriteString(w, "body")
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, echo.backend(0))
	hc := newHTTPClient(t)

	send := func(method, target, body string) (map[string]any, http.Header) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, "http://"+listen+target, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "shop.example"
		req.Header.Set("Connection", "X-Hop-Request")
		req.Header.Set("X-Hop-Request", "1")
		req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
		req.Header.Set("Te", "trailers")
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "forged.example")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		req.Header.Set("User-Agent", "")
		req.Header.Add("Accept", "text/plain")
		req.Header.Add("Accept", "text/html")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: status %d", method, target, resp.StatusCode)
		}
		var seen map[string]any
		if err := json.Unmarshal([]byte(resp.Header.Get("X-Seen")), &seen); err != nil {
			t.Fatal(err)
		}
		hdr := seen["header"].(map[string]any)
		delete(hdr, "Content-Length") // the POST has one
		delete(hdr, "Accept-Encoding")
		resp.Header.Del("X-Seen")
		resp.Header.Del("Date")
		resp.Header.Del("Content-Length")
		resp.Header.Del("Content-Type")
		return seen, resp.Header
	}
	wantSeen := map[string]any{
		"host": "shop.example",
		"header": map[string]any{
			"Accept":            []any{"text/plain", "text/html"},
			"Te":                []any{"trailers"},
			"X-Forwarded-For":   []any{"127.0.0.1"},
			"X-Forwarded-Host":  []any{"shop.example"},
			"X-Forwarded-Proto": []any{"http"},
		},
	}
	wantHeader := http.Header{GenerationHeader: {"gena"}, "X-End": {"kept"}}
	for _, tc := range []struct{ method, target, body, uri string }{
		{"GET", "/a/b?c=d", "", "/a/b?c=d"},         // forwarded
		{"HEAD", "/a/b?c=d", "", "/a/b?c=d"},        // forwarded
		{"POST", "/a/b?c=d", "x", "/a/b?c=d"},       // ReverseProxy
		{"GET", "/a/b?c=d;e", "", "/a/b"},           // ReverseProxy: the unparsable query dropped
		{"GET", "/a%2Fb?c=%20", "", "/a%2Fb?c=%20"}, // forwarded, escapes kept
	} {
		seen, header := send(tc.method, tc.target, tc.body)
		want := map[string]any{"host": wantSeen["host"], "header": wantSeen["header"], "uri": tc.uri}
		if diff := cmp.Diff(want, seen); diff != "" {
			t.Errorf("%s %s: the backend saw (-want +got):\n%s", tc.method, tc.target, diff)
		}
		if diff := cmp.Diff(wantHeader, header); diff != "" {
			t.Errorf("%s %s: the client got the header (-want +got):\n%s", tc.method, tc.target, diff)
		}
	}
}

// TestForwardReusesConnections: sequential GETs share one connection to
// the backend.
func TestForwardReusesConnections(t *testing.T) {
	r := startRouter(t, shortDir(t))
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "b")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	b := &testBackend{name: "b", gen: "gena", addr: srv.Listener.Addr().String(), srv: srv}
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	hc := newHTTPClient(t)
	for range 20 {
		if got := mustGet(t, hc, "http://"+listen+"/"); got.status != http.StatusOK || got.body != "b" {
			t.Fatalf("GET: %+v", got)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("20 GETs in a row opened %d connections to the backend, want 1", n)
	}
}

// TestForwardReplacesClosedConnection: a kept-alive connection that the
// backend closed while idle is replaced, without a failed attempt.
func TestForwardReplacesClosedConnection(t *testing.T) {
	r := startRouter(t, shortDir(t))
	b := newBackend(t, "b", "gena", nil)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	hc := newHTTPClient(t)
	for range 3 {
		mustGet(t, hc, "http://"+listen+"/")
		b.srv.CloseClientConnections() // the backend drops its idle connections
	}
	if got := mustGet(t, hc, "http://"+listen+"/"); got.status != http.StatusOK {
		t.Fatalf("GET after the backend closed its connections: %+v", got)
	}
	c := webCounts(t, r.Client, testFleet)["gena"]
	if c.Requests != 4 || c.Status2xx != 4 || c.ProxyErrors != 0 {
		t.Errorf("counts %+v, want 4 requests answered, no proxy error", c)
	}
}

// TestForwardStreams: a body of unknown length reaches the client as it
// arrives, and trailers follow it.
func TestForwardStreams(t *testing.T) {
	r := startRouter(t, shortDir(t))
	release := make(chan struct{})
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
		w.Header().Set("X-Sum", "2")
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	resp, err := newHTTPClient(t).Get("http://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release) // the backend ends only once the first line arrived
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "2" {
		t.Errorf("trailer X-Sum = %q, want 2", got)
	}
}

// TestForwardInformational: a 1xx response reaches the client before the
// final one.
func TestForwardInformational(t *testing.T) {
	r := startRouter(t, shortDir(t))
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "done")
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", "http://"+listen+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newHTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !cmp.Equal(hints, []string{"</style.css>; rel=preload"}) {
		t.Errorf("status %d after 1xx hints %q, want 200 after one", resp.StatusCode, hints)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the 1xx response's header leaked into the final one: %v", resp.Header)
	}
}

// TestForwardClientLeaves: a client that gives up on a request cuts the
// router's connection to the backend, and the attempt is not a proxy
// error.
func TestForwardClientLeaves(t *testing.T) {
	r := startRouter(t, shortDir(t))
	arrived := make(chan struct{})
	cut := make(chan struct{})
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		close(arrived)
		<-req.Context().Done() // the router closed the connection
		close(cut)
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+listen+"/", nil)
		resp, err := newHTTPClient(t).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled GET: %v", err)
	}
	<-cut
	within(t, "the attempt counted", func() bool { return webCounts(t, r.Client, testFleet)["gena"].Requests == 1 })
	if c := webCounts(t, r.Client, testFleet)["gena"]; c.ProxyErrors != 0 {
		t.Errorf("counts %+v, want no proxy error for a request the client gave up", c)
	}
}

// TestUpgradeProxied: a request for a protocol upgrade (a WebSocket) goes
// through, and the two ends then talk over the connection.
func TestUpgradeProxied(t *testing.T) {
	r := startRouter(t, shortDir(t))
	b := newBackend(t, "b", "gena", func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	io.WriteString(conn, "hi\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hi\n" {
		t.Errorf("over the upgraded connection: %q, %v", line, err)
	}
}
