package schema

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const fleetsDir = "../testdata/fleets"

func exampleNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(fleetsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no example fleets in %s", fleetsDir)
	}
	return names
}

func TestExampleFleetsLoad(t *testing.T) {
	for _, name := range exampleNames(t) {
		t.Run(name, func(t *testing.T) {
			f, err := Load(os.DirFS(fleetsDir), name)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(f.Services) == 0 {
				t.Error("no services")
			}
		})
	}
}

// TestExampleFull pins the decoding of every field.
func TestExampleFull(t *testing.T) {
	got, err := Load(os.DirFS(fleetsDir), "full")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	health := defaultService("").Health
	want := &Fleet{
		Name:          "full",
		DeployWindows: []Window{{Kind: "deny", Schedule: "0 12 * * 5", Duration: 12 * time.Hour}},
		Services: map[string]*Service{
			"web": {
				Name:     "web",
				Replicas: 4,
				Process: &Process{
					Command: []string{"./hello", "-greeting", "hi"},
					SHA256:  strings.Repeat("0", 64),
				},
				Env:   map[string]string{"GREETING": "hello", "LOG_LEVEL": "debug"},
				Ports: map[string]int{"http": 0, "metrics": 0},
				Health: Health{
					HTTP:               &HTTPCheck{Path: "/ready", Port: "http", Status: 204},
					Interval:           5 * time.Second,
					Timeout:            2 * time.Second,
					HealthyThreshold:   2,
					UnhealthyThreshold: 5,
					Grace:              15 * time.Second,
				},
				Liveness: &Health{
					TCP:                &TCPCheck{Port: "metrics"},
					Interval:           10 * time.Second,
					Timeout:            health.Timeout,
					HealthyThreshold:   health.HealthyThreshold,
					UnhealthyThreshold: health.UnhealthyThreshold,
					Grace:              health.Grace,
				},
				Rollout: Rollout{
					Strategy:         CanaryRun,
					MaxSurge:         IntOrPercent{Value: 25, Percent: true},
					MaxUnavailable:   IntOrPercent{Value: 1},
					MinHealthyFor:    10 * time.Second,
					ProgressDeadline: 10 * time.Minute,
					KeepPrevious:     30 * time.Minute,
					VerifyFor:        2 * time.Minute,
					MaxErrorRate:     0.05,
					Canary: &Canary{
						Count:        1,
						Weight:       20,
						Duration:     3 * time.Minute,
						MaxErrorRate: 0.01,
						Then:         BlueGreen,

						MinRequests:           50,
						MaxLatencyRatio:       2,
						OnInsufficientTraffic: "rollback",
					},
				},
				Expose:    &Expose{Listen: ":8080", Port: "http"},
				Recycle:   &Recycle{MaxAge: 24 * time.Hour, Window: "@daily"},
				StopGrace: 30 * time.Second,
				DeployWindows: []Window{
					{Kind: "allow", Schedule: "TZ=Europe/Paris 0 9 * * 1-5", Duration: 8 * time.Hour},
				},
			},
			"api": with(defaultService("api"), func(s *Service) {
				s.Process = nil
				s.Docker = &Docker{
					Image:          "registry.example.com/api@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
					Command:        []string{"serve", "--addr", ":9000"},
					Entrypoint:     []string{"/bin/api"},
					User:           "65534:65534",
					Memory:         "256m",
					CPUs:           1.5,
					ReadOnlyRootfs: false,
					Tmpfs:          []string{"/tmp", "/run"},
					Networks:       []string{"backend"},
					Engines:        []string{"local"},
				}
				s.Replicas = 2
				s.Ports = map[string]int{"grpc": 9000}
				s.Health.TCP = &TCPCheck{Port: "grpc"}
				s.Rollout.Strategy = BlueGreen
				s.Rollout.KeepPrevious = 10 * time.Minute
				s.Rollout.MaxUnavailable = IntOrPercent{Value: 50, Percent: true}
				s.Expose = &Expose{Listen: "127.0.0.1:9000", Port: "grpc"}
			}),
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

// cueCommand returns the path of the cue command, skipping the test when
// it is not on PATH, unless MOLT_REQUIRE_CUE=1 makes that a failure.
func cueCommand(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("cue")
	if err != nil {
		if os.Getenv("MOLT_REQUIRE_CUE") == "1" {
			tb.Fatalf("cue command required (MOLT_REQUIRE_CUE=1) but not on PATH: %v", err)
		}
		tb.Skip("cue command not on PATH (install: go install cuelang.org/go/cmd/cue@v0.17.1); set MOLT_REQUIRE_CUE=1 to fail instead")
	}
	return p
}

// cueVet runs `cue vet -c` on the printed schema and files in dir.
func cueVet(t *testing.T, cue, schema, dir string, files ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cue, append([]string{"vet", "-c", schema}, files...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeSchema(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "molt_schema.cue")
	if err := os.WriteFile(p, Source(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCueVetExamples checks that the printed schema accepts every example
// fleet under `cue vet -c`, as the package documentation tells users.
func TestCueVetExamples(t *testing.T) {
	cue := cueCommand(t)
	schema := writeSchema(t)
	for _, name := range exampleNames(t) {
		t.Run(name, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(fleetsDir, name, "*.cue"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no CUE files in %s: %v", name, err)
			}
			if out, err := cueVet(t, cue, schema, ".", files...); err != nil {
				t.Fatalf("cue vet -c: %v\n%s", err, out)
			}
		})
	}
}

// TestCueVetRejects checks that `cue vet -c` with the printed schema
// catches what the schema says, whatever the fleet's package clause.
func TestCueVetRejects(t *testing.T) {
	cue := cueCommand(t)
	schema := writeSchema(t)
	tests := []struct {
		name, fleet, want string
	}{
		{"unknown field", "services: web: {process: command: [\"./app\"], replicaz: 2}\n", "services.web.replicaz: field not allowed"},
		{"unknown top-level field", "servces: {}\n", "servces: unknown top-level field"},
		{"bad value", "services: web: {process: command: [\"./app\"], replicas: -1}\n", "services.web.replicas: must be an integer >= 0"},
		{"both process and docker", "services: web: {process: command: [\"./app\"], docker: image: \"x\"}\n", "set exactly one of process and docker, not both"},
		{"bad name", "name: \"Prod\"\n", "name: must be a lower-case DNS label"},
	}
	for _, tt := range tests {
		for _, clause := range []string{"", "package fleet\n\n"} {
			t.Run(tt.name+"/"+strings.TrimSpace(clause), func(t *testing.T) {
				dir := t.TempDir()
				writeFiles(t, dir, map[string]string{"fleet.cue": clause + tt.fleet})
				out, err := cueVet(t, cue, schema, dir, "fleet.cue")
				if err == nil {
					t.Fatalf("cue vet -c accepted the fleet")
				}
				if !strings.Contains(out, tt.want) {
					t.Errorf("cue vet -c output lacks %q:\n%s", tt.want, out)
				}
			})
		}
	}
}

func TestSource(t *testing.T) {
	src := Source()
	if !strings.Contains(string(src), "#Fleet:") {
		t.Fatal("Source lacks #Fleet")
	}
	src[0] = 'X'
	if Source()[0] == 'X' {
		t.Error("Source shares its bytes with the caller")
	}
	for _, line := range strings.Split(string(Source()), "\n") {
		if strings.HasPrefix(line, "package ") {
			t.Errorf("Source has a package clause %q; it must combine with any package", line)
		}
	}
}
