package schema

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

var benchSizes = []int{10, 100, 1000}

// generatedFleet returns a fleet of n services in one file, each with
// ports, environment, a health check, a rollout and an exposed address.
func generatedFleet(n int) []byte {
	var b strings.Builder
	b.WriteString("package fleet\n\nname: \"bench\"\n")
	for i := range n {
		fmt.Fprintf(&b, `
services: "svc-%d": {
	process: command: ["./app", "-id", "%d"]
	replicas: %d
	env: {INDEX: "%d", MODE: "bench"}
	ports: {http: 0, metrics: 0}
	health: http: path: "/ready"
	rollout: {strategy: "blue-green", maxSurge: "25%%", minHealthyFor: "5s"}
	expose: listen: "127.0.0.1:%d"
}
`, i, i, 1+i%5, i, 10000+i)
	}
	return []byte(b.String())
}

func BenchmarkLoad(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			fsys := fstest.MapFS{"fleet.cue": {Data: generatedFleet(n)}}
			if f, err := Load(fsys, "."); err != nil || len(f.Services) != n {
				b.Fatalf("Load: %v", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Load(fsys, "."); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCueVet runs `cue vet -c` with the printed schema on the same
// fleets as BenchmarkLoad, once per iteration (process start included).
func BenchmarkCueVet(b *testing.B) {
	cue := cueCommand(b)
	dir := b.TempDir()
	schema := filepath.Join(dir, "molt_schema.cue")
	if err := os.WriteFile(schema, Source(), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			fleet := filepath.Join(dir, fmt.Sprintf("fleet%d.cue", n))
			if err := os.WriteFile(fleet, generatedFleet(n), 0o644); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if out, err := exec.Command(cue, "vet", "-c", schema, fleet).CombinedOutput(); err != nil {
					b.Fatalf("cue vet -c: %v\n%s", err, out)
				}
			}
		})
	}
}
