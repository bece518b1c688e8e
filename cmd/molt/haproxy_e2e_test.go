package main

// End-to-end tests of HAProxy as the front (expose: haproxy: backend),
// through the CLI: a real HAProxy started by the test (haproxytest: a
// frontend on loopback, an empty backend but for one disabled server of
// the user's, the admin socket in a temporary directory), real processes
// of the hello demo app, and a client sending requests through HAProxy's
// frontend the whole time. Helpers are prefixed "hx"; the fleet is
// core_e2e_test.go's.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets/haproxy"
	"github.com/molt-dev/molt/targets/haproxy/haproxytest"
	"github.com/molt-dev/molt/targets/targetstest"
)

const hxBackend = "be_web"

// hxFleet is a fleet of one service exposed through HAProxy, and the
// HAProxy.
type hxFleet struct {
	*coreFleet
	h *haproxytest.HAProxy
}

func newHXFleet(t *testing.T) *hxFleet {
	t.Helper()
	h := haproxytest.Start(t, haproxytest.Config{Backends: []string{hxBackend}})
	return &hxFleet{coreFleet: newCoreFleet(t), h: h}
}

// front is HAProxy's frontend address.
func (f *hxFleet) front() string { return f.h.Addrs[hxBackend] }

// source is web: replicas of hello answering "hello from VERSION", exposed
// through HAProxy's backend, with the given rollout.
func (f *hxFleet) source(version string, replicas int, env, rollout string) string {
	return fmt.Sprintf(`name: "hx"
services: web: {
	replicas: %d
	process: command: [%q]
	env: {VERSION: %q%s}
	ports: http: 0
	expose: {haproxy: backend: %q, port: "http"}
	health: {interval: "100ms", grace: "1s", unhealthyThreshold: 2}
	stopGrace: "2s"
	rollout: %s
}
`, replicas, f.hello, version, env, hxBackend, rollout)
}

func (f *hxFleet) apply(extra ...string) coreResult {
	f.t.Helper()
	return f.molt(append([]string{"apply", "--repo", f.repo, "--log-level", "warn", "--haproxy", f.h.Socket}, extra...)...)
}

func (f *hxFleet) mustApply() {
	f.t.Helper()
	if r := f.apply(); r.code != 0 || !strings.Contains(r.stdout, "converged to ") {
		f.t.Fatalf("apply exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// routed is the instances of the fleet's traffic record as HAProxy
// servers should list them: "molt-ID ADDR ready", sorted.
func (f *hxFleet) routed(gen string) []string {
	f.t.Helper()
	var want []string
	for _, in := range f.running() {
		if gen != "" && in.Labels.SpecHash != gen {
			continue
		}
		want = append(want, haproxy.ServerPrefix+in.ID+" "+f.endpoint(in.ID)+" ready")
	}
	slices.Sort(want)
	return want
}

// endpoint reads an instance's http endpoint from its record.
func (f *hxFleet) endpoint(id string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.state, "instances", id, "instance.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var rec struct {
		Host  string         `json:"host"`
		Ports map[string]int `json:"ports"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		f.t.Fatal(err)
	}
	return net.JoinHostPort(rec.Host, strconv.Itoa(rec.Ports["http"]))
}

// servers is "show servers state" of the backend, molt's servers as
// "molt-ID ADDR STATE", after checking the user's server is untouched.
func (f *hxFleet) servers() []string {
	f.t.Helper()
	var out []string
	user := false
	for _, s := range f.h.Servers(f.t, hxBackend) {
		if s.Name == haproxytest.UserServer {
			user = s.Addr == "127.0.0.1:9" && s.Admin == "maint"
			continue
		}
		out = append(out, s.Name+" "+s.Addr+" "+s.Admin)
	}
	if !user {
		f.t.Errorf("the user's server %s is not as haproxy.cfg has it", haproxytest.UserServer)
	}
	return out
}

func (f *hxFleet) wantServers(gen string) {
	f.t.Helper()
	if diff := cmp.Diff(f.routed(gen), f.servers()); diff != "" {
		f.t.Errorf("show servers state (-routed instances +servers):\n%s", diff)
	}
}

const hxRolling = `{strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s"}`

// TestHAProxyRolling: v1 then a rolling rollout to v2 through HAProxy,
// under load: no request fails, both versions answered, and HAProxy's
// backend lists exactly the three v2 instances afterwards.
func TestHAProxyRolling(t *testing.T) {
	f := newHXFleet(t)
	f.commit("v1", f.source("v1", 3, "", hxRolling))
	f.mustApply()
	f.wantServers("")

	f.commit("v2", f.source("v2", 3, "", hxRolling))
	load := targetstest.StartLoad(f.front(), 4, 10*time.Millisecond)
	f.mustApply()
	bodies := load.Finish(t) // fails the test on any failed request
	if bodies["hello from v1"] == 0 || bodies["hello from v2"] == 0 {
		t.Errorf("answers %v: want both versions during the rollout", bodies)
	}
	f.wantRunning(f.running()[0].Labels.SpecHash, 3)
	f.wantServers("")

	// down --haproxy takes molt's servers out of the backend (the user's
	// own server stays) and retires the instances.
	if r := f.molt("down", "--yes", "--haproxy", f.h.Socket); r.code != 0 {
		t.Fatalf("down exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := f.servers(); len(got) != 0 {
		t.Errorf("after down, molt's servers are still in the backend: %v", got)
	}
	if got := f.running(); len(got) != 0 {
		t.Errorf("after down, %d instance(s) still run", len(got))
	}
}

// TestHAProxyBlueGreen: a blue-green switch through HAProxy under load:
// no request fails; afterwards the backend lists exactly the v2 instances
// while v1 is kept warm (running, out of traffic) for keepPrevious.
func TestHAProxyBlueGreen(t *testing.T) {
	f := newHXFleet(t)
	bg := `{strategy: "blue-green", keepPrevious: "1m", minHealthyFor: "300ms", progressDeadline: "60s"}`
	f.commit("v1", f.source("v1", 2, "", bg))
	f.mustApply()
	v1 := f.running()
	f.wantServers("")

	f.commit("v2", f.source("v2", 2, "", bg))
	load := targetstest.StartLoad(f.front(), 4, 10*time.Millisecond)
	f.mustApply()
	bodies := load.Finish(t)
	if bodies["hello from v2"] == 0 {
		t.Errorf("answers %v: want v2 after the switch", bodies)
	}
	byGen := map[string]int{}
	var gen2 string
	for _, in := range f.running() {
		byGen[in.Labels.SpecHash]++
		if in.Labels.SpecHash != v1[0].Labels.SpecHash {
			gen2 = in.Labels.SpecHash
		}
	}
	if byGen[gen2] != 2 || byGen[v1[0].Labels.SpecHash] != 2 {
		t.Fatalf("running by generation %v: want 2 of v2 in traffic and 2 of v1 kept warm", byGen)
	}
	f.wantServers(gen2) // v1's warm instances are out of HAProxy
}

// TestHAProxyCanary: a canary at 20% through HAProxy, judged from
// HAProxy's counters (minRequests must be met by them), promoted, and the
// rollout goes on as rolling: no request fails, the canary answered a
// share of the requests, and the backend lists the three v2 instances.
func TestHAProxyCanary(t *testing.T) {
	f := newHXFleet(t)
	f.commit("v1", f.source("v1", 3, "", hxRolling))
	f.mustApply()

	f.commit("v2, a canary", f.source("v2", 3, "", `{strategy: "canary", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "300ms", progressDeadline: "60s",
		canary: {count: 1, weight: 20, duration: "3s", minRequests: 20, then: "rolling"}}`))
	load := targetstest.StartLoad(f.front(), 4, 10*time.Millisecond)
	r := f.apply()
	bodies := load.Finish(t)
	t.Logf("apply exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "converged to ") {
		t.Fatalf("apply exited %d, want 0 (converged)", r.code)
	}
	if !strings.Contains(r.stdout, "judged web: Promote (Healthy): ") {
		t.Error("apply does not say the canary was promoted on HAProxy's counts (judged web: Promote (Healthy))")
	}
	if bodies["hello from v2"] == 0 {
		t.Errorf("answers %v: the canary got no traffic", bodies)
	}
	f.wantServers("")
}

// TestHAProxyRestartHealed: serve keeps the fleet; HAProxy restarted
// forgets its dynamic servers (the backend is empty but for the user's
// server); the next pass adds them back, and requests are answered again.
func TestHAProxyRestartHealed(t *testing.T) {
	f := newHXFleet(t)
	f.commit("v1", f.source("v1", 2, "", hxRolling))
	s := startServe(t, f.repo, f.state, "@every 1s", "--haproxy", f.h.Socket)
	targetstest.Eventually(t, 30*time.Second, "the first rollout to converge", func() bool {
		return strings.Contains(s.logs.String(), "result=converged")
	})
	f.wantServers("")

	f.h.Restart()
	if got := f.servers(); len(got) != 0 {
		t.Fatalf("servers right after HAProxy's restart: %v, want none of molt's", got)
	}
	targetstest.Eventually(t, 30*time.Second, "the backend rebuilt", func() bool {
		return len(f.servers()) == 2
	})
	f.wantServers("")
	load := targetstest.StartLoad(f.front(), 2, 10*time.Millisecond)
	bodies := load.Finish(t)
	if bodies["hello from v1"] == 0 {
		t.Errorf("answers after the rebuild: %v", bodies)
	}
}
