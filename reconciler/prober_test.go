package reconciler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// The prober turns real HTTP answers into verdicts: thresholds, the start
// grace, and a liveness check that fails while readiness passes.
func TestProberVerdicts(t *testing.T) {
	var ready, live atomic.Bool
	ready.Store(true)
	live.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := ready.Load()
		if r.URL.Path == "/live" {
			ok = live.Load()
		}
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	check := func(path string) schema.Health {
		return schema.Health{HTTP: &schema.HTTPCheck{Path: path, Port: "http", Status: 200},
			Interval: time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2, Grace: 10 * time.Second}
	}
	liveness := check("/live")
	svc := &schema.Service{Name: "web", Health: check("/healthz"), Liveness: &liveness}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := targets.Instance{ID: "a", State: targets.Running, Endpoints: map[string]string{"http": addr},
		Labels: targets.Labels{Fleet: "f", Service: "web", SpecHash: "h", CreatedAt: t0}}
	p := NewProber()
	observe := func(at time.Duration) Observed {
		t.Helper()
		return p.Observe(context.Background(), t0.Add(at), []targets.Instance{inst}, func(string) *schema.Service { return svc })[0]
	}

	if o := observe(0); o.Health != HealthUnknown {
		t.Fatalf("one success of two: %v, want unknown", o.Health)
	}
	if o := observe(time.Second); o.Health != Healthy || !o.HealthySince.Equal(t0.Add(time.Second)) {
		t.Fatalf("two successes: %v since %v", o.Health, o.HealthySince)
	}
	if o := observe(1500 * time.Millisecond); o.Health != Healthy {
		t.Fatalf("not due yet: %v", o.Health)
	}
	// Liveness fails inside the grace: nothing counts yet.
	live.Store(false)
	observe(2 * time.Second)
	if o := observe(3 * time.Second); o.LivenessFailed {
		t.Fatal("liveness failures inside the start grace counted")
	}
	// After the grace, two failures fail it; readiness stays healthy.
	observe(11 * time.Second)
	if o := observe(12 * time.Second); !o.LivenessFailed || o.Health != Healthy {
		t.Fatalf("after the grace: liveness failed %v, health %v", o.LivenessFailed, o.Health)
	}
	// Readiness failing makes the instance unhealthy after its threshold.
	ready.Store(false)
	observe(13 * time.Second)
	if o := observe(14 * time.Second); o.Health != Unhealthy {
		t.Fatalf("two readiness failures: %v", o.Health)
	}
	// A dead instance is not probed, and a retired one is forgotten.
	inst.State = targets.Dead
	if o := observe(15 * time.Second); o.Health != HealthUnknown {
		t.Fatalf("dead instance: %v", o.Health)
	}
	p.Observe(context.Background(), t0.Add(16*time.Second), nil, func(string) *schema.Service { return svc })
	if len(p.state) != 0 {
		t.Errorf("state of retired instances kept: %v", p.state)
	}
}
