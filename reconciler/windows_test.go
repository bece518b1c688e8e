package reconciler

import (
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
)

func TestDeployWindow(t *testing.T) {
	now := time.Date(2026, 11, 24, 14, 30, 0, 0, time.Local) // a Tuesday
	at := func(h, m int) time.Time { return time.Date(2026, 11, 24, h, m, 0, 0, time.Local) }
	allow := func(spec, d string) schema.Window {
		dur, _ := time.ParseDuration(d)
		return schema.Window{Kind: "allow", Schedule: spec, Duration: dur}
	}
	deny := func(spec, d string) schema.Window {
		w := allow(spec, d)
		w.Kind = "deny"
		return w
	}
	for _, tc := range []struct {
		name    string
		windows []schema.Window
		open    bool
		until   time.Time
	}{
		{"no windows", nil, true, time.Time{}},
		{"inside an allow window", []schema.Window{allow("0 14 * * *", "1h")}, true, time.Time{}},
		{"before an allow window", []schema.Window{allow("0 16 * * *", "1h")}, false, at(16, 0)},
		{"after an allow window: the next one", []schema.Window{allow("0 9 * * *", "2h")}, false, at(9, 0).AddDate(0, 0, 1)},
		{"the earliest of two allow windows", []schema.Window{allow("0 18 * * *", "1h"), allow("0 16 * * *", "1h")}, false, at(16, 0)},
		{"inside a deny window", []schema.Window{deny("0 14 * * 2", "2h")}, false, at(16, 0)},
		{"a deny window over an allow window", []schema.Window{allow("0 0 * * *", "24h"), deny("0 14 * * *", "1h")}, false, at(15, 0)},
		{"outside a deny window", []schema.Window{deny("0 9 * * *", "1h")}, true, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, until := deployWindow(tc.windows, now)
			if open != tc.open || !until.Equal(tc.until) {
				t.Errorf("deployWindow = %v, %v; want %v, %v", open, until, tc.open, tc.until)
			}
		})
	}
}

// A rollout waits for its deploy window before it starts; once started it
// finishes; reverts to the warm generation are never held back.
func TestPlanDeployWindows(t *testing.T) {
	closed := func(s *schema.Service) *schema.Service {
		s.DeployWindows = []schema.Window{{Kind: "deny", Schedule: "0 0 * * *", Duration: 24 * time.Hour}}
		return s
	}
	tr3 := webTraffic(route("v1", "a b c"))
	runPlanCases(t, []planCase{
		{name: "a rollout outside the window waits", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v2", closed(rolling(3, "1", "0")))),
			want:    expect{route: "a b c", active: "v1"}},
		{name: "a rollout under way finishes", insts: "web v1 a:h b:h c:h; web v2@1m d:h", traffic: tr3,
			desired: web(desire("v2", closed(rolling(3, "1", "0")))),
			want:    expect{provision: 1, retire: "Replaced=1", drain: 1, route: "b c d"}},
		{name: "unchanged spec is not held", insts: "web v1 a:h b:h c:h", traffic: tr3,
			desired: web(desire("v1", closed(rolling(3, "1", "0")))),
			want:    expect{route: "a b c", converged: true, unchanged: true}},
	})
	p := PlanFleet(Input{Fleet: testFleet, Desired: web(desire("v2", closed(rolling(3, "1", "0")))),
		Instances: instances(t, "web v1 a:h b:h c:h"), Traffic: tr3, Now: t0})
	until, ok := p.Deferred()
	if !ok || !until.After(t0) || !p.Changes() || p.Converged() {
		t.Errorf("deferred = %v, %v; changes %v; converged %v", until, ok, p.Changes(), p.Converged())
	}
	if sp := p.Services[0]; len(sp.Notes) == 0 || sp.Provision != 3 {
		t.Errorf("the plan does not say why it waits: %+v", sp)
	}
	// The fleet's windows count too.
	p = PlanFleet(Input{Fleet: testFleet, Desired: web(desire("v2", rolling(3, "1", "0"))),
		DeployWindows: []schema.Window{{Kind: "deny", Schedule: "0 0 * * *", Duration: 24 * time.Hour}},
		Instances:     instances(t, "web v1 a:h b:h c:h"), Traffic: tr3, Now: t0})
	if _, ok := p.Deferred(); !ok {
		t.Error("the fleet's deny window did not hold the rollout back")
	}
}

// Overlapping deny windows: the rollout waits until the last of them ends,
// not until the first does.
func TestDeployWindowOverlapping(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 38, 30, 0, time.UTC)
	for _, c := range []struct {
		name    string
		windows []schema.Window
		want    time.Time
	}{
		{"two firings of one window overlap", []schema.Window{{Kind: "deny", Schedule: "0,20 9 * * *", Duration: 30 * time.Minute}},
			time.Date(2026, 12, 1, 9, 50, 0, 0, time.UTC)},
		{"two deny windows that chain", []schema.Window{
			{Kind: "deny", Schedule: "0 9 * * *", Duration: time.Hour},
			{Kind: "deny", Schedule: "30 9 * * *", Duration: time.Hour}}, time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)},
		{"a single window", []schema.Window{{Kind: "deny", Schedule: "0 9 * * *", Duration: time.Hour}}, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
	} {
		open, until := deployWindow(c.windows, now)
		if open {
			t.Errorf("%s: open at %s", c.name, now)
			continue
		}
		if ok, _ := deployWindow(c.windows, until); !ok {
			t.Errorf("%s: still closed at the until it gave (%s)", c.name, until)
		}
		if !until.Equal(c.want) {
			t.Errorf("%s: until %s, want %s", c.name, until, c.want)
		}
	}
	// A deny window that never ends (every minute, for an hour) says a
	// time far ahead, never one a minute away.
	_, until := deployWindow([]schema.Window{{Kind: "deny", Schedule: "* * * * *", Duration: time.Hour}}, now)
	if until.Sub(now) < 24*time.Hour {
		t.Errorf("a window that never opens waits until %s", until)
	}
}

// How long the plan takes to say when a rollout may start, under a deny
// window that fires every minute for a day (each window ends a minute
// after the one before, so the answer is found through ~1,000 of them).
func BenchmarkDeployWindowChained(b *testing.B) {
	now := time.Date(2026, 12, 1, 9, 38, 30, 0, time.UTC)
	ws := []schema.Window{{Kind: "deny", Schedule: "* * * * *", Duration: 24 * time.Hour}}
	for b.Loop() {
		deployWindow(ws, now)
	}
}
