package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets"
)

// TestGenerationSwitchUnderLoad switches a service between generations A
// and B again and again while clients send requests: no request fails, and
// each is answered by a backend of a table that was in effect at some
// moment during the request.
func TestGenerationSwitchUnderLoad(t *testing.T) {
	r := startRouter(t, shortDir(t))
	gens := [2][]*testBackend{
		{newBackend(t, "a1", "gena", nil), newBackend(t, "a2", "gena", nil)},
		{newBackend(t, "b1", "genb", nil), newBackend(t, "b2", "genb", nil)},
	}
	genOf := map[string]int{"a1": 0, "a2": 0, "b1": 1, "b2": 1}
	listen := freeAddr(t)
	routes := func(k int64) []targets.Route { return webRoutes(listen, backends(gens[k%2]...)...) }
	mustSet(t, r.Client, testFleet, routes(0))

	// Routes k (generation k%2) may be in effect from begun >= k until
	// applied > k; a request that starts after applied == k and ends before
	// begun == k+1 can only see routes k.
	var begun, applied atomic.Int64
	const (
		switches = 40
		minReqs  = 2000
		maxReqs  = 20000
		workers  = 8
	)
	var sent, failed, narrow atomic.Int64
	applierDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(applierDone)
		for k := int64(1); k <= switches; k++ {
			begun.Store(k)
			if err := r.SetRoutes(t.Context(), testFleet, routes(k)); err != nil {
				t.Errorf("apply %d: %v", k, err)
				return
			}
			applied.Store(k)
		}
	})
	hc := newHTTPClient(t)
	for range workers {
		wg.Go(func() {
			for {
				n := sent.Add(1)
				if n > maxReqs {
					return
				}
				if n > minReqs {
					select {
					case <-applierDone:
						return
					default:
					}
				}
				lo := applied.Load()
				got, err := get(hc, "http://"+listen)
				hi := begun.Load()
				if err != nil || got.status != http.StatusOK {
					failed.Add(1)
					t.Errorf("request failed: %+v %v", got, err)
					continue
				}
				g, ok := genOf[got.body]
				if !ok {
					t.Errorf("unknown backend answered: %q", got.body)
					continue
				}
				if want := []string{"gena", "genb"}[g]; got.gen != want {
					t.Errorf("%s answered with %s %q, want %q", got.body, GenerationHeader, got.gen, want)
				}
				if lo == hi {
					narrow.Add(1)
					if int64(g) != lo%2 {
						t.Errorf("request that saw only table %d answered by %s of generation %d", lo, got.body, g)
					}
				}
			}
		})
	}
	wg.Wait()
	total := min(sent.Load(), maxReqs)
	t.Logf("%d requests across %d switches, %d within a single table, %d failed", total, switches, narrow.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
}

// TestRemovedBackendGetsNoNewRequest checks that after SetRoutes returns, a
// backend that left the table receives nothing more, even from clients
// whose connections to the router are kept alive.
func TestRemovedBackendGetsNoNewRequest(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	b := newBackend(t, "b1", "genb", nil)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, a.backend(0))

	hc := newHTTPClient(t)
	var reused atomic.Int64
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if info.Reused {
			reused.Add(1)
		}
	}}
	send := func() reply {
		t.Helper()
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", "http://"+listen, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body) // all of it, so the connection is reused
		if err != nil {
			t.Fatal(err)
		}
		return reply{status: resp.StatusCode, body: string(body), gen: resp.Header.Get(GenerationHeader)}
	}
	for range 20 {
		if got := send(); got.gen != "gena" {
			t.Fatalf("before switch: %+v", got)
		}
	}
	mustSetWeb(t, r.Client, listen, b.backend(0))
	hitsA := a.hits.Load()
	reusedBefore := reused.Load()
	for range 20 {
		if got := send(); got.gen != "genb" {
			t.Errorf("after switch: %+v, want genb", got)
		}
	}
	if n := a.hits.Load(); n != hitsA {
		t.Errorf("removed backend got %d requests after SetRoutes returned", n-hitsA)
	}
	if reused.Load() == reusedBefore {
		t.Error("no kept-alive connection was reused after the switch; the test proves less than it claims")
	}
}

func TestWeights(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	c := newBackend(t, "c1", "genc", nil) // canary
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, a.backend(90), c.backend(10))
	hc := newHTTPClient(t)
	counts := map[string]int{}
	for range 1000 {
		counts[mustGet(t, hc, "http://"+listen).body]++
	}
	if counts["c1"] < 50 || counts["c1"] > 150 || counts["a1"]+counts["c1"] != 1000 {
		t.Errorf("90/10 weights over 1000 requests gave %v", counts)
	}
}

func TestRetryOnDeadBackend(t *testing.T) {
	r := startRouter(t, shortDir(t))
	live := newBackend(t, "live", "gena", nil)
	dead := newBackend(t, "dead", "gena", nil)
	listen := freeAddr(t) // while dead holds its port (see TestCountsProxyErrors)
	dead.srv.Close()      // refuses connections from now on
	mustSetWeb(t, r.Client, listen, live.backend(0), dead.backend(0))

	hc := newHTTPClient(t)
	const n = 50
	for _, method := range []string{"GET", "HEAD", "OPTIONS"} {
		for range n {
			got, err := do(hc, method, "http://"+listen, nil)
			if err != nil || got.status != http.StatusOK {
				t.Fatalf("%s with one dead backend: %+v %v", method, got, err)
			}
		}
	}
	st, err := r.Stats(t.Context(), testFleet)
	if err != nil {
		t.Fatal(err)
	}
	c := st.Services["web"].Generations["gena"]
	if c.ProxyErrors == 0 || c.Requests != 3*n+c.ProxyErrors || c.Status2xx != 3*n {
		t.Errorf("counts after retries = %+v, want proxy errors counted and %d answered", c, 3*n)
	}

	// The dead backend failed: it is passed over, so the GETs above cost
	// one failed attempt, not one in two.
	if c.ProxyErrors > 2 {
		t.Errorf("proxy errors = %d over %d requests: the dead backend was not passed over", c.ProxyErrors, 3*n)
	}

	// A request with a body is not retried: of two POSTs in a row, one
	// goes to a backend that just died (not yet passed over) and fails.
	dead2 := newBackend(t, "dead2", "gena", nil)
	dead2.srv.Close()
	mustSetWeb(t, r.Client, listen, live.backend(0), dead2.backend(0))
	statuses := map[int]int{}
	for range 2 {
		got, err := do(hc, "POST", "http://"+listen, strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		statuses[got.status]++
	}
	if want := map[int]int{200: 1, 502: 1}; !cmp.Equal(statuses, want) {
		t.Errorf("two POSTs answered %v, want %v", statuses, want)
	}

	// Three dead backends of four (an engine gone with its instances):
	// every GET is answered, retried over the backends not yet tried.
	var deads []targets.Backend
	for i := range 3 {
		d := newBackend(t, fmt.Sprintf("gone%d", i), "gena", nil)
		d.srv.Close()
		deads = append(deads, d.backend(0))
	}
	mustSetWeb(t, r.Client, listen, append(deads, live.backend(0))...)
	for range n {
		if got, err := get(hc, "http://"+listen); err != nil || got.status != http.StatusOK {
			t.Fatalf("GET with three dead backends of four: %+v %v", got, err)
		}
	}

	// With every backend dead, a GET fails with 502.
	live.srv.Close()
	got, err := get(hc, "http://"+listen)
	if err != nil || got.status != http.StatusBadGateway {
		t.Errorf("GET with no backend alive: %+v %v, want 502", got, err)
	}
}

func TestNoBackend(t *testing.T) {
	r := startRouter(t, shortDir(t))
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen)
	got := mustGet(t, newHTTPClient(t), "http://"+listen)
	if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "no healthy instance for web") {
		t.Errorf("route without backends answered %+v, want 503 no healthy instance for web", got)
	}
	st, err := r.Stats(t.Context(), testFleet)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Services["web"].NoInstance; n != 1 {
		t.Errorf("noInstance = %d, want 1", n)
	}
}

func TestStatsPerGeneration(t *testing.T) {
	r := startRouter(t, shortDir(t))
	byQuery := func(w http.ResponseWriter, req *http.Request) {
		code, _ := strconv.Atoi(req.URL.Query().Get("status"))
		if code == http.StatusMovedPermanently {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
	}
	a := newBackend(t, "a1", "gena", byQuery)
	b := newBackend(t, "b1", "genb", byQuery)
	listen := freeAddr(t)
	hc := newHTTPClient(t)
	send := func(statuses ...int) {
		for _, code := range statuses {
			got := mustGet(t, hc, fmt.Sprintf("http://%s/?status=%d", listen, code))
			if got.status != code {
				t.Fatalf("asked for %d, got %+v", code, got)
			}
		}
	}
	mustSetWeb(t, r.Client, listen, a.backend(0))
	send(200, 200, 200, 301, 404)
	mustSetWeb(t, r.Client, listen, b.backend(0))
	send(200, 500, 503)

	st, err := r.Stats(t.Context(), testFleet)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Counts{
		"gena": {Requests: 5, Status2xx: 3, Status3xx: 1, Status4xx: 1},
		"genb": {Requests: 3, Status2xx: 1, Status5xx: 2},
	}
	if diff := cmp.Diff(want, st.Services["web"].Generations, ignoreLatency); diff != "" {
		t.Errorf("counts per generation (-want +got):\n%s", diff)
	}
	// Every response is in the latency histogram, since the start.
	for gen, c := range st.Services["web"].Generations {
		if c.Latency.Total() != want[gen].Requests || c.LatencySum <= 0 || len(c.Latency.Bounds) != len(LatencyBounds()) {
			t.Errorf("%s latency = %+v (sum %s), want %d responses", gen, c.Latency, c.LatencySum, want[gen].Requests)
		}
	}
	if st.Started.IsZero() {
		t.Error("stats without a start time")
	}
	if f := st.Services["web"].Generations["genb"].Failures(); f != 2 {
		t.Errorf("genb failures = %d, want 2", f)
	}
}

func TestForwardingHeaders(t *testing.T) {
	r := startRouter(t, shortDir(t))
	echo := newBackend(t, "echo", "gena", func(w http.ResponseWriter, req *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"host":  req.Host,
			"xff":   req.Header.Get("X-Forwarded-For"),
			"xfh":   req.Header.Get("X-Forwarded-Host"),
			"xfp":   req.Header.Get("X-Forwarded-Proto"),
			"path":  req.URL.RequestURI(),
			"agent": req.Header.Get("User-Agent"),
		})
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, echo.backend(0))
	req, err := http.NewRequest("GET", "http://"+listen+"/a/b?c=d", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // a client may not forge it
	req.Header.Set("User-Agent", "molt-test")
	resp, err := newHTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"host": "shop.example", "xff": "127.0.0.1", "xfh": "shop.example", "xfp": "http",
		"path": "/a/b?c=d", "agent": "molt-test",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request seen by the backend (-want +got):\n%s", diff)
	}
	if g := resp.Header.Get(GenerationHeader); g != "gena" {
		t.Errorf("%s = %q, want gena", GenerationHeader, g)
	}
}
