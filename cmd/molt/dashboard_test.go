package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeStatusSource struct {
	mu    sync.Mutex
	st    apiStatus
	err   error
	calls int
}

func (f *fakeStatusSource) status(context.Context) (apiStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.st, f.err
}

func (f *fakeStatusSource) set(st apiStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

type fakeEventSource struct {
	mu  sync.Mutex
	evs []apiEvent // oldest first
}

func (f *fakeEventSource) recent(n int) []apiEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiEvent
	for i := len(f.evs) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, f.evs[i])
	}
	return out
}

func (f *fakeEventSource) add(e apiEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.ID = int64(len(f.evs) + 1)
	f.evs = append(f.evs, e)
}

const (
	dashCommit1 = "1111111111111111111111111111111111111111"
	dashCommit2 = "2222222222222222222222222222222222222222"
)

// rollingStatus is a fleet "shop" whose service "web" rolls out from
// generation aaaa to bbbb with healthy of wanted new instances healthy.
func dashRollingStatus(healthy, wanted int) apiStatus {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := apiStatus{GeneratedAt: now, Fleets: []apiFleet{{
		Name: "shop", Source: "https://example.com/shop.git", Branch: "main",
		Revision: "main@sha1:" + dashCommit2, Commit: dashCommit2,
		CommitURL: "https://example.com/shop/commit/" + dashCommit2, LastResult: "converged",
		Services: []apiService{{
			Name: "web", Strategy: "rolling", Replicas: wanted, Healthy: wanted,
			Desired: apiRevision{Revision: "main@sha1:" + dashCommit2, CommitURL: "https://example.com/shop/commit/" + dashCommit2, Generation: "bbbb"},
			Live:    apiRevision{Revision: "main@sha1:" + dashCommit1, CommitURL: "https://example.com/shop/commit/" + dashCommit1, Generation: "aaaa"},
			Rollout: &apiRollout{From: "aaaa", To: "bbbb", Step: "waiting for web-bbbb-1 to be healthy for 1s", Healthy: healthy, Wanted: wanted, StartedAt: now},
		}, {
			Name: "api", Strategy: "canary", Replicas: 1, Healthy: 1,
			Desired: apiRevision{Revision: "main@sha1:" + dashCommit2, Generation: "cccc"},
			Live:    apiRevision{Revision: "main@sha1:" + dashCommit1, Generation: "dddd"},
			Canary:  &apiCanary{Weight: 10, Since: now, Until: now.Add(time.Minute), Requests: 42},
			Instances: []apiInstance{
				{ID: "api-dddd-1", Generation: "dddd", Target: "process", Health: "healthy", Role: "active", Weight: 90},
				{ID: "api-cccc-1", Generation: "cccc", Target: "process", Health: "starting", Role: "canary", Weight: 10},
			},
		}},
	}}}
	web := &st.Fleets[0].Services[0]
	for i := range wanted {
		web.Instances = append(web.Instances, apiInstance{ID: fmt.Sprintf("web-aaaa-%d", i), Generation: "aaaa", Target: "process", Health: "healthy", Role: "active", AgeSeconds: 3700})
	}
	for i := range healthy {
		web.Instances = append(web.Instances, apiInstance{ID: fmt.Sprintf("web-bbbb-%d", i), Generation: "bbbb", Target: "process", Health: "healthy", Role: "new", AgeSeconds: 5})
	}
	return st
}

func newTestDashboard(t *testing.T, st *fakeStatusSource, ev *fakeEventSource, opts dashboardOptions) *dashboard {
	t.Helper()
	d, err := newDashboard(st, ev, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dashGet(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// TestDashboardPage: the page shows every fleet and service, revisions
// linked to their commits, instances grouped by generation with their
// health in words, the rollout's progress, the canary split and the
// events newest first; it is read-only and its script is the only one the
// CSP lets run.
func TestDashboardPage(t *testing.T) {
	st := &fakeStatusSource{st: dashRollingStatus(1, 3)}
	ev := &fakeEventSource{}
	ev.add(apiEvent{Time: time.Now(), Kind: "deploy", Fleet: "shop", Service: "web", Message: "first deploy"})
	ev.add(apiEvent{Time: time.Now(), Kind: "rollback", Fleet: "shop", Service: "web", Message: "second: rolled back", Reason: "unhealthy",
		PullRequest: 7, PullRequestURL: "https://example.com/shop/pull/7", Figures: map[string]float64{"errorRate": 0.25}})
	d := newTestDashboard(t, st, ev, dashboardOptions{})
	rec := dashGet(t, d, "/")
	if rec.Code != 200 {
		t.Fatalf("GET / = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`data-fleet="shop"`, `data-service="web"`, `data-service="api"`,
		`href="https://example.com/shop/commit/` + dashCommit2 + `"`,
		`href="https://example.com/shop/commit/` + dashCommit1 + `"`,
		`main@sha1:222222222222<`, // shortened in the text, full in the title
		`title="main@sha1:` + dashCommit2 + `"`,
		`data-generation="aaaa"`, `data-generation="bbbb"`,
		`class="rollout-progress" data-service="web" max="3" value="1" aria-valuetext="1 of 3 healthy"`,
		`class="health healthy"`, `>healthy</span>`, `>starting</span>`,
		`10% canary, 90% stable`, `width: 10%`, `width: 90%`,
		`href="https://example.com/shop/pull/7">#7</a>`, `errorRate 0.25`,
		`1h01m`, // an age
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The new generation is listed first, and the newest event first.
	if strings.Index(body, `data-generation="bbbb"`) > strings.Index(body, `data-generation="aaaa"`) {
		t.Error("the rollout's new generation is not listed first")
	}
	if strings.Index(body, "second: rolled back") > strings.Index(body, "first deploy") {
		t.Error("events are not newest first")
	}
	// Read-only.
	for _, bad := range []string{"<form", "<button", "<input", `method="post"`} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	// The one inline script is allowed by hash, and nothing else is.
	m := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(body, -1)
	if len(m) != 1 {
		t.Fatalf("%d scripts on the page, want 1", len(m))
	}
	sum := sha256.Sum256([]byte(m[0][1]))
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("the CSP %q does not allow the page's script", csp)
	}
	if strings.Contains(body, "http://") || strings.Contains(body, `src="`) {
		t.Error("the page loads something from elsewhere")
	}
}

// TestDashboardEscapes: a hostile service name, instance id, commit
// message and commit URL are shown as text, on the page and in the
// stream's fragments.
func TestDashboardEscapes(t *testing.T) {
	hostile := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	s := dashRollingStatus(1, 2)
	s.Fleets[0].Services[0].Name = hostile
	s.Fleets[0].Services[0].Instances[0].ID = hostile
	s.Fleets[0].CommitURL = "javascript:alert(1)"
	s.Fleets[0].LastError = hostile
	st := &fakeStatusSource{st: s}
	ev := &fakeEventSource{}
	ev.add(apiEvent{Kind: "deploy", Fleet: "shop", Message: hostile, CommitURL: `javascript:alert(2)`, Revision: "main@sha1:" + dashCommit2})
	d := newTestDashboard(t, st, ev, dashboardOptions{})
	body := dashGet(t, d, "/").Body.String()

	_, fragments := readFirstDashUpdate(t, d)
	for name, text := range map[string]string{"page": body, "fleets fragment": fragments["fleets"], "events fragment": fragments["events"]} {
		if strings.Contains(text, `alert("x")`) || strings.Contains(text, "<img") || strings.Contains(text, "javascript:") {
			t.Errorf("the %s renders hostile input as markup:\n%s", name, text)
		}
		if !strings.Contains(text, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Errorf("the %s does not show the hostile text escaped", name)
		}
	}
}

// readFirstUpdate reads a stream's first update straight from the handler.
func readFirstDashUpdate(t *testing.T, d *dashboard) (apiStatus, map[string]string) {
	t.Helper()
	srv := httptest.NewServer(d.stream())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := openDashStream(ctx, t, srv.URL+"?fragments=1")
	defer c.close()
	st := c.status(t)
	return st, c.fragments(t)
}

// dashStreamClient reads a stream event by event.
type dashStreamClient struct {
	resp *http.Response
	r    *bufio.Reader
}

func openDashStream(ctx context.Context, t *testing.T, url string) *dashStreamClient {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	return &dashStreamClient{resp: resp, r: bufio.NewReader(resp.Body)}
}

func (c *dashStreamClient) close() { c.resp.Body.Close() }

// next returns the next event's name and data, or "" and the comment.
func (c *dashStreamClient) next(t *testing.T) (string, string) {
	t.Helper()
	var name, data string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read the stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && (name != "" || data != ""):
			return name, data
		case line == "":
		case strings.HasPrefix(line, ":"):
			return "", line
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// until reads events until one named name.
func (c *dashStreamClient) until(t *testing.T, name string) string {
	t.Helper()
	for {
		if n, data := c.next(t); n == name {
			return data
		}
	}
}

func (c *dashStreamClient) status(t *testing.T) apiStatus {
	t.Helper()
	var st apiStatus
	if err := json.Unmarshal([]byte(c.until(t, "status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (c *dashStreamClient) fragments(t *testing.T) map[string]string {
	t.Helper()
	var f map[string]string
	if err := json.Unmarshal([]byte(c.until(t, "fragments")), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDashboardStreamSendsUpdatesAfterNotify: a stream sends the status
// and the events at once, and again after each notification, with the
// page's sections rendered when it asks for them.
func TestDashboardStreamSendsUpdatesAfterNotify(t *testing.T) {
	st := &fakeStatusSource{st: dashRollingStatus(1, 3)}
	ev := &fakeEventSource{}
	d := newTestDashboard(t, st, ev, dashboardOptions{})
	srv := httptest.NewServer(d.stream())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := openDashStream(ctx, t, srv.URL+"?fragments=1")
	defer c.close()

	if got := c.status(t); got.Fleets[0].Services[0].Rollout.Healthy != 1 {
		t.Fatalf("first update: %+v", got.Fleets[0].Services[0].Rollout)
	}
	if f := c.fragments(t); !strings.Contains(f["fleets"], `value="1"`) {
		t.Errorf("first fragments: %s", f["fleets"])
	}

	st.set(dashRollingStatus(2, 3))
	ev.add(apiEvent{Kind: "deploy", Fleet: "shop", Service: "web", Message: "web-bbbb-1 healthy"})
	d.notify()
	if got := c.status(t); got.Fleets[0].Services[0].Rollout.Healthy != 2 {
		t.Fatalf("after notify: %+v", got.Fleets[0].Services[0].Rollout)
	}
	var evs apiEvents
	if err := json.Unmarshal([]byte(c.until(t, "events")), &evs); err != nil || len(evs.Events) != 1 || evs.Events[0].Message != "web-bbbb-1 healthy" {
		t.Fatalf("events after notify: %+v, %v", evs, err)
	}
	if f := c.fragments(t); !strings.Contains(f["fleets"], `value="2"`) || !strings.Contains(f["events"], "web-bbbb-1 healthy") {
		t.Errorf("fragments after notify:\n%s\n%s", f["fleets"], f["events"])
	}

	// Without ?fragments=1, the stream carries the documents only.
	plain := openDashStream(ctx, t, srv.URL)
	defer plain.close()
	for range 2 {
		if name, _ := plain.next(t); name != "status" && name != "events" {
			t.Errorf("plain stream sent %q", name)
		}
	}
}

// TestDashboardStreamKeepAlive: an idle stream sends a comment.
func TestDashboardStreamKeepAlive(t *testing.T) {
	d := newTestDashboard(t, &fakeStatusSource{}, &fakeEventSource{}, dashboardOptions{KeepAlive: 20 * time.Millisecond})
	srv := httptest.NewServer(d.stream())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := openDashStream(ctx, t, srv.URL)
	defer c.close()
	for {
		if name, data := c.next(t); name == "" && data == ": keep-alive" {
			return
		}
	}
}

// TestDashboardStatusError: a status that cannot be read is said on the
// stream and on the page.
func TestDashboardStatusError(t *testing.T) {
	d := newTestDashboard(t, &fakeStatusSource{err: fmt.Errorf("list instances: boom")}, &fakeEventSource{}, dashboardOptions{})
	if body := dashGet(t, d, "/").Body.String(); !strings.Contains(body, "Status unavailable: list instances: boom") {
		t.Errorf("page: %s", body)
	}
	srv := httptest.NewServer(d.stream())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := openDashStream(ctx, t, srv.URL)
	defer c.close()
	if data := c.until(t, "error"); !strings.Contains(data, "boom") {
		t.Errorf("error event: %s", data)
	}
}

// TestDashboardSlowClientDoesNotBlockNotify: a client that never reads
// fills its connection; notify still returns at once, another client
// still gets every update, and the stuck client is disconnected after
// WriteTimeout.
func TestDashboardSlowClientDoesNotBlockNotify(t *testing.T) {
	big := dashRollingStatus(1, 3)
	big.Fleets[0].LastError = strings.Repeat("x", 1<<20) // each update is over a megabyte
	st := &fakeStatusSource{st: big}
	d := newTestDashboard(t, st, &fakeEventSource{}, dashboardOptions{WriteTimeout: 500 * time.Millisecond})
	srv := httptest.NewServer(d.stream())
	defer srv.Close()

	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /?fragments=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	dashWaitFor(t, 10*time.Second, "the slow client to join", func() bool { return d.streams() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fast := openDashStream(ctx, t, srv.URL)
	defer fast.close()
	fast.status(t)

	// Until the slow client is dropped, each notification reaches the
	// fast one, and notify never waits for either.
	deadline := time.Now().Add(30 * time.Second)
	for d.streams() == 2 {
		if time.Now().After(deadline) {
			t.Fatal("the client that does not read was never disconnected")
		}
		done := make(chan struct{})
		go func() { d.notify(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("notify blocked on a client that does not read")
		}
		fast.status(t)
	}
	// The server ended the stuck stream: what it had sent, then EOF.
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, slow); err != nil {
		t.Fatalf("the stuck stream was not ended: %v", err)
	}
	d.notify()
	fast.status(t)
}

func (d *dashboard) streams() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.clients)
}

func dashWaitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDashboardClientCap: one stream more than MaxClients is refused.
func TestDashboardClientCap(t *testing.T) {
	d := newTestDashboard(t, &fakeStatusSource{}, &fakeEventSource{}, dashboardOptions{MaxClients: 2})
	srv := httptest.NewServer(d.stream())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		c := openDashStream(ctx, t, srv.URL)
		defer c.close()
		c.status(t)
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a third stream: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestDashboardStreamEndsOnShutdown: Shutdown does not wait for open
// streams: close, registered with RegisterOnShutdown, ends them; the
// server's write timeout does not end them before.
func TestDashboardStreamEndsOnShutdown(t *testing.T) {
	d := newTestDashboard(t, &fakeStatusSource{st: dashRollingStatus(1, 2)}, &fakeEventSource{}, dashboardOptions{})
	srv := httptest.NewUnstartedServer(d.stream())
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Config.RegisterOnShutdown(d.close)
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := openDashStream(ctx, t, srv.URL)
	defer c.close()
	c.status(t)
	// Past the server's write timeout the stream still carries updates.
	time.Sleep(500 * time.Millisecond)
	d.notify()
	c.status(t)

	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := srv.Config.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown with a stream open: %v", err)
	}
	if _, err := io.ReadAll(c.r); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
}

// TestDashboardGenerations: instances are grouped by generation, the new
// one first, each labelled with its part in the rollout.
func TestDashboardGenerations(t *testing.T) {
	svc := dashRollingStatus(2, 3).Fleets[0].Services[0]
	svc.Instances = append(svc.Instances, apiInstance{ID: "web-0000-1", Generation: "0000", Role: "previous", Health: "healthy"})
	gens := dashGenerations(svc)
	var got []string
	for _, g := range gens {
		got = append(got, fmt.Sprintf("%s%v %d/%d", g.Generation, g.Labels, g.Healthy, len(g.Instances)))
	}
	want := []string{"bbbb[new] 2/2", "aaaa[serving] 3/3", "0000[previous] 1/1"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("generations: %v, want %v", got, want)
	}
}
