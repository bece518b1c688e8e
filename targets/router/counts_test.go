package router

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets"
)

// The counts interface as the reconciler declares it.
var _ interface {
	Counts(ctx context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error)
} = (*Client)(nil)

// withClock makes the router place attempts in its windowed counts by
// clock.
func withClock(clock *fakeClock) func(*Options) {
	return func(o *Options) { o.clock = clock.Now }
}

// mustCounts returns the counts of fleet since since, and from.
func mustCounts(t *testing.T, c *Client, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time) {
	t.Helper()
	counts, from, err := c.Counts(t.Context(), fleet, since)
	if err != nil {
		t.Fatalf("counts of %s since %v: %v", fleet, since, err)
	}
	return counts, from
}

// requests returns the requests counted by generation in counts of web.
func requests(counts map[string]map[string]targets.Counts) map[string]int64 {
	out := map[string]int64{}
	for gen, c := range counts["web"] {
		out[gen] = c.Requests
	}
	return out
}

// sendN sends n GETs to url from workers goroutines and returns the
// statuses answered.
func sendN(t *testing.T, hc *http.Client, url string, n, workers int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for range jobs {
				got, err := get(hc, url)
				mu.Lock()
				if err != nil {
					t.Errorf("GET %s: %v", url, err)
				} else {
					statuses[got.status]++
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return statuses
}

func TestCountsWindow(t *testing.T) {
	clock := newFakeClock(t0.Add(2 * time.Second)) // the router starts inside a slot
	r := startRouter(t, shortDir(t), withClock(clock))
	a := newBackend(t, "a1", "gena", nil)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, a.backend(0))
	hc := newHTTPClient(t)
	url := "http://" + listen + "/"

	sendN(t, hc, url, 4, 1) // in the router's first slot, t0
	clock.Advance(slotWidth)
	t1 := clock.Now() // t0 + 7 s, in the slot of t0 + 5 s
	sendN(t, hc, url, 3, 1)
	clock.Advance(slotWidth)
	sendN(t, hc, url, 2, 1) // t0 + 10 s

	for _, tc := range []struct {
		name     string
		since    time.Time
		requests int64
		from     time.Time
	}{
		{"since the second slot", t1, 5, t0.Add(slotWidth)},
		{"since inside the second slot", t0.Add(9 * time.Second), 5, t0.Add(slotWidth)},
		{"since the third", t0.Add(10 * time.Second), 2, t0.Add(10 * time.Second)},
		{"since the start", t0, 9, t0},
		{"since before the start", t0.Add(-24 * time.Hour), 9, t0},
		{"since the zero time", time.Time{}, 9, t0},
		{"since after now", t0.Add(time.Minute), 0, t0.Add(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counts, from := mustCounts(t, r.Client, testFleet, tc.since)
			if !from.Equal(tc.from) {
				t.Errorf("from = %v, want %v", from, tc.from)
			}
			if got := requests(counts); !cmp.Equal(got, map[string]int64{"gena": tc.requests}) {
				t.Errorf("requests %v, want gena: %d", got, tc.requests)
			}
			c := counts["web"]["gena"]
			if c.Latency.Total() != tc.requests || c.Failures() != 0 {
				t.Errorf("counts %+v: want %d latencies and no failure", c, tc.requests)
			}
			if !cmp.Equal(c.Latency.Bounds, LatencyBounds()) {
				t.Errorf("latency bounds %v, want %v", c.Latency.Bounds, LatencyBounds())
			}
		})
	}

	// Two hours on, the first slots are out of the history.
	clock.Advance(2 * time.Hour)
	sendN(t, hc, url, 1, 1)
	counts, from := mustCounts(t, r.Client, testFleet, t0)
	if got := requests(counts); !cmp.Equal(got, map[string]int64{"gena": 1}) {
		t.Errorf("requests over the history %v, want gena: 1", got)
	}
	if span := clock.Now().Sub(from); !from.After(t0) || span < History || span > History+chunkSlots*slotWidth {
		t.Errorf("from = %v, %v before now: want the start of the history (%v to %v back)", from, span, History, History+chunkSlots*slotWidth)
	}
	// The totals since start keep everything.
	if got := webCounts(t, r.Client, testFleet)["gena"].Requests; got != 10 {
		t.Errorf("requests since start %d, want 10", got)
	}
}

// TestCountsApart counts two generations of one service apart, and two
// fleets' services of the same name apart.
func TestCountsApart(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a1 := newBackend(t, "a1", "g1", nil)
	a2 := newBackend(t, "a2", "g2", nil)
	b1 := newBackend(t, "b1", "g1", nil)
	alphaWeb, betaWeb := freeAddr(t), freeAddr(t)
	since := time.Now()
	mustSet(t, r.Client, "alpha", webRoutes(alphaWeb, a1.backend(1), a2.backend(2)))
	mustSet(t, r.Client, "beta", webRoutes(betaWeb, b1.backend(0)))

	hc := newHTTPClient(t)
	sendN(t, hc, "http://"+alphaWeb+"/", 30, 1)
	sendN(t, hc, "http://"+betaWeb+"/", 7, 1)

	alpha, _ := mustCounts(t, r.Client, "alpha", since)
	if got, want := requests(alpha), map[string]int64{"g1": 10, "g2": 20}; !cmp.Equal(got, want) {
		t.Errorf("alpha's web requests %v, want %v", got, want)
	}
	beta, _ := mustCounts(t, r.Client, "beta", since)
	if got, want := requests(beta), map[string]int64{"g1": 7}; !cmp.Equal(got, want) {
		t.Errorf("beta's web requests %v, want %v", got, want)
	}
	if len(alpha) != 1 || len(beta) != 1 {
		t.Errorf("services counted: alpha %v, beta %v; want web only", alpha, beta)
	}
	none, _ := mustCounts(t, r.Client, "gamma", since)
	if none == nil || len(none) != 0 {
		t.Errorf("counts of a fleet without routes = %v, want an empty map", none)
	}
}

// TestCountsErrorRateAndLatency sends a few hundred requests to three
// generations of the demo app: one healthy, one answering 500 to a
// quarter of its requests, one 30 ms slower.
func TestCountsErrorRateAndLatency(t *testing.T) {
	r := startRouter(t, shortDir(t))
	good := startHello(t, "good")
	flaky := startHello(t, "flaky", "ERROR_RATE=0.25")
	slow := startHello(t, "slow", "LATENCY=30ms")
	listen := freeAddr(t)
	since := time.Now()
	mustSetWeb(t, r.Client, listen,
		targets.Backend{Instance: "good-1", Addr: good.addr, Generation: "good"},
		targets.Backend{Instance: "flaky-1", Addr: flaky.addr, Generation: "flaky"},
		targets.Backend{Instance: "slow-1", Addr: slow.addr, Generation: "slow"})

	const n = 600
	statuses := sendN(t, newHTTPClient(t), "http://"+listen+"/", n, 6)
	counts, _ := mustCounts(t, r.Client, testFleet, since)
	web := counts["web"]
	if got, want := requests(counts), map[string]int64{"good": n / 3, "flaky": n / 3, "slow": n / 3}; !cmp.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	if got := web["flaky"].Status5xx; int(got) != statuses[http.StatusInternalServerError] {
		t.Errorf("flaky 5xx %d, but clients got %d", got, statuses[http.StatusInternalServerError])
	}
	for gen, want := range map[string]float64{"good": 0, "flaky": 0.25, "slow": 0} {
		if got := web[gen].ErrorRate(); got < want-0.05 || got > want+0.05 {
			t.Errorf("%s error rate %.3f, want %.2f ± 0.05 (%+v)", gen, got, want, web[gen])
		}
	}
	for gen, c := range web {
		if c.Latency.Total() != c.Requests || c.ProxyErrors != 0 {
			t.Errorf("%s: %d latencies for %d requests, %d proxy errors", gen, c.Latency.Total(), c.Requests, c.ProxyErrors)
		}
	}
	fast99, slow50, slow99 := web["good"].Latency.Quantile(0.99), web["slow"].Latency.Quantile(0.5), web["slow"].Latency.Quantile(0.99)
	t.Logf("p99 good %v, p50 slow %v, p99 slow %v", fast99, slow50, slow99)
	if slow50 < 30*time.Millisecond || slow99 <= fast99 {
		t.Errorf("slow p50 %v, p99 %v; good p99 %v: want slow at least 30ms and above good", slow50, slow99, fast99)
	}
}

func TestCountsProxyErrors(t *testing.T) {
	r := startRouter(t, shortDir(t))
	dead := newBackend(t, "dead", "gend", nil)
	// The listen address is taken while the dead backend still holds its
	// port: taken after, it could be that very port, and the router
	// would forward to itself.
	listen := freeAddr(t)
	dead.srv.Close() // refuses connections from now on
	since := time.Now()
	mustSetWeb(t, r.Client, listen, dead.backend(0))

	hc := newHTTPClient(t)
	const n = 5
	for range n {
		got, err := do(hc, http.MethodPost, "http://"+listen+"/", strings.NewReader("x"))
		if err != nil || got.status != http.StatusBadGateway {
			t.Fatalf("POST to a dead backend: %+v, %v; want 502", got, err)
		}
	}
	sendN(t, hc, "http://"+listen+"/", n, 1) // GETs: no other backend to retry on
	counts, _ := mustCounts(t, r.Client, testFleet, since)
	c := counts["web"]["gend"]
	if c.Requests != 2*n || c.ProxyErrors != 2*n || c.Status5xx != 0 || c.Latency.Total() != 0 || c.ErrorRate() != 1 {
		t.Errorf("counts %+v, want %d requests, all proxy errors, no latency", c, 2*n)
	}
}

// TestCountsAdmin reads GET /fleets/FLEET/counts as JSON.
func TestCountsAdmin(t *testing.T) {
	clock := newFakeClock(t0)
	s, err := NewServer(Options{StateDir: shortDir(t), Logger: testLogger(t), clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tbl := Table{Fleets: map[string][]targets.Route{"alpha": {{
		Service: "web", Listen: "127.0.0.1:40000",
		Backends: []targets.Backend{{Instance: "i1", Addr: "127.0.0.1:40001", Generation: "g1"}},
	}}}}
	c := compile(tbl, s.upstreams, s.stats)
	s.current.Store(c)
	gen := c.byListen["127.0.0.1:40000"].backends[0].gen
	record(gen, clock.Now(), 503, 2*time.Millisecond)
	record(gen, clock.Now(), 0, 0)
	clock.Advance(time.Minute)
	record(gen, clock.Now(), 200, 40*time.Millisecond)
	h := s.adminHandler()

	lat := make([]int64, latencyBuckets)
	lat[1], lat[7] = 1, 1
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", fmt.Sprintf(`{"from":"2030-01-01T00:00:00Z","services":{"web":{"g1":{"requests":3,"5xx":1,"proxyErrors":1,"latency":{"bounds":%s,"counts":%s}}}}}`,
			jsonOf(t, LatencyBounds()), jsonOf(t, lat))},
		{"?since=2030-01-01T00:00:59.5Z", `{"from":"2030-01-01T00:00:55Z","services":{"web":{"g1":{"requests":1,"5xx":0,"proxyErrors":0,"latency":{"bounds":` +
			jsonOf(t, LatencyBounds()) + `,"counts":[0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0]}}}}}`},
	} {
		rec := adminDo(t, h, http.MethodGet, "/fleets/alpha/counts"+tc.query, "")
		if rec.Code != http.StatusOK {
			t.Errorf("counts%s: status %d %s", tc.query, rec.Code, rec.Body)
			continue
		}
		if diff := cmp.Diff(oneJSON(t, tc.want), oneJSON(t, rec.Body.String())); diff != "" {
			t.Errorf("counts%s (-want +got):\n%s", tc.query, diff)
		}
	}
	rec := adminDo(t, h, http.MethodGet, "/fleets/alpha/counts?since=yesterday", "")
	if msg, _ := oneJSON(t, rec.Body.String())["error"].(string); rec.Code != http.StatusBadRequest || !strings.Contains(msg, "since") {
		t.Errorf("counts?since=yesterday: status %d, %q; want 400 about since", rec.Code, msg)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
