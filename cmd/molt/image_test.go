package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// TestImage builds molt's own image with `make image` (FROM scratch, a
// static binary, no pull) and runs `molt version` and `molt validate`
// inside it.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	dockertest.Client(t) // skips without an engine, fails with MOLT_REQUIRE_DOCKER=1
	name := "molt-test-image-" + dockertest.Token(8)
	make := exec.Command("make", "-C", "../..", "image", "BIN="+t.TempDir(), "IMAGE="+name, "VERSION=test")
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", name+":test", name+":latest").Run() })

	out, err := exec.Command("docker", "run", "--rm", name+":test", "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "molt test (") {
		t.Fatalf("molt version in the image: %v\n%s", err, out)
	}

	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the image runs as an unprivileged user
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	for d, replicas := range map[string]string{good: "3", bad: "-1"} {
		os.Mkdir(d, 0o755)
		src := fmt.Sprintf("services: web: {\n\treplicas: %s\n\tdocker: image: \"web:v1\"\n\tports: http: 8080\n}\n", replicas)
		if err := os.WriteFile(filepath.Join(d, "fleet.cue"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = exec.Command("docker", "run", "--rm", "-v", good+":/fleet:ro", name+":test", "validate", "/fleet").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `valid: fleet "default", 1 service(s), 3 instance(s)`) {
		t.Errorf("molt validate in the image: %v\n%s", err, out)
	}
	cmd := exec.Command("docker", "run", "--rm", "-v", bad+":/fleet:ro", name+":test", "validate", "/fleet")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "fleet.cue:2:") {
		t.Errorf("molt validate of a bad fleet in the image: %v\n%s", err, out)
	}
}
