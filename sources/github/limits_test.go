package github

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// gated serves the receiver behind a gate on /hooks/github, and an
// unwrapped /healthz, on a real listener (deadlines need a connection).
func gated(t *testing.T, l Limits) (*httptest.Server, *Gate, *calls) {
	t.Helper()
	g, err := NewGate(l)
	if err != nil {
		t.Fatal(err)
	}
	c := &calls{}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/github", g.Wrap(newTestReceiver(t, testOptions(c))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, g, c
}

// slowDelivery opens a connection and sends the headers of a push that
// claims length bytes, and no body yet; the connection is closed at the
// end of the test.
func slowDelivery(t *testing.T, addr string, length int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: slow\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: %d\r\n\r\n{", length)
	return c
}

// postGated sends one delivery and returns the status and the Retry-After.
func postGated(t *testing.T, srv *httptest.Server, d delivery) (int, string) {
	t.Helper()
	req := d.request()
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "http", strings.TrimPrefix(srv.URL, "http://")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func healthy(t *testing.T, srv *httptest.Server) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz answered %d while the webhooks were at their limits", resp.StatusCode)
	}
}

// TestGateRefusesPastMaxRequests: past MaxRequests webhook requests at
// once, the next is answered 503 with Retry-After at once; /healthz,
// outside the gate, still answers; once the slow ones are gone, a
// delivery is accepted again.
func TestGateRefusesPastMaxRequests(t *testing.T) {
	srv, g, c := gated(t, Limits{MaxRequests: 3, RetryAfter: 7 * time.Second})
	addr := strings.TrimPrefix(srv.URL, "http://")
	var slow []net.Conn
	for range 3 {
		slow = append(slow, slowDelivery(t, addr, 5000))
	}
	targetstest.Eventually(t, 10*time.Second, "three requests in the gate", func() bool { return g.Counts().Requests == 3 })
	push := delivery{event: "push", body: payload(t, "push.with-new-branch.json")}
	if code, after := postGated(t, srv, push); code != 503 || after != "7" {
		t.Errorf("a fourth request answered %d, Retry-After %q; want 503, 7", code, after)
	}
	if n := g.Counts().RefusedRequests; n != 1 {
		t.Errorf("RefusedRequests = %d, want 1", n)
	}
	healthy(t, srv)
	for _, s := range slow {
		s.Close()
	}
	targetstest.Eventually(t, 10*time.Second, "the slow requests gone", func() bool { return g.Counts().Requests == 0 })
	if code, _ := postGated(t, srv, push); code != 202 {
		t.Errorf("a delivery after the slow ones answered %d, want 202", code)
	}
	if p, _ := c.get(); len(p) != 1 {
		t.Errorf("%d pushes acted on, want 1", len(p))
	}
}

// TestGateHoldsWhatWasSent: slow requests that claim a large body hold
// budget for what they sent (a step each), not for what they claim, so
// that many of them leave room for a real delivery; a body that would
// take the total past MaxInflight is refused 503; all of it is given
// back when the requests end.
func TestGateHoldsWhatWasSent(t *testing.T) {
	srv, g, c := gated(t, Limits{MaxInflight: 10 * reserveStep})
	addr := strings.TrimPrefix(srv.URL, "http://")
	var slow []net.Conn
	for range 8 {
		slow = append(slow, slowDelivery(t, addr, 1_000_000))
	}
	targetstest.Eventually(t, 10*time.Second, "eight slow requests in the gate", func() bool { return g.Counts().Requests == 8 })
	if b := g.Counts().Bytes; b != 8*reserveStep {
		t.Errorf("eight slow requests of a claimed 1 MB hold %d bytes, want %d (one step each)", b, 8*reserveStep)
	}
	push := delivery{event: "push", body: payload(t, "push.with-new-branch.json")}
	if code, _ := postGated(t, srv, push); code != 202 {
		t.Errorf("a delivery beside the slow ones answered %d, want 202", code)
	}
	// A large body, sent at once, runs out of budget while it is read.
	big := delivery{event: "push", body: bytes.Repeat([]byte(" "), 5*reserveStep)}
	if code, after := postGated(t, srv, big); code != 503 || after == "" {
		t.Errorf("a body past the budget answered %d, Retry-After %q; want 503 and a Retry-After", code, after)
	}
	if n := g.Counts().RefusedBytes; n == 0 {
		t.Error("RefusedBytes = 0 after a body past the budget")
	}
	healthy(t, srv)
	for _, s := range slow {
		s.Close()
	}
	targetstest.Eventually(t, 10*time.Second, "the budget given back", func() bool {
		cs := g.Counts()
		return cs.Requests == 0 && cs.Bytes == 0
	})
	if p, _ := c.get(); len(p) != 1 {
		t.Errorf("%d pushes acted on, want 1", len(p))
	}
}

// TestGateCutsSlowBodies: a body that has not arrived within BodyTimeout
// is answered 408, counted, and its connection closed.
func TestGateCutsSlowBodies(t *testing.T) {
	srv, g, _ := gated(t, Limits{BodyTimeout: 300 * time.Millisecond})
	conn := slowDelivery(t, strings.TrimPrefix(srv.URL, "http://"), 5000)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a slow body answered %d, want 408", resp.StatusCode)
	}
	if n := g.Counts().TimedOut; n != 1 {
		t.Errorf("TimedOut = %d, want 1", n)
	}
	healthy(t, srv)
}

// TestGateWithoutLength: a chunked body (no Content-Length) is admitted
// and reserved step by step like any other.
func TestGateWithoutLength(t *testing.T) {
	srv, g, c := gated(t, Limits{MaxInflight: 4 * reserveStep})
	body := payload(t, "push.with-new-branch.json")
	req := delivery{event: "push", body: body}.request()
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "http", strings.TrimPrefix(srv.URL, "http://")
	req.Body = io.NopCloser(bytes.NewReader(body)) // no length known: chunked
	req.ContentLength = -1
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Errorf("a chunked delivery answered %d, want 202", resp.StatusCode)
	}
	if p, _ := c.get(); len(p) != 1 {
		t.Errorf("%d pushes acted on, want 1", len(p))
	}
	if b := g.Counts().Bytes; b != 0 {
		t.Errorf("%d bytes still reserved", b)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{MaxRequests: -1}, {MaxInflight: -1}, {BodyTimeout: -1}, {RetryAfter: -1}} {
		if _, err := NewGate(l); err == nil {
			t.Errorf("NewGate(%+v) accepted a negative limit", l)
		}
	}
}
