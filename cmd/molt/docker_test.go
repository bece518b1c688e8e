package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// TestApplyDocker applies a fleet of containers with the CLI on the
// default engine, serves it through the router, and takes it down.
func TestApplyDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	api := dockertest.Client(t)
	ref := dockertest.Ref("cli")
	dockertest.HelloImage(t, api, ref, "v1")
	appPort, _ := freePort()
	fleet := "cli-" + dockertest.Token(4)
	repo := filepath.Join(t.TempDir(), "repo")
	runGit(t, "", "init", "-q", "-b", "main", repo)
	src := fmt.Sprintf(`name: %q
services: web: {
	replicas: 2
	docker: image: %q
	env: {HOST: "0.0.0.0", VERSION: "v1"}
	ports: http: 8080
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "5s"}
	stopGrace: "2s"
}
`, fleet, ref, appPort)
	if err := os.WriteFile(filepath.Join(repo, "fleet.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	runGit(t, repo, "add", "-A")
	runGit(t, repo, "commit", "-qm", "v1")
	state := stateDir(t)

	out, err := exec.Command("molt", "apply", "--repo", repo, "--state-dir", state, "--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	answers(t, "127.0.0.1:"+appPort, "hello from v1", 10*time.Second)
	containers := func() int {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=molt.fleet="+fleet).Output()
		if err != nil {
			t.Fatal(err)
		}
		return len(strings.Fields(string(out)))
	}
	if n := containers(); n != 2 {
		t.Errorf("%d containers of the fleet, want 2", n)
	}
	out, err = exec.Command("molt", "down", "--yes", "--state-dir", state).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "retired 2 instance(s)") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if n := containers(); n != 0 {
		t.Errorf("%d containers left after down", n)
	}
}
