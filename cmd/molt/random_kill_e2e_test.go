package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// randomKills is how many times TestRandomKills kills molt serve.
const randomKills = 30

// TestRandomKills kills molt serve with SIGKILL at random moments (the
// seed is printed; MOLT_KILL_SEED=N replays a run) while it rolls out a
// rolling service and a blue-green one, commit after commit (every fifth
// one broken, so rollbacks are killed too), with requests flowing through
// the router to both all along. After the last kill, serve converges to
// the last commit; at no moment did more instances live than each
// strategy's bound or fewer answer their health check than replicas −
// maxUnavailable; no request failed; after down no process is left.
func TestRandomKills(t *testing.T) {
	f := newCoreFleet(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MOLT_KILL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MOLT_KILL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("random kills: seed %d (MOLT_KILL_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	apiPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := "127.0.0.1:" + apiPort
	source := func(version string, broken bool) string {
		extra := ""
		if broken {
			extra = `, FAIL_HEALTH: "1"`
		}
		return fmt.Sprintf(`name: "kills"
services: web: {
	replicas: 3
	process: command: [%[1]q]
	env: {VERSION: %[2]q%[3]s}
	ports: http: 0
	expose: {listen: %[4]q, port: "http"}
	health: {interval: "50ms", grace: "2s", unhealthyThreshold: 2}
	stopGrace: "2s"
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "150ms", progressDeadline: "30s"}
}
services: api: {
	replicas: 2
	process: command: [%[1]q]
	env: {VERSION: %[2]q%[3]s}
	ports: http: 0
	expose: {listen: %[5]q, port: "http"}
	health: {interval: "50ms", grace: "2s", unhealthyThreshold: 2}
	stopGrace: "2s"
	rollout: {strategy: "blue-green", minHealthyFor: "150ms", progressDeadline: "30s", keepPrevious: "0s"}
}
`, f.hello, version, extra, f.addr(), apiAddr)
	}
	cf := &crashFleet{coreFleet: f}
	serve := func() *crashServe { return cf.serveWith(nil) }

	f.commit("v1", source("v1", false))
	s := serve()
	s.settled(t, cf.head(), "converged")
	s.stop(t)
	web := targetstest.StartLoad(f.addr(), 2, 10*time.Millisecond)
	api := targetstest.StartLoad(apiAddr, 1, 10*time.Millisecond)
	sampler := startSampler(t, filepath.Join(f.state, "instances"))

	version, good, commits := 1, 1, 0
	var lived time.Duration
	for kill := 1; kill <= randomKills; kill++ {
		if kill%2 == 1 { // a new commit every other kill
			version++
			commits++
			broken := version%5 == 0
			f.commit(fmt.Sprintf("v%d", version), source(fmt.Sprintf("v%d", version), broken))
			if !broken {
				good = version
			}
		}
		s := serve()
		life := time.Duration(100+rng.IntN(1400)) * time.Millisecond
		lived += life
		time.Sleep(life)
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		if s.err == nil {
			t.Fatalf("serve exited by itself before kill %d:\n%s", kill, s.logs.String())
		}
	}
	// The last commit is good: serve converges to it.
	if version%5 == 0 {
		version++
		commits++
		f.commit(fmt.Sprintf("v%d", version), source(fmt.Sprintf("v%d", version), false))
	}
	good = version
	s = serve()
	s.settled(t, cf.head(), "converged")
	want := fmt.Sprintf("v%d", good)
	targetstest.Eventually(t, 20*time.Second, "3 web and 2 api instances of "+want+" only", func() bool {
		n := map[string]int{}
		for _, p := range instanceProcesses(t, filepath.Join(f.state, "instances")) {
			if p.env["VERSION"] != want {
				return false
			}
			n[p.env["MOLT_SERVICE"]]++
		}
		return n["web"] == 3 && n["api"] == 2 && len(n) == 2
	})
	s.stop(t)

	samples, webPeak, webLow := sampler.stop("web")
	_, apiPeak, apiLow := sampler.stop("api")
	wn, wfirst := web.Failures()
	an, afirst := api.Failures()
	requests := web.Total() + api.Total()
	web.Finish(t)
	api.Finish(t)
	summary := fmt.Sprintf("random kills: seed %d, %d kills of serve (alive %v in all before each kill), %d commits; %d requests, %d failed; %d samples: web at most %d live (bound 4), at least %d healthy (floor 3); api at most %d live (bound 4), at least %d healthy (floor 2)",
		seed, randomKills, lived, commits, requests, wn+an, samples, webPeak, webLow, apiPeak, apiLow)
	t.Log(summary)
	fmt.Fprintln(os.Stderr, summary)
	if webPeak > 4 {
		t.Errorf("%d web instances lived at once; rolling 3 + maxSurge 1 allows 4", webPeak)
	}
	if apiPeak > 4 {
		t.Errorf("%d api instances lived at once; blue-green of 2 allows 4", apiPeak)
	}
	if webLow < 3 {
		t.Errorf("only %d web instances were healthy at one moment, floor 3 (%s)", webLow, sampler.lowAt("web"))
	}
	if apiLow < 2 {
		t.Errorf("only %d api instances were healthy at one moment, floor 2 (%s)", apiLow, sampler.lowAt("api"))
	}
	if wn > 0 {
		t.Errorf("%d web requests failed, first: %s", wn, wfirst)
	}
	if an > 0 {
		t.Errorf("%d api requests failed, first: %s", an, afirst)
	}
	if r := f.molt("down", "--yes"); r.code != 0 {
		t.Fatalf("molt down exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if left := instanceProcesses(t, filepath.Join(f.state, "instances")); len(left) > 0 {
		t.Errorf("%d processes left after down: %v", len(left), left)
	}
}
