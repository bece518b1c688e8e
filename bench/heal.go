package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchHeal measures self-heal under a real `molt serve` at its default
// poll (@every 30s) and default health checks: how long from the kill of
// an instance (SIGKILL: its process exits) and from its hang (SIGSTOP: it
// stays up, its checks time out) until a new instance answers and the
// dead or hung one is gone. Before, both waited for the next poll.
func benchHeal(h *H) error {
	dir := filepath.Join(h.Tmp, "heal")
	repo, state := filepath.Join(dir, "repo"), filepath.Join(dir, "state")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	routerAddr, err := freeAddr()
	if err != nil {
		return err
	}
	fleet := fmt.Sprintf(`name: "heal"
services: web: {
	replicas: 2
	process: command: [%q]
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: http: path: "/healthz"
}
`, h.Hello, routerAddr)
	if err := gitCommit(repo, fleet); err != nil {
		return err
	}
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	serve := exec.Command(h.Molt, "serve", "--repo", repo, "--branch", "main", "--state-dir", state, "--listen", listen)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		Run(dir, nil, h.Molt, "down", "--yes", "--state-dir", state)
	}()
	hs := &healState{state: state, api: "http://" + listen + "/api/v1/status"}
	if _, err := hs.waitServing(nil, 60*time.Second); err != nil {
		return fmt.Errorf("serve did not converge: %v (see its log: %s)", err, tail(readFile(logf.Name()), 1500))
	}
	rounds := min(h.Rounds, 3)
	measure := func(sig syscall.Signal, limit time.Duration) (Samples, error) {
		var out Samples
		for range rounds {
			insts, err := hs.waitServing(nil, 60*time.Second)
			if err != nil {
				return nil, err
			}
			// The oldest, past its health check's start grace (10 s), when
			// failures count.
			slices.SortFunc(insts, func(a, b healInst) int { return a.Labels.CreatedAt.Compare(b.Labels.CreatedAt) })
			victim := insts[0]
			if sig == syscall.SIGSTOP {
				time.Sleep(time.Until(victim.Labels.CreatedAt.Add(10*time.Second + 100*time.Millisecond)))
			}
			start := time.Now()
			if err := syscall.Kill(victim.PID, sig); err != nil {
				return nil, err
			}
			if _, err := hs.waitServing(&victim, limit); err != nil {
				syscall.Kill(victim.PID, syscall.SIGCONT)
				return nil, fmt.Errorf("after %s of %s: %v", sig, victim.ID, err)
			}
			out = append(out, time.Since(start).Seconds())
		}
		return out, nil
	}
	killed, err := measure(syscall.SIGKILL, 60*time.Second)
	if err != nil {
		return fmt.Errorf("%v; the end of serve's log:\n%s", err, tail(readFile(logf.Name()), 3000))
	}
	h.Add(Row{Figure: "a killed instance replaced, default poll 30 s", Unit: "s", Molt: killed,
		Comparator: "goal (the next poll tick before)", Goal: 1, Before: "≈ 25 s (next poll tick)"})
	hung, err := measure(syscall.SIGSTOP, 60*time.Second)
	if err != nil {
		return fmt.Errorf("%v; the end of serve's log:\n%s", err, tail(readFile(logf.Name()), 3000))
	}
	h.Add(Row{Figure: "a hung instance (SIGSTOP) replaced, default poll 30 s and checks", Unit: "s", Molt: hung,
		Comparator: "the checks' own time: 3 failures 2 s apart, each up to its 1 s timeout (≈ 5–7 s)", Before: "the next poll tick (≤ 30 s)"})
	h.Note("Self-heal: `molt serve` at its defaults (poll @every 30s, health every 2 s, 1 s timeout, unhealthyThreshold 3) over a local repository, "+
		"2 hello instances behind the router; an instance is SIGKILLed (its exit is an event) or, once past its checks' start grace (10 s), SIGSTOPped (only its checks tell), %d times each; "+
		"the figure is the time until a new instance answers /healthz and the victim's record is gone.", rounds)
	return nil
}

// healState reads the instances of a state directory, and serve's status.
type healState struct{ state, api string }

// converged reports whether serve's last reconcile converged (a kill
// during the first rollout would fail it: a new instance that exits fails
// its rollout, by design).
func (s *healState) converged(c *http.Client) bool {
	resp, err := c.Get(s.api)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Fleets []struct {
			LastResult string `json:"lastResult"`
		} `json:"fleets"`
	}
	return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.Fleets) == 1 && st.Fleets[0].LastResult == "converged"
}

type healInst struct {
	ID     string `json:"id"`
	Labels struct {
		CreatedAt time.Time `json:"createdAt"`
	} `json:"labels"`
	PID   int            `json:"pid"`
	Host  string         `json:"host"`
	Ports map[string]int `json:"ports"`
}

// waitServing waits until two instances are recorded, each answering
// /healthz, none of them gone (when set), and returns them.
func (s *healState) waitServing(gone *healInst, limit time.Duration) ([]healInst, error) {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for ; time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		insts := s.instances()
		if len(insts) != 2 || (gone != nil && slices.ContainsFunc(insts, func(in healInst) bool { return in.ID == gone.ID })) {
			continue
		}
		ok := true
		for _, in := range insts {
			resp, err := c.Get("http://" + net.JoinHostPort(in.Host, strconv.Itoa(in.Ports["http"])) + "/healthz")
			if err != nil {
				ok = false
				break
			}
			resp.Body.Close()
			ok = ok && resp.StatusCode == 200
		}
		if ok && s.converged(c) {
			return insts, nil
		}
	}
	return nil, fmt.Errorf("no two answering instances within %s (now %d recorded)", limit, len(s.instances()))
}

func (s *healState) instances() []healInst {
	entries, _ := os.ReadDir(filepath.Join(s.state, "instances"))
	var out []healInst
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.state, "instances", e.Name(), "instance.json"))
		if err != nil {
			continue
		}
		var in healInst
		if json.Unmarshal(b, &in) == nil && in.PID > 0 {
			out = append(out, in)
		}
	}
	return out
}

// gitCommit writes fleet.cue into a new repository at dir and commits it
// on main.
func gitCommit(dir, fleet string) error {
	if err := os.WriteFile(filepath.Join(dir, "fleet.cue"), []byte(fleet), 0o644); err != nil {
		return err
	}
	env := append(gitBenchEnv(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-qm", "fleet"}} {
		if _, err := Run(dir, env, "git", args...); err != nil {
			return err
		}
	}
	return nil
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
