package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// getJSON reads one document of serve's API.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// eventsOf returns serve's events, newest first.
func eventsOf(t *testing.T, listen string) []apiEvent {
	t.Helper()
	var evs apiEvents
	if code := getJSON(t, "http://"+listen+"/api/v1/events?limit=1000", &evs); code != http.StatusOK {
		t.Fatalf("GET /api/v1/events: %d", code)
	}
	return evs.Events
}

func hasDeploy(evs []apiEvent, commit string) bool {
	for _, ev := range evs {
		if ev.Kind == "deploy" && ev.Service == "web" && ev.Commit == commit {
			return true
		}
	}
	return false
}

// stopServe stops a serve under test and lets its cleanup find it stopped.
func stopServe(t *testing.T, s *served) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("molt serve did not stop")
	}
}

// molt runs the molt binary and returns its stdout.
func molt(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("molt", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("molt %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// TestEventsAcrossServeRestart: serve records its deploys in the state
// directory and serves them on GET /api/v1/events with the status on GET
// /api/v1/status; molt status and molt history read both with --server;
// the webhooks listen apart with --webhook-listen (and only there); after
// a restart of serve the history from before it is still there, and new
// events go on with greater ids.
func TestEventsAcrossServeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	repo := newFleetRepo(t)
	state := stateDir(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	hookAddr := "127.0.0.1:" + port
	s := startServe(t, repo.Dir, state, "@every 1s", "--webhook-listen", hookAddr)
	answers(t, repo.App, "hello from v1", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "the deploy of v1 in the events", func() bool {
		return hasDeploy(eventsOf(t, s.listen), repo.First)
	})

	t.Run("status", func(t *testing.T) {
		var st apiStatus
		targetstest.Eventually(t, 20*time.Second, "web 2/2 healthy in the status", func() bool {
			st = apiStatus{}
			if getJSON(t, "http://"+s.listen+"/api/v1/status", &st) != http.StatusOK || len(st.Fleets) != 1 || len(st.Fleets[0].Services) != 1 {
				return false
			}
			web := st.Fleets[0].Services[0]
			return web.Healthy == 2 && web.Replicas == 2 && len(web.Instances) == 2
		})
		fl := st.Fleets[0]
		web := fl.Services[0]
		if fl.Commit != repo.First || web.Live.Commit != repo.First || web.Desired.SpecHash == "" || web.Live.SpecHash != web.Desired.SpecHash {
			t.Errorf("fleet %+v, web desired %+v live %+v: want both at %s", fl, web.Desired, web.Live, repo.First)
		}
		if fl.LastResult != "converged" || web.Rollout != nil || web.Strategy != "blue-green" {
			t.Errorf("last result %q, rollout %+v, strategy %q: want converged, none, blue-green", fl.LastResult, web.Rollout, web.Strategy)
		}
		for _, in := range web.Instances {
			if in.Health != "healthy" || in.Role != "active" || in.Weight != 50 || in.Address == "" || in.Target != "process" {
				t.Errorf("instance %+v: want healthy, active, 50%%, an address", in)
			}
		}
		// molt status --server shows the same, as a table and as JSON.
		text := molt(t, "status", "--server", "http://"+s.listen)
		if !strings.Contains(text, "web") || !strings.Contains(text, "2/2") || !strings.Contains(text, web.Instances[0].ID) {
			t.Errorf("molt status --server:\n%s", text)
		}
		var doc apiStatus
		if err := json.Unmarshal([]byte(molt(t, "status", "--server", "http://"+s.listen, "-o", "json")), &doc); err != nil || len(doc.Fleets) != 1 {
			t.Errorf("molt status --server -o json: %v %+v", err, doc)
		}
	})

	t.Run("events limit", func(t *testing.T) {
		var evs apiEvents
		if code := getJSON(t, "http://"+s.listen+"/api/v1/events?limit=1", &evs); code != http.StatusOK || len(evs.Events) != 1 {
			t.Errorf("?limit=1: %d, %d events", code, len(evs.Events))
		}
		if code := getJSON(t, "http://"+s.listen+"/api/v1/events?limit=x", &evs); code != http.StatusBadRequest {
			t.Errorf("?limit=x: %d, want 400", code)
		}
	})

	t.Run("webhooks apart", func(t *testing.T) {
		// The webhook listener takes deliveries and serves nothing else;
		// the API's listener takes no delivery.
		if code := deliverTo(t, hookAddr, s.secret, repo.Head()); code/100 != 2 {
			t.Errorf("delivery on --webhook-listen: %d", code)
		}
		if code := deliverTo(t, s.listen, s.secret, repo.Head()); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("delivery on --listen: %d, want 404 or 405", code)
		}
		for _, path := range []string{"/healthz", "/api/v1/status", "/metrics"} {
			resp, err := http.Get("http://" + hookAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("GET %s on --webhook-listen: %d, want 404", path, resp.StatusCode)
			}
		}
	})

	// v2, then a restart.
	repo.WriteFile("fleet.cue", repo.source("v2"))
	v2 := repo.Commit("v2")
	answers(t, repo.App, "hello from v2", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "the deploy of v2 in the events", func() bool {
		return hasDeploy(eventsOf(t, s.listen), v2)
	})
	before := eventsOf(t, s.listen)
	hist := molt(t, "history", "--server", "http://"+s.listen)
	for _, ev := range before {
		if ev.Kind == "deploy" && (ev.Author == "" || ev.Revision == "" || ev.To == "") {
			t.Errorf("deploy event without its author, revision or generation: %+v", ev)
		}
	}
	if strings.Count(hist, " deploy ") < 2 {
		t.Errorf("molt history --server lists fewer than 2 deploys:\n%s", hist)
	}
	stopServe(t, s)

	s2 := startServe(t, repo.Dir, state, "@every 1s")
	targetstest.Eventually(t, 20*time.Second, "serve's log to say the listeners are shared", func() bool {
		return strings.Contains(s2.logs.String(), "share one listener")
	})
	after := eventsOf(t, s2.listen)
	for _, ev := range before {
		found := false
		for _, a := range after {
			if a.ID == ev.ID && a.Kind == ev.Kind && a.Commit == ev.Commit {
				found = true
			}
		}
		if !found {
			t.Errorf("event %d (%s %s) is gone after the restart", ev.ID, ev.Kind, ev.Message)
		}
	}
	// The restart converges to what runs: no second deploy of v2.
	n := 0
	for _, ev := range eventsOf(t, s2.listen) {
		if hasDeploy([]apiEvent{ev}, v2) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d deploys of v2 after the restart, want 1", n)
	}
	// A new deploy after the restart gets a greater id.
	repo.WriteFile("fleet.cue", repo.source("v3"))
	v3 := repo.Commit("v3")
	answers(t, repo.App, "hello from v3", 30*time.Second)
	targetstest.Eventually(t, 20*time.Second, "the deploy of v3 in the events", func() bool {
		return hasDeploy(eventsOf(t, s2.listen), v3)
	})
	newest := eventsOf(t, s2.listen)[0]
	if newest.ID <= before[0].ID {
		t.Errorf("newest id %d after the restart, want more than %d", newest.ID, before[0].ID)
	}
	// The state directory's history, read while serve holds it.
	if out := molt(t, "history", "--state-dir", state, "-o", "json"); strings.Count(out, `"kind": "deploy"`) < 3 {
		t.Errorf("molt history --state-dir: fewer than 3 deploys:\n%s", out)
	}
}

// deliverTo sends one signed GitHub push delivery to addr.
func deliverTo(t *testing.T, addr, secret, after string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": after, "deleted": false,
		"repository": map[string]any{"full_name": "o/r"}})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "delivery-"+after[:8]+addr)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
