package router

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets"
)

// The front interface as the reconciler declares it.
var _ interface {
	Routes(ctx context.Context, fleet string) ([]targets.Route, error)
	SetRoutes(ctx context.Context, fleet string, routes []targets.Route) error
	Drain(ctx context.Context, addrs []string) error
} = (*Client)(nil)

// TestFleetsShareServiceName runs two fleets that both have a service web,
// with one generation name in common: each serves its own backends and has
// its own counters, and replacing one fleet's routes leaves the other's
// listener (a kept-alive connection survives), routes and counters alone.
func TestFleetsShareServiceName(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a1 := newBackend(t, "a1", "g1", nil)
	aAPI := newBackend(t, "a-api", "g1", nil)
	b1 := newBackend(t, "b1", "g1", nil)
	b2 := newBackend(t, "b2", "g2", nil)
	alphaWeb, alphaAPI, betaWeb := freeAddr(t), freeAddr(t), freeAddr(t)
	alpha := []targets.Route{
		{Service: "api", Listen: alphaAPI, Backends: backends(aAPI), Meta: map[string]string{"owner": "alpha"}},
		{Service: "web", Listen: alphaWeb, Backends: backends(a1), Meta: map[string]string{"owner": "alpha"}},
	}
	mustSet(t, r.Client, "alpha", alpha)
	mustSet(t, r.Client, "beta", webRoutes(betaWeb, b1.backend(0)))

	hc := newHTTPClient(t)
	for addr, want := range map[string]string{alphaWeb: "a1", alphaAPI: "a-api", betaWeb: "b1"} {
		if got := mustGet(t, hc, "http://"+addr); got.body != want {
			t.Errorf("GET %s answered %+v, want %s", addr, got, want)
		}
	}
	if fleets, err := r.Fleets(t.Context()); err != nil || !cmp.Equal(fleets, []string{"alpha", "beta"}) {
		t.Errorf("fleets = %v, %v; want [alpha beta]", fleets, err)
	}

	onAlpha := keptAlive(t, alphaWeb)
	if got := onAlpha(); got != "a1" {
		t.Fatalf("alpha's web answered %q, want a1", got)
	}
	alphaBefore := webCounts(t, r.Client, "alpha")
	if want := map[string]Counts{"g1": {Requests: 2, Status2xx: 2}}; !cmp.Equal(want, alphaBefore, ignoreLatency) {
		t.Errorf("alpha's web counts = %+v, want %+v", alphaBefore, want)
	}

	mustSet(t, r.Client, "beta", webRoutes(betaWeb, b2.backend(0)))
	if got := mustGet(t, hc, "http://"+betaWeb); got.body != "b2" {
		t.Errorf("beta's web after its change answered %+v, want b2", got)
	}
	if diff := cmp.Diff(alphaBefore, webCounts(t, r.Client, "alpha")); diff != "" {
		t.Errorf("alpha's counters changed by beta's traffic (-before +after):\n%s", diff)
	}
	if got := onAlpha(); got != "a1" { // fails the test if the connection broke
		t.Errorf("alpha's web after beta's change answered %q, want a1", got)
	}
	if diff := cmp.Diff(alpha, mustRoutes(t, r.Client, "alpha")); diff != "" {
		t.Errorf("alpha's routes after beta's change (-want +got):\n%s", diff)
	}
	want := map[string]Counts{"g1": {Requests: 1, Status2xx: 1}, "g2": {Requests: 1, Status2xx: 1}}
	if diff := cmp.Diff(want, webCounts(t, r.Client, "beta"), ignoreLatency); diff != "" {
		t.Errorf("beta's web counts (-want +got):\n%s", diff)
	}
	st, err := r.Stats(t.Context(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Services["api"]; !ok || len(st.Services) != 2 {
		t.Errorf("alpha's stats hold services %v, want api and web", st.Services)
	}
}

func TestListenUsedByAnotherFleetRefused(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "g1", nil)
	b := newBackend(t, "b1", "g1", nil)
	taken, betaAddr, free := freeAddr(t), freeAddr(t), freeAddr(t)
	mustSet(t, r.Client, "alpha", webRoutes(taken, a.backend(0)))
	mustSet(t, r.Client, "beta", webRoutes(betaAddr, b.backend(0)))
	before := tableOf(t, r.Client)

	for name, routes := range map[string][]targets.Route{
		"as another service": {
			{Service: "web", Listen: betaAddr, Backends: backends(b)},
			{Service: "api", Listen: taken, Backends: backends(b)},
			{Service: "extra", Listen: free, Backends: backends(b)},
		},
		"as the same service name": webRoutes(taken, b.backend(0)),
	} {
		t.Run(name, func(t *testing.T) {
			err := r.SetRoutes(t.Context(), "beta", routes)
			if !errors.Is(err, ErrInvalidTable) {
				t.Fatalf("SetRoutes = %v, want ErrInvalidTable", err)
			}
			if msg := "listen " + taken + " is used by fleet alpha, service web"; !strings.Contains(err.Error(), msg) {
				t.Errorf("error %q does not say %q", err, msg)
			}
		})
	}
	if diff := cmp.Diff(before, tableOf(t, r.Client)); diff != "" {
		t.Errorf("table changed by refused sets (-before +after):\n%s", diff)
	}
	hc := newHTTPClient(t)
	if got := mustGet(t, hc, "http://"+taken); got.body != "a1" {
		t.Errorf("alpha's web answered %+v, want a1", got)
	}
	if got := mustGet(t, hc, "http://"+betaAddr); got.body != "b1" {
		t.Errorf("beta's web answered %+v, want b1", got)
	}
	if !refused(free) {
		t.Errorf("%s bound by a refused set", free)
	}
}

func TestRemoveFleetClosesOnlyItsListeners(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "g1", nil)
	b := newBackend(t, "b1", "g1", nil)
	alphaWeb, alphaAPI, betaWeb := freeAddr(t), freeAddr(t), freeAddr(t)
	mustSet(t, r.Client, "alpha", []targets.Route{
		{Service: "api", Listen: alphaAPI, Backends: backends(a)},
		{Service: "web", Listen: alphaWeb, Backends: backends(a)},
	})
	beta := webRoutes(betaWeb, b.backend(0))
	mustSet(t, r.Client, "beta", beta)

	mustSet(t, r.Client, "alpha", []targets.Route{})
	for _, addr := range []string{alphaWeb, alphaAPI} {
		if !refused(addr) {
			t.Errorf("alpha's %s still accepts after alpha was removed", addr)
		}
	}
	if got := mustGet(t, newHTTPClient(t), "http://"+betaWeb); got.body != "b1" {
		t.Errorf("beta's web answered %+v, want b1", got)
	}
	if got := mustRoutes(t, r.Client, "alpha"); got == nil || len(got) != 0 {
		t.Errorf("routes of the removed fleet = %#v, want an empty list", got)
	}
	if fleets, err := r.Fleets(t.Context()); err != nil || !cmp.Equal(fleets, []string{"beta"}) {
		t.Errorf("fleets = %v, %v; want [beta]", fleets, err)
	}
	if diff := cmp.Diff(beta, mustRoutes(t, r.Client, "beta")); diff != "" {
		t.Errorf("beta's routes (-want +got):\n%s", diff)
	}

	// The freed address can now go to another fleet.
	beta = append(beta, targets.Route{Service: "admin", Listen: alphaWeb, Backends: backends(b)})
	mustSet(t, r.Client, "beta", beta)
	if got := mustGet(t, newHTTPClient(t), "http://"+alphaWeb); got.body != "b1" {
		t.Errorf("beta's admin on alpha's former address answered %+v, want b1", got)
	}
}

// TestFleetNameEscaped uses a fleet name with characters that a path
// must escape.
func TestFleetNameEscaped(t *testing.T) {
	r := startRouter(t, shortDir(t))
	const fleet = "team a?b#c%d"
	routes := []targets.Route{{Service: "web", Backends: []targets.Backend{}, Meta: map[string]string{"k": "v"}}}
	mustSet(t, r.Client, fleet, routes)
	if diff := cmp.Diff(routes, mustRoutes(t, r.Client, fleet)); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if fleets, err := r.Fleets(t.Context()); err != nil || !cmp.Equal(fleets, []string{fleet}) {
		t.Errorf("fleets = %q, %v; want [%q]", fleets, err, fleet)
	}
	for _, bad := range []string{"", "a/b", ".", ".."} {
		if _, err := r.Routes(t.Context(), bad); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("Routes(%q) = %v, want ErrInvalidTable", bad, err)
		}
		if _, err := r.Stats(t.Context(), bad); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("Stats(%q) = %v, want ErrInvalidTable", bad, err)
		}
	}
}
