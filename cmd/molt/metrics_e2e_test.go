package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// scrape is one read of /metrics: the value of every series, by its
// family name and labels.
type scrape struct {
	raw    []byte
	series []scraped
}

type scraped struct {
	name   string
	labels map[string]string
	value  float64
}

var labelPair = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

func (s *served) scrape() scrape {
	s.t.Helper()
	resp, err := http.Get("http://" + s.listen + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	out := scrape{raw: raw}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		labels := map[string]string{}
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			name, rest = line[:i], line[j+1:]
			for _, m := range labelPair.FindAllStringSubmatch(line[i+1:j], -1) {
				labels[m[1]] = m[2]
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		out.series = append(out.series, scraped{name, labels, v})
	}
	return out
}

// sum adds up the series of a family whose labels include the pairs.
func (s scrape) sum(name string, labels ...string) float64 {
	total := 0.0
next:
	for _, x := range s.series {
		if x.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if x.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		total += x.value
	}
	return total
}

// generations returns the generations of molt_instances with healthy
// instances, and how many.
func (s scrape) generations() map[string]float64 {
	out := map[string]float64{}
	for _, x := range s.series {
		if x.name == "molt_instances" && x.labels["health"] == "healthy" && x.value > 0 {
			out[x.labels["generation"]] += x.value
		}
	}
	return out
}

// meteredFleet is a rolling fleet of 3 whose every batch waits 1.5s of
// health before the next: a rollout slow enough to scrape in the middle.
func meteredFleet(hello, port, version string) string {
	return fmt.Sprintf(`name: "metered"
services: web: {
	replicas: 3
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "1500ms", progressDeadline: "60s"}
}
`, hello, version, port)
}

// startMetered commits v1 of the metered fleet, serves it and waits for
// its first rollout to converge.
func startMetered(t *testing.T) (*served, *gittest.Repo, string, string) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	hello := targetstest.Hello(t)
	repo := gittest.NewRepo(t)
	repo.WriteFile("fleet.cue", meteredFleet(hello, port, "v1"))
	repo.Commit("v1")
	s := startServe(t, repo.Dir, stateDir(t), "@every 1s")
	answers(t, "127.0.0.1:"+port, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 30*time.Second, "the first rollout to be counted", func() bool {
		sc := s.scrape()
		return sc.sum("molt_rollouts_total", "fleet", "metered", "service", "web", "result", "converged") == 1 &&
			len(sc.generations()) == 1
	})
	return s, repo, hello, port
}

// TestMetricsDuringARollout scrapes /metrics all through a rolling
// rollout: the new generation's healthy instances rise and the old one's
// fall while it runs, molt_rollouts_total moves only at its end, and the
// old generation's series are gone after it.
func TestMetricsDuringARollout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s, repo, hello, port := startMetered(t)
	first := s.scrape()
	var old string
	for g := range first.generations() {
		old = g
	}
	if first.sum("molt_instances", "generation", old, "health", "healthy") != 3 {
		t.Fatalf("before the rollout: molt_instances of %s = %v, want 3 healthy", old, first.sum("molt_instances", "generation", old))
	}
	for _, h := range []string{"unhealthy", "unknown", "dead"} {
		if !strings.Contains(string(first.raw), fmt.Sprintf(`molt_instances{fleet="metered",generation=%q,health=%q,service="web"} 0`, old, h)) {
			t.Errorf("molt_instances of %s, %s: not initialised at zero", old, h)
		}
	}
	for _, r := range rolloutResults {
		if !strings.Contains(string(first.raw), fmt.Sprintf(`molt_rollouts_total{fleet="metered",result=%q,service="web",strategy="rolling"}`, r)) {
			t.Errorf("molt_rollouts_total result=%s: not initialised", r)
		}
	}
	revisions := first.sum("molt_revision_info", "service", "web")

	repo.WriteFile("fleet.cue", meteredFleet(hello, port, "v2"))
	repo.Commit("v2")

	// Scrape until the rollout is counted; each scrape's healthy counts
	// of the old and the new generation are kept.
	type point struct{ old, new float64 }
	var during []point
	var last scrape
	targetstest.Eventually(t, 60*time.Second, "the second rollout to be counted", func() bool {
		last = s.scrape()
		if last.sum("molt_rollouts_total", "fleet", "metered", "service", "web", "result", "converged") >= 2 {
			return true
		}
		p := point{old: last.sum("molt_instances", "generation", old, "health", "healthy")}
		for g, n := range last.generations() {
			if g != old {
				p.new += n
			}
		}
		during = append(during, p)
		time.Sleep(100 * time.Millisecond)
		return false
	})
	var rose, fell bool
	seenNew := map[float64]bool{}
	for _, p := range during {
		if p.new > 0 {
			seenNew[p.new] = true
		}
		if p.old > 0 && p.old < 3 {
			fell = true
		}
	}
	rose = len(seenNew) >= 2
	if !rose || !fell {
		t.Errorf("during the rollout (old, new healthy) went %v; want the new generation to rise through two values and the old one to fall below 3", during)
	}
	// At its end: the new generation alone, the old one's series gone.
	gens := last.generations()
	if len(gens) != 1 || gens[old] != 0 {
		t.Errorf("after the rollout: healthy generations %v, want only the new one", gens)
	}
	if n := last.sum("molt_instances", "generation", old); n != 0 {
		t.Errorf("after the rollout: molt_instances of the old generation = %v, want 0 or gone", n)
	}
	for _, g := range []string{old} {
		if strings.Contains(string(last.raw), fmt.Sprintf(`generation=%q,health="healthy",service="web"} 3`, g)) {
			t.Errorf("old generation %s still counted 3 healthy", g)
		}
	}
	if n := last.sum("molt_rollout_duration_seconds_count", "service", "web", "result", "converged"); n != 2 {
		t.Errorf("molt_rollout_duration_seconds_count = %v, want 2", n)
	}
	if n := last.sum("molt_revision_info", "service", "web"); n != revisions {
		t.Errorf("molt_revision_info series of web: %v, want %v (old revisions removed)", n, revisions)
	}
	if last.sum("molt_last_successful_reconcile_timestamp_seconds", "fleet", "metered") == 0 {
		t.Error("no last successful reconcile")
	}
	if last.sum("molt_fetch_duration_seconds_count") == 0 {
		t.Error("no fetch measured")
	}
}

// TestMetricsPromtool runs promtool check metrics on a scrape of molt
// serve with a fleet whose traffic the router counted. Without promtool
// it skips, unless MOLT_REQUIRE_PROMTOOL=1 (CI), where it fails.
func TestMetricsPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MOLT_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool not found (MOLT_REQUIRE_PROMTOOL=1): install Debian's prometheus package: %v", err)
		}
		t.Skip("promtool not found: install Debian's prometheus package (or set MOLT_REQUIRE_PROMTOOL=1 to fail)")
	}
	s, _, _, port := startMetered(t)
	for range 5 {
		answers(t, "127.0.0.1:"+port, "hello from v1", 10*time.Second)
	}
	var sc scrape
	targetstest.Eventually(t, 10*time.Second, "the router's counts in a scrape", func() bool {
		sc = s.scrape()
		return sc.sum("molt_router_requests_total", "fleet", "metered", "service", "web", "class", "2xx") > 0
	})
	if sc.sum("molt_router_up") != 1 || sc.sum("molt_build_info") != 1 || sc.sum("go_goroutines") == 0 {
		t.Errorf("molt_router_up, molt_build_info or go_goroutines missing from the scrape")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(sc.raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s\nthe scrape:\n%s", err, out, sc.raw)
	}
}
