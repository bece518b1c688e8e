package router

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestApplyTableRoundTrip(t *testing.T) {
	dir := shortDir(t)
	r := startRouter(t, dir)
	a := newBackend(t, "a1", "gena", nil)

	empty, err := r.Table(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if empty.Version != 0 || len(empty.Services) != 0 {
		t.Fatalf("fresh router table = %+v, want version 0 and no services", empty)
	}

	since := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	in := Table{
		Version: 42, // ignored
		Services: map[string]Route{
			"web": {
				Listen:        freeAddr(t),
				Backends:      []Backend{a.backend(3)},
				Active:        "gena",
				Previous:      "genz",
				PreviousSince: since,
				Meta:          map[string]string{"revision": "main@sha1:abc123"},
			},
			"batch": {Backends: []Backend{}, Meta: map[string]string{"note": "not exposed"}},
		},
	}
	out := mustApply(t, r.Client, in)
	if out.Version != 1 {
		t.Errorf("first apply version = %d, want 1", out.Version)
	}
	want := in
	want.Version = 1
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("apply returned (-want +got):\n%s", diff)
	}
	got, err := r.Table(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}

	data, err := os.ReadFile(filepath.Join(dir, "router", "routes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved Table
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, saved); diff != "" {
		t.Errorf("routes.json (-want +got):\n%s", diff)
	}

	if again := mustApply(t, r.Client, in); again.Version != 2 {
		t.Errorf("second apply version = %d, want 2", again.Version)
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

	first := startRouter(t, dir)
	mustApply(t, first.Client, webTable(listen, a.backend(0)))
	mustApply(t, first.Client, webTable(listen, a.backend(0)))
	if got := mustGet(t, hc, "http://"+listen); got.body != "a1" {
		t.Fatalf("before restart: %+v", got)
	}
	first.stop()
	hc.CloseIdleConnections()
	if !refused(listen) {
		t.Fatal("listener still open after the router stopped")
	}

	second := startRouter(t, dir) // no Apply
	got := mustGet(t, hc, "http://"+listen)
	if got.status != http.StatusOK || got.body != "a1" || got.gen != "gena" {
		t.Errorf("after restart: %+v, want 200 from a1 of gena", got)
	}
	tbl, err := second.Table(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Version != 2 {
		t.Errorf("version after restart = %d, want 2", tbl.Version)
	}
	if out := mustApply(t, second.Client, tbl); out.Version != 3 {
		t.Errorf("version of the next apply = %d, want 3", out.Version)
	}
}

func TestStartSkipsUnbindableAddress(t *testing.T) {
	dir := shortDir(t)
	a := newBackend(t, "a1", "gena", nil)
	webAddr, apiAddr := freeAddr(t), freeAddr(t)
	tbl := Table{Services: map[string]Route{
		"web": {Listen: webAddr, Backends: backends(a)},
		"api": {Listen: apiAddr, Backends: backends(a)},
	}}
	first := startRouter(t, dir)
	mustApply(t, first.Client, tbl)
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
	// Applying while the address is still taken fails and changes nothing.
	if _, err := r.Apply(t.Context(), tbl); !errors.Is(err, ErrListen) {
		t.Errorf("apply with api still taken: err = %v, want ErrListen", err)
	}
	squatter.Close()
	mustApply(t, r.Client, tbl)
	if got := mustGet(t, hc, "http://"+apiAddr); got.body != "a1" {
		t.Errorf("api after the address was freed and the table applied: %+v", got)
	}
}

func TestBindFailureKeepsOldTable(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	b := newBackend(t, "b1", "genb", nil)
	webAddr, extraAddr := freeAddr(t), freeAddr(t)
	old := mustApply(t, r.Client, webTable(webAddr, a.backend(0)))

	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	bad := Table{Services: map[string]Route{
		"web":   {Listen: webAddr, Backends: backends(b)},
		"api":   {Listen: squatter.Addr().String(), Backends: backends(b)},
		"extra": {Listen: extraAddr, Backends: backends(b)},
	}}
	_, err = r.Apply(t.Context(), bad)
	if !errors.Is(err, ErrListen) {
		t.Fatalf("apply with a taken address: err = %v, want ErrListen", err)
	}
	if !strings.Contains(err.Error(), squatter.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
	got, err := r.Table(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(old, got); diff != "" {
		t.Errorf("table changed by a failed apply (-old +now):\n%s", diff)
	}
	if reply := mustGet(t, newHTTPClient(t), "http://"+webAddr); reply.body != "a1" {
		t.Errorf("web after failed apply answered %+v, want a1", reply)
	}
	if !refused(extraAddr) {
		t.Errorf("%s left bound by a failed apply", extraAddr)
	}
}

func TestInvalidTable(t *testing.T) {
	r := startRouter(t, shortDir(t))
	addr := freeAddr(t)
	ok := Backend{Instance: "i", Addr: "127.0.0.1:9", Generation: "g"}
	tests := []struct {
		name string
		tbl  Table
	}{
		{"empty service name", Table{Services: map[string]Route{"": {}}}},
		{"listen without port", Table{Services: map[string]Route{"web": {Listen: "127.0.0.1"}}}},
		{"listen on port 0", Table{Services: map[string]Route{"web": {Listen: "127.0.0.1:0"}}}},
		{"two services on one address", Table{Services: map[string]Route{
			"web": {Listen: addr}, "api": {Listen: addr},
		}}},
		{"backend without address", Table{Services: map[string]Route{"web": {Backends: []Backend{{Instance: "i"}}}}}},
		{"backend listed twice", Table{Services: map[string]Route{"web": {Backends: []Backend{ok, ok}}}}},
		{"negative weight", Table{Services: map[string]Route{"web": {Backends: []Backend{{Addr: "127.0.0.1:9", Weight: -1}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.tbl.Validate(); !errors.Is(err, ErrInvalidTable) {
				t.Errorf("Validate = %v, want ErrInvalidTable", err)
			}
			_, err := r.Apply(t.Context(), tc.tbl)
			if !errors.Is(err, ErrInvalidTable) {
				t.Errorf("Apply = %v, want ErrInvalidTable", err)
			}
		})
	}
	if got, _ := r.Table(t.Context()); got.Version != 0 {
		t.Errorf("version after invalid applies = %d, want 0", got.Version)
	}
}

// TestListenerKeptAcrossApplies sends two requests on one client
// connection with an apply in between: the connection survives (the
// listener was not reopened) and the second request follows the new table.
func TestListenerKeptAcrossApplies(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	b := newBackend(t, "b1", "genb", nil)
	listen := freeAddr(t)
	mustApply(t, r.Client, webTable(listen, a.backend(0)))

	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	roundTrip := func() string {
		t.Helper()
		if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: web\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		if _, err := bufio.NewReader(resp.Body).WriteTo(&sb); err != nil {
			t.Fatal(err)
		}
		return sb.String()
	}
	if got := roundTrip(); got != "a1" {
		t.Fatalf("first request answered by %q, want a1", got)
	}
	mustApply(t, r.Client, webTable(listen, b.backend(0)))
	if got := roundTrip(); got != "b1" {
		t.Errorf("request on the kept-alive connection after apply answered by %q, want b1", got)
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
	mustApply(t, r.Client, webTable(listen, slow.backend(0)))

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
	mustApply(t, r.Client, Table{})
	if !refused(listen) {
		t.Error("listen address still accepts after its route was removed")
	}
	close(release)
	if got := <-result; got.status != http.StatusOK || got.body != "slow" {
		t.Errorf("request in flight on the removed listener: %+v, want 200 slow", got)
	}

	a := newBackend(t, "a1", "gena", nil)
	mustApply(t, r.Client, webTable(listen, a.backend(0)))
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
	if err := c.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown of no router = %v, want nil", err)
	}
}
