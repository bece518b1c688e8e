package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// TestEnginesTLSLostMidRolloutAndBack runs a fleet over two engines: the
// local one (its unix socket) and a second Docker Engine that the test
// starts on TCP with TLS (certificates made by the test, host-ip
// 127.0.0.1, as an engine on another host). v1 is spread 2 and 2. During
// the rolling rollout to v2, with a client sending requests through the
// built-in router the whole time, the TLS engine is killed: its instances
// count as lost, the rollout converges on the local engine (exit 0, no
// rollback, no failure recorded) and no request fails. Then the engine is
// started again (its containers stopped by its restart): the next apply
// retires the leftovers and restores the spread, 2 and 2, with nothing
// else left behind.
func TestEnginesTLSLostMidRolloutAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	api := dockertest.Client(t) // skips without an engine; fails with MOLT_REQUIRE_DOCKER=1
	ref := dockertest.Ref("engines-tls")
	dockertest.HelloImage(t, api, ref, "v1")
	remote := dockertest.StartTLSEngine(t, api) // skips when dockerd cannot start here
	remote.Load(t, api, ref)
	engines := []string{"--docker-engine", "local=" + dockertest.Host(), "--docker-engine", remote.Flag("remote")}

	df := newDockerFleet(t, "tls", ref, 4, "500ms")
	app, fleet, repo := df.app, df.name, df.repo
	commit := func(version string) string { return df.commit(t, version) }

	state, err := os.MkdirTemp("", "md") // short: the router's socket lives in it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	t.Cleanup(func() { // before the TLS engine goes (cleanups run last first)
		out, err := exec.Command("molt", append([]string{"down", "--yes", "--state-dir", state}, engines...)...).CombinedOutput()
		if err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
	})
	apply := func(ctx context.Context) *exec.Cmd {
		c := exec.CommandContext(ctx, "molt", append([]string{"apply", "--repo", repo, "--state-dir", state,
			"--timeout", "3m", "--log-format", "text"}, engines...)...)
		return c
	}
	run := func(what string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
		defer cancel()
		var o, e bytes.Buffer
		c := apply(ctx)
		c.Stdout, c.Stderr = &o, &e
		if err := c.Run(); err != nil || !strings.Contains(o.String(), "converged to") {
			t.Fatalf("apply %s: %v\nstdout:\n%s\nstderr:\n%s", what, err, o.String(), e.String())
		}
		return o.String(), e.String()
	}
	versionRev := map[string]string{} // version → commit
	// spread counts the fleet's running containers of a version on each
	// engine, and all its containers.
	spread := func(version string) (local, tls, all int) {
		t.Helper()
		for i, c := range []*client.Client{api, remote.API} {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", "molt.fleet="+fleet)})
			cancel()
			if err != nil {
				t.Fatalf("list containers: %v", err)
			}
			for _, item := range res.Items {
				all++
				if item.State != "running" || !strings.Contains(item.Labels["molt.revision"], versionRev[version]) {
					continue
				}
				if i == 0 {
					local++
				} else {
					tls++
				}
			}
		}
		return local, tls, all
	}

	versionRev["v1"] = commit("v1")
	run("v1")
	answers(t, app, "hello from v1", 10*time.Second)
	if l, r, all := spread("v1"); l != 2 || r != 2 || all != 4 {
		t.Fatalf("v1 spread: %d local, %d on the TLS engine, %d containers in all; want 2, 2, 4", l, r, all)
	}

	// v2, the TLS engine killed once the rollout is under way.
	versionRev["v2"] = commit("v2")
	load := targetstest.StartLoad(app, 3, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var o, e bytes.Buffer
	c := apply(ctx)
	c.Stdout, c.Stderr = &o, &e
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	started := false
	for deadline := time.Now().Add(2 * time.Minute); !started && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		l, r, _ := spread("v2")
		started = l+r >= 2 // a first batch is in
	}
	if !started {
		t.Fatalf("the v2 rollout did not start within 2m\nstderr:\n%s", e.String())
	}
	remote.Kill(t)
	var applyErr error
	select {
	case applyErr = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("apply v2 did not return within 4m")
	}
	t.Logf("apply v2 with the TLS engine killed:\nstdout:\n%s\nstderr:\n%s", o.String(), e.String())
	if applyErr != nil || !strings.Contains(o.String(), "converged to") {
		t.Fatalf("apply v2: %v, want converged with the TLS engine lost", applyErr)
	}
	if strings.Contains(o.String(), "rolled back") || strings.Contains(e.String(), "rollout failed") {
		t.Errorf("apply v2 rolled back: losing an engine must not fail the rollout")
	}
	rec := transientRevisions(t, state)
	for rev, failed := range rec.Fleets[fleet].Failed {
		for svc, f := range failed {
			t.Errorf("a failure of %s is recorded at %s: %s", svc, rev, f.Reason)
		}
	}
	answers(t, app, "hello from v2", 10*time.Second)
	bodies := load.Finish(t) // fails t if any request failed
	lostTotal := load.Total()
	if bodies["hello from v2"] == 0 {
		t.Errorf("no request was answered by v2: %v", bodies)
	}
	ctxl, cancell := context.WithTimeout(t.Context(), 30*time.Second)
	res, err := api.ContainerList(ctxl, client.ContainerListOptions{Filters: make(client.Filters).Add("label", "molt.fleet="+fleet)})
	cancell()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Items); n != 4 {
		t.Errorf("%d running containers of the fleet on the local engine with the TLS engine lost, want 4", n)
	}

	// The TLS engine back: the leftovers go, and the spread comes back.
	remote.Start(t)
	load = targetstest.StartLoad(app, 3, 5*time.Millisecond)
	out, errOut := run("after the TLS engine came back")
	t.Logf("apply after the TLS engine came back:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	if l, r, all := spread("v2"); l != 2 || r != 2 || all != 4 {
		t.Errorf("v2 spread once the TLS engine is back: %d local, %d on it, %d containers in all; want 2, 2, 4 (no leftover)", l, r, all)
	}
	load.Finish(t) // no request fails during the rebalance either
	t.Logf("figures: %d requests through the router during the rollout that lost the TLS engine, %d during the rebalance",
		lostTotal, load.Total())
}
