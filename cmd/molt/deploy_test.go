package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/encoding/yaml"
)

// The samples README.md points to for running serve under systemd and
// Docker Compose.
const (
	deployUnit    = "../../testdata/deploy/molt-serve.service"
	deployCompose = "../../testdata/deploy/compose.yaml"
)

// readmePoints fails t unless README.md's Docker section links to path.
func readmePoints(t *testing.T, path string) {
	t.Helper()
	section := readmeDockerText(t)
	if rel := strings.TrimPrefix(path, "../../"); !strings.Contains(section, "("+rel+")") {
		t.Errorf("README.md's Docker section does not point to %s", rel)
	}
}

// TestDeploySystemdUnit checks the sample unit's stop and restart
// semantics (only serve is signalled, and given more time than its
// --stop-grace; a crash restarts it), that its command line is one serve
// takes, and, when systemd-analyze is installed, that systemd accepts the
// unit.
func TestDeploySystemdUnit(t *testing.T) {
	readmePoints(t, deployUnit)
	b, err := os.ReadFile(deployUnit)
	if err != nil {
		t.Fatal(err)
	}
	svc := unitSection(t, b, "Service")
	for key, ok := range map[string]func(string) bool{
		"KillMode":           func(v string) bool { return v == "process" },
		"Restart":            func(v string) bool { return v == "on-failure" || v == "always" },
		"StateDirectory":     func(v string) bool { return v == "molt" },
		"Environment":        func(v string) bool { return v == "MOLT_STATE_DIR=/var/lib/molt" },
		"EnvironmentFile":    func(v string) bool { return strings.TrimPrefix(v, "-") != "" },
		"User":               func(v string) bool { return v != "" && v != "root" },
		"ExecStart":          func(v string) bool { return v != "" },
		"TimeoutStopSec":     func(v string) bool { return v != "" },
		"StateDirectoryMode": func(v string) bool { return v == "0700" },
	} {
		if v := svc[key]; !ok(v) {
			t.Errorf("[Service] %s=%q", key, v)
		}
	}
	args := strings.Fields(svc["ExecStart"])
	if len(args) < 2 || filepath.Base(args[0]) != "molt" || args[1] != "serve" {
		t.Fatalf("ExecStart=%s: want molt serve", svc["ExecStart"])
	}
	grace := serveStopGrace(t, args[2:])
	if stop := systemdSeconds(t, svc["TimeoutStopSec"]); stop <= grace {
		t.Errorf("TimeoutStopSec=%s is not longer than serve's --stop-grace %s: systemd would kill serve mid-step", svc["TimeoutStopSec"], grace)
	}
	for _, secret := range []string{"MOLT_WEBHOOK_SECRET", "MOLT_GITHUB_TOKEN", "MOLT_GIT_TOKEN"} {
		if !bytes.Contains(b, []byte(secret)) {
			t.Errorf("the unit does not say where %s goes", secret)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze: the unit is not verified by systemd")
	}
	// systemd-analyze verify insists that ExecStart's program exists: put
	// one that does in its place.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), filepath.Base(deployUnit))
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte(args[0]), []byte(exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	// It reports a bad setting on stderr and still exits 0: any line that
	// names the unit is a failure.
	if err != nil || bytes.Contains(out, []byte(filepath.Base(unit))) {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDeployCompose checks the sample compose file: serve's flags, the
// state in a named volume, the restart policy, a stop grace period longer
// than --stop-grace, an init; and, when Docker Compose is installed, that
// Compose accepts the file.
func TestDeployCompose(t *testing.T) {
	readmePoints(t, deployCompose)
	b, err := os.ReadFile(deployCompose)
	if err != nil {
		t.Fatal(err)
	}
	f, err := yaml.Extract(deployCompose, b)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image           string   `json:"image"`
			Command         []string `json:"command"`
			EnvFile         string   `json:"env_file"`
			Volumes         []string `json:"volumes"`
			Ports           []string `json:"ports"`
			Restart         string   `json:"restart"`
			StopGracePeriod string   `json:"stop_grace_period"`
			Init            *bool    `json:"init"`
		} `json:"services"`
		Volumes map[string]any `json:"volumes"`
	}
	if err := cuecontext.New().BuildFile(f).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	molt, ok := doc.Services["molt"]
	if !ok || len(doc.Services) != 1 {
		t.Fatalf("services %v: want one, molt", doc.Services)
	}
	if molt.Image != "molt:latest" {
		t.Errorf("image %q, want molt:latest (make image)", molt.Image)
	}
	if len(molt.Command) == 0 || molt.Command[0] != "serve" {
		t.Fatalf("command %q: want serve", molt.Command)
	}
	grace := serveStopGrace(t, molt.Command[1:])
	if i := slices.Index(molt.Command, "--listen"); i < 0 || i+1 == len(molt.Command) || !strings.HasPrefix(molt.Command[i+1], "0.0.0.0:") {
		t.Errorf("command %q: serve must --listen on 0.0.0.0 in the container", molt.Command)
	}
	if !slices.Contains(molt.Volumes, "molt-state:/var/lib/molt") || doc.Volumes["molt-state"] == nil {
		t.Errorf("volumes %q (declared: %v): want the named volume molt-state on /var/lib/molt", molt.Volumes, doc.Volumes)
	}
	if molt.Restart != "unless-stopped" && molt.Restart != "always" {
		t.Errorf("restart %q, want unless-stopped", molt.Restart)
	}
	if d, err := time.ParseDuration(molt.StopGracePeriod); err != nil || d <= grace {
		t.Errorf("stop_grace_period %q is not longer than serve's --stop-grace %s", molt.StopGracePeriod, grace)
	}
	if molt.Init == nil || !*molt.Init {
		t.Errorf("init: %v, want true (a reaper as PID 1)", molt.Init)
	}
	if molt.EnvFile == "" {
		t.Errorf("no env_file: the secrets have no place")
	}
	if !slices.Contains(molt.Ports, "127.0.0.1:7070:7070") {
		t.Errorf("ports %q: want serve's published on 127.0.0.1:7070", molt.Ports)
	}

	compose := composeCommand()
	if compose == nil {
		t.Skip("no Docker Compose: the file is not checked by it")
	}
	dir := t.TempDir()
	for name, content := range map[string][]byte{"compose.yaml": b, "molt.env": nil} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(compose[0], append(compose[1:], "-f", "compose.yaml", "config", "-q")...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s config: %v\n%s", strings.Join(compose, " "), err, out)
	}
}

// composeCommand returns how to run Docker Compose here (the docker
// plugin, or the older docker-compose), or nil.
func composeCommand() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	return nil
}

// serveStopGrace parses args as serve's flags and returns its
// --stop-grace (given or default). Unknown flags fail t.
func serveStopGrace(t *testing.T, args []string) time.Duration {
	t.Helper()
	serve, _, err := newRoot(nil, io.Discard, io.Discard).Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.ParseFlags(args); err != nil {
		t.Fatalf("serve %s: %v", strings.Join(args, " "), err)
	}
	d, err := time.ParseDuration(serve.Flags().Lookup("stop-grace").Value.String())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// systemdSeconds parses a systemd time span: a number of seconds, or
// Go-style units ("45s", "1m30s").
func systemdSeconds(t *testing.T, v string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(v, "min", "m"), " ", ""))
	if err != nil {
		t.Fatalf("time span %q: %v", v, err)
	}
	return d
}

// unitSection returns the settings of one section of a systemd unit,
// continuation lines joined (a repeated key keeps its last value).
func unitSection(t *testing.T, unit []byte, name string) map[string]string {
	t.Helper()
	settings := map[string]string{}
	section, line := "", ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if line == "" && (text == "" || text[0] == '#' || text[0] == ';') {
			continue
		}
		if strings.HasSuffix(text, `\`) {
			line += strings.TrimSuffix(text, `\`) + " "
			continue
		}
		line += text
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
		} else if k, v, ok := strings.Cut(line, "="); ok && section == name {
			settings[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		line = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}
