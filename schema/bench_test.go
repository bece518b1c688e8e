package schema

import (
	"fmt"
	"github.com/molt-dev/molt/schema/schematest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/fstest"
)

var benchSizes = []int{10, 100, 1000}

func BenchmarkLoad(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			fsys := fstest.MapFS{"fleet.cue": {Data: schematest.GeneratedFleet(n)}}
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
			if err := os.WriteFile(fleet, schematest.GeneratedFleet(n), 0o644); err != nil {
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
