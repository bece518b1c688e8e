//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// BenchmarkList lists 20 instances among the machine's processes: with
// their records ("recorded": /proc/PID/environ is read of no instance),
// and with Dir lost before every List ("from-proc": every instance is
// found in /proc and its record written back).
func BenchmarkList(b *testing.B) {
	state := b.TempDir()
	tgt, err := New(Options{Dir: filepath.Join(state, "instances")})
	if err != nil {
		b.Fatal(err)
	}
	defer tgt.Close()
	svc := &schema.Service{Name: "sleep", Process: &schema.Process{Command: []string{"sleep", "600"}}}
	const n = 20
	for range n {
		inst, err := tgt.Provision(b.Context(), targets.Spec{Labels: labels("sleep"), Service: svc})
		if err != nil {
			b.Fatal(err)
		}
		defer tgt.Retire(b.Context(), inst.ID)
	}
	snap, _ := scanProcs()
	b.Logf("%d instances among %d processes", n, len(snap))
	b.Run("recorded", func(b *testing.B) {
		for b.Loop() {
			if got, err := tgt.List(b.Context()); err != nil || len(got) != n {
				b.Fatalf("List = %d instances, %v", len(got), err)
			}
		}
	})
	b.Run("from-proc", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			os.RemoveAll(tgt.dir)
			b.StartTimer()
			if got, err := tgt.List(b.Context()); err != nil || len(got) != n {
				b.Fatalf("List = %d instances, %v", len(got), err)
			}
		}
	})
}
