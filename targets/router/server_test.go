package router

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets"
)

func TestSetRoutesRoundTrip(t *testing.T) {
	dir := shortDir(t)
	r := startRouter(t, dir)
	a := newBackend(t, "a1", "gena", nil)

	if got := mustRoutes(t, r.Client, testFleet); got == nil || len(got) != 0 {
		t.Fatalf("routes of a fleet on a fresh router = %#v, want an empty list", got)
	}
	if fleets, err := r.Fleets(t.Context()); err != nil || fleets == nil || len(fleets) != 0 {
		t.Fatalf("fleets of a fresh router = %#v, %v; want an empty list", fleets, err)
	}
	if v := tableOf(t, r.Client).Version; v != 0 {
		t.Fatalf("fresh router version = %d, want 0", v)
	}

	meta := map[string]string{
		"traffic": `{"active":"gena","previous":"genz","since":"2025-03-01T12:00:00Z"}`,
		"empty":   "",
		"text":    "é ✓\n\ttab, \"quoted\"",
	}
	in := []targets.Route{ // not sorted
		{Service: "web", Listen: freeAddr(t), Backends: []targets.Backend{a.backend(3)}, Meta: meta},
		{Service: "batch", Backends: []targets.Backend{}, Meta: map[string]string{"note": "not exposed"}},
	}
	mustSet(t, r.Client, testFleet, in)
	want := []targets.Route{in[1], in[0]}
	if diff := cmp.Diff(want, mustRoutes(t, r.Client, testFleet)); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Table{Version: 1, Fleets: map[string][]targets.Route{testFleet: want}}, tableOf(t, r.Client)); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if fleets, err := r.Fleets(t.Context()); err != nil || !cmp.Equal(fleets, []string{testFleet}) {
		t.Errorf("fleets = %v, %v; want [%s]", fleets, err, testFleet)
	}

	data, err := os.ReadFile(filepath.Join(dir, "router", "routes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Format  int                        `json:"format"`
		Version int64                      `json:"version"`
		Fleets  map[string][]targets.Route `json:"fleets"`
	}
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Format != 2 || saved.Version != 1 {
		t.Errorf("routes.json has format %d, version %d; want 2 and 1", saved.Format, saved.Version)
	}
	if diff := cmp.Diff(map[string][]targets.Route{testFleet: want}, saved.Fleets); diff != "" {
		t.Errorf("routes.json (-want +got):\n%s", diff)
	}

	mustSet(t, r.Client, testFleet, in)
	if v := tableOf(t, r.Client).Version; v != 2 {
		t.Errorf("version after the second set = %d, want 2", v)
	}
	fi, err := os.Stat(filepath.Join(dir, "router"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("router directory mode = %v, want 0700", perm)
	}
}

func TestServesPersistedTableAfterRestart(t *testing.T) {
	dir := shortDir(t)
	a := newBackend(t, "a1", "gena", nil)
	listen := freeAddr(t)
	hc := newHTTPClient(t)
	routes := webRoutes(listen, a.backend(0))
	routes[0].Meta = map[string]string{"traffic": `{"active":"gena"}`}

	first := startRouter(t, dir)
	mustSet(t, first.Client, testFleet, routes)
	mustSet(t, first.Client, testFleet, routes)
	if got := mustGet(t, hc, "http://"+listen); got.body != "a1" {
		t.Fatalf("before restart: %+v", got)
	}
	first.stop()
	hc.CloseIdleConnections()
	if !refused(listen) {
		t.Fatal("listener still open after the router stopped")
	}

	second := startRouter(t, dir) // no SetRoutes
	got := mustGet(t, hc, "http://"+listen)
	if got.status != http.StatusOK || got.body != "a1" || got.gen != "gena" {
		t.Errorf("after restart: %+v, want 200 from a1 of gena", got)
	}
	if diff := cmp.Diff(routes, mustRoutes(t, second.Client, testFleet)); diff != "" {
		t.Errorf("routes after restart (-want +got):\n%s", diff)
	}
	if v := tableOf(t, second.Client).Version; v != 2 {
		t.Errorf("version after restart = %d, want 2", v)
	}
	mustSet(t, second.Client, testFleet, routes)
	if v := tableOf(t, second.Client).Version; v != 3 {
		t.Errorf("version of the next set = %d, want 3", v)
	}
}

func TestStartSkipsUnbindableAddress(t *testing.T) {
	dir := shortDir(t)
	a := newBackend(t, "a1", "gena", nil)
	webAddr, apiAddr := freeAddr(t), freeAddr(t)
	routes := []targets.Route{
		{Service: "api", Listen: apiAddr, Backends: backends(a)},
		{Service: "web", Listen: webAddr, Backends: backends(a)},
	}
	first := startRouter(t, dir)
	mustSet(t, first.Client, testFleet, routes)
	first.stop()

	squatter, err := net.Listen("tcp", apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	r := startRouter(t, dir)
	hc := newHTTPClient(t)
	if got := mustGet(t, hc, "http://"+webAddr); got.body != "a1" {
		t.Errorf("web after start with api unbindable: %+v", got)
	}
	// Setting the routes while the address is still taken fails and
	// changes nothing.
	if err := r.SetRoutes(t.Context(), testFleet, routes); !errors.Is(err, ErrListen) {
		t.Errorf("set routes with api still taken: err = %v, want ErrListen", err)
	}
	squatter.Close()
	mustSet(t, r.Client, testFleet, routes)
	if got := mustGet(t, hc, "http://"+apiAddr); got.body != "a1" {
		t.Errorf("api after the address was freed and the routes set: %+v", got)
	}
}

func TestBindFailureKeepsOldRoutes(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	b := newBackend(t, "b1", "genb", nil)
	webAddr, extraAddr := freeAddr(t), freeAddr(t)
	mustSetWeb(t, r.Client, webAddr, a.backend(0))
	old := tableOf(t, r.Client)

	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	bad := []targets.Route{
		{Service: "web", Listen: webAddr, Backends: backends(b)},
		{Service: "api", Listen: squatter.Addr().String(), Backends: backends(b)},
		{Service: "extra", Listen: extraAddr, Backends: backends(b)},
	}
	err = r.SetRoutes(t.Context(), testFleet, bad)
	if !errors.Is(err, ErrListen) {
		t.Fatalf("set routes with a taken address: err = %v, want ErrListen", err)
	}
	if !strings.Contains(err.Error(), squatter.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
	if diff := cmp.Diff(old, tableOf(t, r.Client)); diff != "" {
		t.Errorf("table changed by a failed set (-old +now):\n%s", diff)
	}
	if reply := mustGet(t, newHTTPClient(t), "http://"+webAddr); reply.body != "a1" {
		t.Errorf("web after failed set answered %+v, want a1", reply)
	}
	if !refused(extraAddr) {
		t.Errorf("%s left bound by a failed set", extraAddr)
	}
}

func TestInvalidRoutes(t *testing.T) {
	r := startRouter(t, shortDir(t))
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	ok := targets.Backend{Instance: "i", Addr: "127.0.0.1:9", Generation: "g"}
	web := func(r targets.Route) []targets.Route { r.Service = "web"; return []targets.Route{r} }
	tests := []struct {
		name   string
		fleet  string
		routes []targets.Route
		msg    string // part of the error's text
	}{
		{"empty fleet name", "", webRoutes(addr), "empty fleet name"},
		{"fleet name with a slash", "a/b", webRoutes(addr), "slash"},
		{"fleet name dot-dot", "..", webRoutes(addr), "not a name"},
		{"empty service name", testFleet, []targets.Route{{}}, "empty service name"},
		{"service listed twice", testFleet, []targets.Route{{Service: "web"}, {Service: "web"}}, "service web listed twice"},
		{"listen without port", testFleet, web(targets.Route{Listen: "127.0.0.1"}), "listen"},
		{"listen on port 0", testFleet, web(targets.Route{Listen: "127.0.0.1:0"}), "port must be"},
		{"two services on one address", testFleet, []targets.Route{
			{Service: "web", Listen: addr}, {Service: "api", Listen: addr},
		}, "listen " + addr + " is used by fleet " + testFleet + ", service api"},
		{"backend without address", testFleet, web(targets.Route{Backends: []targets.Backend{{Instance: "i"}}}), "empty address"},
		{"backend listed twice", testFleet, web(targets.Route{Backends: []targets.Backend{ok, ok}}), "listed twice"},
		{"negative weight", testFleet, web(targets.Route{Backends: []targets.Backend{{Addr: "127.0.0.1:9", Weight: -1}}}), "negative weight"},
		{"backend is the route's own listen address", testFleet, web(targets.Route{Listen: addr, Backends: []targets.Backend{{Instance: "i", Addr: addr}}}),
			"backend " + addr + " is the router's own listen address (fleet " + testFleet + ", service web)"},
		{"backend is a later route's listen address", testFleet, []targets.Route{
			{Service: "api", Backends: []targets.Backend{{Instance: "i", Addr: addr}}}, {Service: "web", Listen: addr},
		}, "service api: backend " + addr + " is the router's own listen address (fleet " + testFleet + ", service web)"},
		{"loopback backend of a wildcard listen address", testFleet, web(targets.Route{Listen: "0.0.0.0:" + port,
			Backends: []targets.Backend{{Instance: "i", Addr: "localhost:" + port}}}), "backend localhost:" + port + " is the router's own listen address"},
		{"localhost backend of a loopback listen address", testFleet, web(targets.Route{Listen: addr,
			Backends: []targets.Backend{{Instance: "i", Addr: "localhost:" + port}}}), "backend localhost:" + port + " is the router's own listen address"},
		{"wildcard backend of a loopback listen address", testFleet, web(targets.Route{Listen: addr,
			Backends: []targets.Backend{{Instance: "i", Addr: "0.0.0.0:" + port}}}), "backend 0.0.0.0:" + port + " is the router's own listen address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := r.SetRoutes(t.Context(), tc.fleet, tc.routes)
			if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("SetRoutes = %v, want ErrInvalidTable saying %q", err, tc.msg)
			}
		})
	}
	if got := tableOf(t, r.Client); got.Version != 0 || len(got.Fleets) != 0 {
		t.Errorf("table after invalid sets = %+v, want version 0 and no fleets", got)
	}
	if !refused(addr) {
		t.Errorf("%s bound by an invalid set", addr)
	}
}

// TestRefusesLoopAcrossFleets: a fleet's backend may not be the listen
// address of another fleet's route, nor may a route listen where another
// fleet's backend is, and the refused set changes nothing.
func TestRefusesLoopAcrossFleets(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, a.backend(0))
	old := tableOf(t, r.Client)

	err := r.SetRoutes(t.Context(), "other", []targets.Route{{Service: "api", Backends: []targets.Backend{{Instance: "i", Addr: listen}}}})
	if msg := "backend " + listen + " is the router's own listen address (fleet " + testFleet + ", service web)"; !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), msg) {
		t.Errorf("SetRoutes = %v, want ErrInvalidTable saying %q", err, msg)
	}
	err = r.SetRoutes(t.Context(), "other", []targets.Route{{Service: "api", Listen: a.backend(0).Addr}})
	if msg := "backend " + a.backend(0).Addr + " is the router's own listen address (fleet other, service api)"; !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), msg) {
		t.Errorf("SetRoutes = %v, want ErrInvalidTable saying %q", err, msg)
	}
	if diff := cmp.Diff(old, tableOf(t, r.Client)); diff != "" {
		t.Errorf("table changed by a refused set (-old +now):\n%s", diff)
	}
	if reply := mustGet(t, newHTTPClient(t), "http://"+listen); reply.body != "a1" {
		t.Errorf("web after the refused sets answered %+v, want a1", reply)
	}
}

// TestAcceptsBackendOnAnotherAddress: the same port on another loopback
// address, or behind another host, is not the router's own.
func TestAcceptsBackendOnAnotherAddress(t *testing.T) {
	r := startRouter(t, shortDir(t))
	listen := freeAddr(t)
	_, port, _ := net.SplitHostPort(listen)
	bs := []targets.Backend{{Instance: "a", Addr: "127.0.0.2:" + port, Generation: "g"}, {Instance: "b", Addr: "192.0.2.1:" + port, Generation: "g"}}
	if err := r.SetRoutes(t.Context(), testFleet, []targets.Route{{Service: "web", Listen: listen, Backends: bs}}); err != nil {
		t.Fatalf("SetRoutes = %v, want nil", err)
	}
}

// TestListenerKeptAcrossSetRoutes sends two requests on one client
// connection with a SetRoutes in between: the connection survives (the
// listener was not reopened) and the second request follows the new routes.
func TestListenerKeptAcrossSetRoutes(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	b := newBackend(t, "b1", "genb", nil)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, a.backend(0))

	roundTrip := keptAlive(t, listen)
	if got := roundTrip(); got != "a1" {
		t.Fatalf("first request answered by %q, want a1", got)
	}
	mustSetWeb(t, r.Client, listen, b.backend(0))
	if got := roundTrip(); got != "b1" {
		t.Errorf("request on the kept-alive connection after SetRoutes answered by %q, want b1", got)
	}
}

func TestRemovedListenerClosesAndRebinds(t *testing.T) {
	r := startRouter(t, shortDir(t))
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := newBackend(t, "slow", "gena", func(w http.ResponseWriter, req *http.Request) {
		entered <- struct{}{}
		<-release
		w.Write([]byte("slow"))
	})
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, slow.backend(0))

	hc := newHTTPClient(t)
	result := make(chan reply, 1)
	go func() {
		got, err := get(hc, "http://"+listen)
		if err != nil {
			t.Error(err)
		}
		result <- got
	}()
	<-entered
	mustSet(t, r.Client, testFleet, nil)
	if !refused(listen) {
		t.Error("listen address still accepts after its route was removed")
	}
	close(release)
	if got := <-result; got.status != http.StatusOK || got.body != "slow" {
		t.Errorf("request in flight on the removed listener: %+v, want 200 slow", got)
	}

	a := newBackend(t, "a1", "gena", nil)
	mustSetWeb(t, r.Client, listen, a.backend(0))
	if got := mustGet(t, newHTTPClient(t), "http://"+listen); got.body != "a1" {
		t.Errorf("after re-adding the route: %+v", got)
	}
}

func TestSecondRouterOnSameDirRefused(t *testing.T) {
	dir := shortDir(t)
	startRouter(t, dir)
	s, err := NewServer(Options{StateDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run = %v, want already running", err)
	}
	if err := NewClient(dir).Ping(t.Context()); err != nil {
		t.Errorf("first router no longer answers: %v", err)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 100)
	err := Options{StateDir: long}.Validate()
	if err == nil || !strings.Contains(err.Error(), "limit of unix sockets") {
		t.Errorf("Validate = %v, want the socket path limit", err)
	}
	if _, err := NewServer(Options{StateDir: long}); err == nil {
		t.Error("NewServer accepted a state directory too long for its socket")
	}
	err = NewClient(long).Ping(t.Context())
	if err == nil || !strings.Contains(err.Error(), "limit of unix sockets") {
		t.Errorf("Ping = %v, want the socket path limit", err)
	}
}

func TestClientWithoutRouter(t *testing.T) {
	c := NewClient(shortDir(t))
	if err := c.Ping(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Ping = %v, want ErrNotRunning", err)
	}
	if _, err := c.Routes(t.Context(), testFleet); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Routes = %v, want ErrNotRunning", err)
	}
	if err := c.SetRoutes(t.Context(), testFleet, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SetRoutes = %v, want ErrNotRunning", err)
	}
	if _, err := c.Fleets(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Fleets = %v, want ErrNotRunning", err)
	}
	if _, err := c.Stats(t.Context(), testFleet); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Stats = %v, want ErrNotRunning", err)
	}
	if err := c.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown of no router = %v, want nil", err)
	}
}
