package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/router"
	"github.com/molt-dev/molt/targets/router/routertest"
)

// The router comparison: molt's router and nginx, each a reverse proxy in
// front of the same three hello backends, loaded by wrk in turn.
const (
	routerWrkSteady = 2 * time.Second // each steady wrk run
	// routerSteadyRounds is how many steady runs of each side there are
	// per round of the whole run: one wrk run on a 2-core VM can be 40 %
	// off the next, so the medians need more of them than other figures.
	routerSteadyRounds = 3
	routerWrkSwitch    = 3 * time.Second // the wrk run during which the table switches, and the steady one before it
	routerSwitchAfter  = 1 * time.Second // when, in that run, the switch starts
	routerFleet        = "bench"
	routerHellosPerGen = 3
)

// benchRouter measures the router's throughput and latency against nginx
// at 16 and 64 connections, its allocations per request (Go benchmark)
// against a direct request, and a blue-green switch under load: the failed
// requests and the p99 during the switch over the steady p99.
func benchRouter(h *H) error {
	wrk, err := h.Tool("wrk")
	if err != nil {
		return err
	}
	nginxBin, err := h.Tool("nginx")
	if err != nil {
		return err
	}
	var ps routerProcs
	defer ps.stopAll()

	blue, err := routerStartHellos(h, &ps, "blue")
	if err != nil {
		return err
	}
	r, err := routerStart(h, &ps, blue)
	if err != nil {
		return err
	}
	nginxURL, err := routerStartNginx(h, &ps, nginxBin, blue.addrs())
	if err != nil {
		return err
	}

	run := func(url string, conns int) func() (Metrics, error) {
		return func() (Metrics, error) { return routerWrk(wrk, url, conns, routerWrkSteady) }
	}
	// Warm both up: connection pools, the Go runtime's heap.
	for _, url := range []string{r.url, nginxURL} {
		if _, err := routerWrk(wrk, url, 64, time.Second); err != nil {
			return err
		}
	}
	steady := map[int][2]map[string]Samples{}
	steadyRounds := routerSteadyRounds * h.Rounds
	for _, conns := range []int{16, 64} {
		h.Logf("router: wrk at %d connections, router and nginx alternating, %d rounds", conns, steadyRounds)
		rs, ns, err := h.Alternate(steadyRounds, run(r.url, conns), run(nginxURL, conns))
		if err != nil {
			return err
		}
		steady[conns] = [2]map[string]Samples{rs, ns}
	}
	const comparator = "nginx 1.22 reverse proxy, same 3 backends"
	for _, c := range []struct {
		conns  int
		before string
	}{{16, "11.8k req/s"}, {64, "11.7k req/s"}} {
		rs, ns := steady[c.conns][0], steady[c.conns][1]
		h.Add(Row{Figure: fmt.Sprintf("router throughput, %d connections (wrk)", c.conns), Unit: "req/s",
			Molt: rs["rps"], Comparator: comparator, Comp: ns["rps"], Higher: true, Goal: 0.9, Before: c.before})
	}
	h.Add(Row{Figure: "router p50 at 64 connections", Unit: "ms", Molt: steady[64][0]["p50"],
		Comparator: comparator, Comp: steady[64][1]["p50"], Before: "5.1 ms"})
	h.Add(Row{Figure: "router p99 at 64 connections", Unit: "ms", Molt: steady[64][0]["p99"],
		Comparator: comparator, Comp: steady[64][1]["p99"], Goal: 1.2, Before: "22.6 ms"})
	h.Add(Row{Figure: "router p99 at 16 connections", Unit: "ms", Molt: steady[16][0]["p99"],
		Comparator: comparator, Comp: steady[16][1]["p99"], Goal: 1.2})
	var failed Samples
	for _, m := range []map[string]Samples{steady[16][0], steady[64][0]} {
		failed = append(failed, m["failed"]...)
	}
	if n := failed.Sum(); n > 0 {
		h.Note("router: %.0f failed requests (non-2xx or socket errors) in the steady runs", n)
	}

	// The blue-green switch, under load at 64 connections: the table is
	// set to three new backends, the old ones drained and stopped.
	// Each round pairs a steady run with the run of the switch, so that
	// the spike is measured against the machine of the moment.
	h.Logf("router: blue-green switch under load, %d rounds", h.Rounds)
	var failures, spikes Samples
	cur := blue
	for i := range h.Rounds {
		next, err := routerStartHellos(h, &ps, fmt.Sprintf("green%d", i))
		if err != nil {
			return err
		}
		calm, err := routerWrk(wrk, r.url, 64, routerWrkSwitch)
		if err != nil {
			return err
		}
		m, err := r.switchUnderLoad(wrk, cur, next, &ps)
		if err != nil {
			return err
		}
		failures = append(failures, m["failed"])
		spikes = append(spikes, m["p99"]/calm["p99"])
		cur = next
	}
	h.Add(Row{Figure: "failed requests during a blue-green switch (wrk, 64 connections)", Unit: "requests",
		Molt: failures, Comparator: "goal: 0"})
	h.Add(Row{Figure: "p99 during a blue-green switch over steady p99", Unit: "×", Molt: spikes,
		Comparator: "the router's steady p99 just before, 64 connections", Goal: 2, Before: "—"})

	h.Logf("router: Go benchmark BenchmarkProxy")
	gb, err := h.GoBench("targets/router", "BenchmarkProxy", "20000x", 3)
	if err != nil {
		return err
	}
	h.Add(Row{Figure: "router allocations per request (Go benchmark)", Unit: "allocs",
		Molt: gb["router"]["allocs/op"], Comparator: "the same GET sent directly to the backend",
		Comp: gb["direct"]["allocs/op"], Before: "156"})

	h.Note("router: molt's router (`molt router --state-dir`, one route set over its admin socket) and nginx %s "+
		"(worker_processes auto, upstream with `keepalive 64`, proxy_http_version 1.1, `proxy_set_header Connection \"\"`, "+
		"Host and X-Forwarded-For/Host/Proto set as the router sets them, access_log off), "+
		"each in front of the same %d hello backends (testdata/apps/hello, GET /), round robin; "+
		"`wrk -t2 -cN -d%s --latency` against each in turn, after a 1 s warm-up, %d rounds (the steady rows: "+
		"one run varies by up to 40 %% from the next here, more than other figures); failed requests are wrk's "+
		"non-2xx-or-3xx responses plus its socket errors (connect, read, write, timeout).",
		routerNginxVersion(nginxBin), routerHellosPerGen, routerWrkSteady, steadyRounds)
	h.Note("router blue-green switch: during a `wrk -t2 -c64 -d%s --latency` run, %s in, the route is set to 3 new "+
		"backends (a new generation), the old ones drained (`Drain`) and then stopped (SIGTERM); one switch per round. "+
		"The spike is that run's p99 over the p99 of a steady run of the same length just before it. "+
		"The failed-requests row must be 0 (goal: 0): the harness's goals are ratios or upper bounds, so its "+
		"verdict is left blank and the count is in the molt column.", routerWrkSwitch, routerSwitchAfter)
	h.Note("router allocations: `go test -bench '^BenchmarkProxy$' -benchmem -benchtime 20000x -count 3 ./targets/router` " +
		"(a Go client with keep-alive, 8 goroutines per core, one backend); allocs/op of the router sub-benchmark " +
		"against the direct one (both count the client's and the backend's allocations, which run in the same process).")
	return nil
}

// routerProcs are the processes a comparison started; stopAll ends them all.
type routerProcs struct{ cmds []*exec.Cmd }

// start starts cmd (its output to log) and owns it.
func (p *routerProcs) start(cmd *exec.Cmd, log string) error {
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Start()
	f.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	p.cmds = append(p.cmds, cmd)
	return nil
}

// stop ends cmd: SIGTERM, then SIGKILL after 5 s.
func (p *routerProcs) stop(cmd *exec.Cmd) {
	for i, c := range p.cmds {
		if c == cmd {
			p.cmds = append(p.cmds[:i], p.cmds[i+1:]...)
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *routerProcs) stopAll() {
	for len(p.cmds) > 0 {
		p.stop(p.cmds[len(p.cmds)-1])
	}
}

// routerHellos are backends of one generation.
type routerHellos struct {
	gen  string
	cmds []*exec.Cmd
	bs   []targets.Backend
}

func (hs routerHellos) addrs() []string {
	out := make([]string, len(hs.bs))
	for i, b := range hs.bs {
		out[i] = b.Addr
	}
	return out
}

// routerStartHellos starts routerHellosPerGen hello backends of generation gen and waits
// until each answers.
func routerStartHellos(h *H, ps *routerProcs, gen string) (routerHellos, error) {
	hs := routerHellos{gen: gen}
	for i := range routerHellosPerGen {
		addr, err := freeAddr()
		if err != nil {
			return hs, err
		}
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(h.Hello)
		cmd.Env = append(os.Environ(), "PORT="+port, "HOST=127.0.0.1", "VERSION="+gen)
		if err := ps.start(cmd, filepath.Join(h.Tmp, fmt.Sprintf("hello-%s-%d.log", gen, i))); err != nil {
			return hs, err
		}
		hs.cmds = append(hs.cmds, cmd)
		hs.bs = append(hs.bs, targets.Backend{Instance: fmt.Sprintf("%s-%d", gen, i), Addr: addr, Generation: gen})
	}
	for _, addr := range hs.addrs() {
		if err := routerWaitHTTP("http://" + addr + "/healthz"); err != nil {
			return hs, fmt.Errorf("hello backend: %w", err)
		}
	}
	return hs, nil
}

// routerWaitHTTP waits up to 10 s for url to answer 200.
func routerWaitHTTP(url string) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routerUnderTest is a `molt router` with one route to the backends.
type routerUnderTest struct {
	client *router.Client
	listen string
	url    string
}

// routerStart runs `molt router` on a state directory of its own and
// routes a service to backends, as molt apply would over the admin socket.
func routerStart(h *H, ps *routerProcs, backends routerHellos) (*routerUnderTest, error) {
	state := filepath.Join(h.Tmp, "router-state")
	cmd := exec.Command(h.Molt, "router", "--state-dir", state, "--log-level", "warn")
	if err := ps.start(cmd, filepath.Join(h.Tmp, "router.log")); err != nil {
		return nil, err
	}
	c := router.NewClient(state)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := c.Ping(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(h.Tmp, "router.log"))
			return nil, fmt.Errorf("molt router does not answer: %w\n%s", err, tail(log, 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &routerUnderTest{client: c, listen: listen, url: "http://" + listen + "/"}
	if err := r.route(ctx, backends); err != nil {
		return nil, err
	}
	if err := routerWaitHTTP(r.url); err != nil {
		return nil, fmt.Errorf("molt router: %w", err)
	}
	return r, nil
}

func (r *routerUnderTest) route(ctx context.Context, hs routerHellos) error {
	return r.client.SetRoutes(ctx, routerFleet, []targets.Route{{Service: "web", Listen: r.listen, Backends: hs.bs}})
}

// switchUnderLoad runs wrk at 64 connections and, routerSwitchAfter in, sets the
// route to next, drains from and stops its backends.
func (r *routerUnderTest) switchUnderLoad(wrk string, from, next routerHellos, ps *routerProcs) (Metrics, error) {
	type result struct {
		m   Metrics
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := routerWrk(wrk, r.url, 64, routerWrkSwitch)
		done <- result{m, err}
	}()
	time.Sleep(routerSwitchAfter)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.route(ctx, next)
	if err == nil {
		err = r.client.Drain(ctx, from.addrs())
	}
	for _, cmd := range from.cmds {
		ps.stop(cmd)
	}
	res := <-done
	if err != nil {
		return nil, fmt.Errorf("blue-green switch: %w", err)
	}
	return res.m, res.err
}

// routerStartNginx runs nginx in the foreground as a keep-alive reverse proxy to
// backends and returns its URL.
func routerStartNginx(h *H, ps *routerProcs, bin string, backends []string) (string, error) {
	dir := filepath.Join(h.Tmp, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	listen, err := freeAddr()
	if err != nil {
		return "", err
	}
	cmd, err := routertest.Nginx{Dir: dir, Listen: listen, Backends: backends, Keepalive: 64}.Command(bin)
	if err != nil {
		return "", err
	}
	if err := ps.start(cmd, filepath.Join(dir, "stdout.log")); err != nil {
		return "", err
	}
	url := "http://" + listen + "/"
	if err := routerWaitHTTP(url); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return "", fmt.Errorf("nginx: %w\n%s", err, tail(log, 2000))
	}
	return url, nil
}

func routerNginxVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), "nginx/"); ok {
		return v
	}
	return "(unknown version)"
}

// routerWrk runs wrk with two threads and conns connections for d and returns
// its figures: rps (requests/s), p50 and p99 (ms), and failed (non-2xx or
// 3xx responses plus socket errors).
func routerWrk(wrk, url string, conns int, d time.Duration) (Metrics, error) {
	m, err := Run("", nil, wrk, "-t2", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url)
	if err != nil {
		return nil, err
	}
	return routerParseWrk(string(m.Out))
}

var (
	routerWrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	routerWrkPercent = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	routerWrkNon2xx  = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+([0-9]+)`)
	routerWrkSocket  = regexp.MustCompile(`(?m)^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
)

// routerParseWrk reads the figures of wrk --latency's output.
func routerParseWrk(out string) (Metrics, error) {
	m := Metrics{"failed": 0}
	rps := routerWrkRPS.FindStringSubmatch(out)
	if rps == nil {
		return nil, fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	m["rps"], _ = strconv.ParseFloat(rps[1], 64)
	for _, p := range routerWrkPercent.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		m["p"+p[1]] = v
	}
	if _, ok := m["p99"]; !ok {
		return nil, errors.New("no latency distribution in wrk's output (--latency):\n" + out)
	}
	if n := routerWrkNon2xx.FindStringSubmatch(out); n != nil {
		v, _ := strconv.ParseFloat(n[1], 64)
		m["failed"] += v
	}
	if s := routerWrkSocket.FindStringSubmatch(out); s != nil {
		for _, x := range s[1:] {
			v, _ := strconv.ParseFloat(x, 64)
			m["failed"] += v
		}
	}
	return m, nil
}
