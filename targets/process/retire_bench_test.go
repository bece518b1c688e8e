//go:build linux

package process

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
)

// BenchmarkRetire retires one serving hello instance (provisioning it is
// not timed).
func BenchmarkRetire(b *testing.B) {
	tgt, err := New(Options{Dir: filepath.Join(b.TempDir(), "instances")})
	if err != nil {
		b.Fatal(err)
	}
	defer tgt.Close()
	for range b.N {
		b.StopTimer()
		inst, err := tgt.Provision(b.Context(), targets.Spec{Labels: labels("hello"), Service: helloService(nil)})
		if err != nil {
			b.Fatal(err)
		}
		for range 2000 {
			if _, ok := httpGet(inst.Endpoints["http"], "/healthz"); ok {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		b.StartTimer()
		if err := tgt.Retire(b.Context(), inst.ID); err != nil {
			b.Fatal(err)
		}
	}
}
