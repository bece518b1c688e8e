//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/process"
	"github.com/molt-dev/molt/targets/targetstest"
)

// BenchmarkDown retires 200 serving hello processes as `molt down` does,
// 16 at a time (bound=16), and one after another (bound=1) for comparison
// (provisioning them is not timed).
func BenchmarkDown(b *testing.B) {
	const n = 200
	hello := targetstest.Hello(b)
	svc := &schema.Service{
		Name: "hello", Process: &schema.Process{Command: []string{hello}},
		Ports: map[string]int{"http": 0}, StopGrace: 5 * time.Second,
	}
	for _, bound := range []int{retireBound, 1} {
		b.Run(fmt.Sprintf("bound=%d", bound), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				tgt, err := process.New(process.Options{Dir: filepath.Join(b.TempDir(), "instances")})
				if err != nil {
					b.Fatal(err)
				}
				ids := provisionHellos(b, tgt, svc, n)
				b.StartTimer()
				got, err := retireAll(context.Background(), tgt, ids, bound)
				b.StopTimer()
				if err != nil || got != n {
					b.Fatalf("retired %d of %d: %v", got, n, err)
				}
				tgt.Close()
			}
		})
	}
}

// provisionHellos starts n instances of svc on tgt and waits until each
// answers, so that each has its SIGTERM handler in place.
func provisionHellos(b *testing.B, tgt targets.Target, svc *schema.Service, n int) []string {
	b.Helper()
	c := &http.Client{Timeout: time.Second}
	var ids []string
	for range n {
		in, err := tgt.Provision(b.Context(), targets.Spec{Labels: targets.Labels{Fleet: "bench", Service: svc.Name, SpecHash: "0123456789abcdef", CreatedAt: time.Now()}, Service: svc})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, in.ID)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if resp, err := c.Get("http://" + in.Endpoints["http"] + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s never answered", in.ID)
			}
		}
	}
	return ids
}
