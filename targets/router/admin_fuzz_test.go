package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molt-dev/molt/targets"
)

// heldMark in a fuzzed body stands for a loopback address that the test
// holds open (so binding it fails): the router under fuzzing never binds
// a port, and an input asking it to bind any other address is skipped.
const heldMark = "@held@"

// fuzzStart is the table each input starts from: two fleets, no listen
// address.
var fuzzStart = map[string][]targets.Route{
	"alpha": {{Service: "web", Backends: []targets.Backend{{Instance: "i1", Addr: "127.0.0.1:40001", Generation: "g1"}},
		Meta: map[string]string{"molt.traffic": `{"active":"g1"}`}}},
	"beta": {{Service: "api", HAProxy: "be_api", Backends: []targets.Backend{{Instance: "i2", Addr: "127.0.0.1:40002", Generation: "g2", Weight: 3}}}},
}

func FuzzAdmin(f *testing.F) {
	const valid = `[{"service":"web","backends":[{"instance":"i3","addr":"127.0.0.1:40003","generation":"g3","weight":2}],"meta":{"k":"v"}},{"service":"db","backends":null}]`
	seeds := []struct{ method, path, body string }{
		{"PUT", "/fleets/alpha/routes", valid},
		{"PUT", "/fleets/gamma/routes", valid},
		{"PUT", "/fleets/alpha/routes", `[]`},
		{"PUT", "/fleets/alpha/routes", `null`},
		{"PUT", "/fleets/alpha/routes", `[{"service":"web"},{"service":"web"}]`},
		{"PUT", "/fleets/alpha/routes", `[{"service":"web","backends":[{"addr":"127.0.0.1:0"}]}]`},
		{"PUT", "/fleets/alpha/routes", `[{"service":"web","listen":"` + heldMark + `"}]`},
		{"PUT", "/fleets/alpha/routes", `[{"service":"","backends":[]}]`},
		{"PUT", "/fleets/alpha/routes", `[{"service":"w","backends":[{"addr":"127.0.0.1:1","weight":-1}]}]`},
		{"PUT", "/fleets/alpha/routes", `[{"service":"w"}] trailing`},
		{"PUT", "/fleets/alpha/routes", `{"service":"web"}`},
		{"PUT", "/fleets/a%2Fb/routes", `[]`},
		{"PUT", "/fleets/../routes", `[]`},
		{"PUT", "/fleets/%2E%2E/routes", `[]`},
		{"GET", "/fleets", ""},
		{"GET", "/table", ""},
		{"GET", "/ping", ""},
		{"GET", "/stats", ""},
		{"GET", "/fleets/alpha/routes", ""},
		{"GET", "/fleets/alpha/stats", ""},
		{"GET", "/fleets/alpha/counts?since=2026-01-01T00:00:00Z", ""},
		{"GET", "/fleets/alpha/counts?since=yesterday", ""},
		{"POST", "/drain", `{"addrs":["127.0.0.1:9"]}`},
		{"POST", "/drain", `{"addrs":["127.0.0.1:40001"]}`},
		{"POST", "/drain", `{"addrs":`},
		{"POST", "/shutdown", ""},
		{"DELETE", "/table", ""},
		{"GET", "/nowhere", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}
	dir := shortDir(f)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { held.Close() })
	heldAddr := held.Addr().String()

	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		body = bytes.ReplaceAll(body, []byte(heldMark), []byte(heldAddr))
		// The routes the body holds, read as the handler reads them.
		var routes []targets.Route
		dec := json.NewDecoder(bytes.NewReader(body))
		decoded := dec.Decode(&routes) == nil
		if _, err := dec.Token(); decoded && !errors.Is(err, io.EOF) {
			decoded = false // one JSON value, and nothing after it
		}
		for _, r := range routes {
			if r.Listen != "" && r.Listen != heldAddr && checkAddr(r.Listen) == nil {
				t.Skip("would bind a listen address")
			}
		}
		req, err := http.NewRequestWithContext(t.Context(), method, "http://router"+path, bytes.NewReader(body))
		if err != nil {
			t.Skip("not a request")
		}

		s, err := NewServer(Options{StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, fleet := range []string{"alpha", "beta"} {
			if _, err := s.setRoutes(fleet, fuzzStart[fleet]); err != nil {
				t.Fatal(err)
			}
		}
		before := tableJSON(t, s.current.Load().table)

		rec := httptest.NewRecorder()
		s.adminHandler().ServeHTTP(rec, req)
		after := s.current.Load().table

		// Every answer of a handler is one JSON value; errors say why.
		if rec.Header().Get("Content-Type") == "application/json" {
			dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("answer %q is not JSON: %v", rec.Body, err)
			}
			if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
				t.Fatalf("answer %q holds more than one JSON value", rec.Body)
			}
			if m, _ := v.(map[string]any); rec.Code >= 400 && (m == nil || m["error"] == nil || m["error"] == "") {
				t.Fatalf("error %d without a message: %q", rec.Code, rec.Body)
			}
		}
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}

		putRoutes := req.Pattern == "PUT /fleets/{fleet}/routes"
		if !putRoutes || rec.Code != http.StatusOK {
			if got := tableJSON(t, after); got != before {
				t.Fatalf("%s %s answered %d and changed the table:\n%s\nto\n%s", method, path, rec.Code, before, got)
			}
		}
		switch {
		case req.Pattern == "POST /shutdown":
			select {
			case <-s.stop:
			default:
				t.Fatal("shutdown answered without stopping")
			}
		case putRoutes && rec.Code == http.StatusConflict:
			if !strings.Contains(string(body), heldAddr) {
				t.Fatalf("409 without the held address: %s", rec.Body)
			}
		case putRoutes && rec.Code != http.StatusOK:
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("invalid routes answered %d: %s", rec.Code, rec.Body)
			}
		case putRoutes:
			// Set, then read back: the same routes, sorted by service,
			// and nothing else changed.
			fleet := req.PathValue("fleet")
			if !decoded {
				t.Fatalf("routes set from a body that is not one JSON list of routes: %q", body)
			}
			want := routesJSON(t, sortedRoutes(routes))
			if got := strings.TrimSpace(rec.Body.String()); got != want {
				t.Fatalf("PUT answered %s, want %s", got, want)
			}
			get := httptest.NewRecorder()
			s.adminHandler().ServeHTTP(get, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/fleets/"+url.PathEscape(fleet)+"/routes", nil))
			if got := strings.TrimSpace(get.Body.String()); get.Code != http.StatusOK || got != want {
				t.Fatalf("GET after PUT answered %d %s, want %s", get.Code, got, want)
			}
			if after.Version != 3 {
				t.Fatalf("version %d after the third change", after.Version)
			}
			for name, rs := range fuzzStart {
				if name != fleet && routesJSON(t, after.Fleets[name]) != routesJSON(t, rs) {
					t.Fatalf("fleet %s changed by a PUT of fleet %q", name, fleet)
				}
			}
			if _, ok := after.Fleets[fleet]; ok != (len(routes) > 0) {
				t.Fatalf("fleet %q present %v after a PUT of %d routes", fleet, ok, len(routes))
			}
			// The routes file holds the table in effect.
			saved, err := readTable(filepath.Join(s.dir, tableName))
			if err != nil {
				t.Fatalf("routes file: %v", err)
			}
			if got, want := tableJSON(t, saved), tableJSON(t, after); got != want {
				t.Fatalf("routes file differs from the table:\n%s\n%s", got, want)
			}
		}
	})
}

func tableJSON(t *testing.T, tbl Table) string {
	t.Helper()
	b, err := json.Marshal(tbl)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func routesJSON(t *testing.T, routes []targets.Route) string {
	t.Helper()
	if routes == nil {
		routes = []targets.Route{}
	}
	b, err := json.Marshal(routes)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAdminRefusesTrailingData: a body that holds more than one JSON
// value (a second value, garbage) is refused with 400 and changes
// nothing; it was set from its first value. Found by FuzzAdmin.
func TestAdminRefusesTrailingData(t *testing.T) {
	s, err := NewServer(Options{StateDir: shortDir(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.adminHandler()
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPut, "/fleets/alpha/routes", `[{"service":"w"}] trailing`},
		{http.MethodPut, "/fleets/alpha/routes", `[{"service":"w"}][]`},
		{http.MethodPost, "/drain", `{"addrs":[]} {}`},
	} {
		rec := adminDo(t, h, req.method, req.path, req.body)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s %s %q: status %d, want 400", req.method, req.path, req.body, rec.Code)
		}
	}
	if v := s.current.Load().table.Version; v != 0 {
		t.Errorf("table version %d after refused bodies, want 0", v)
	}
	if rec := adminDo(t, h, http.MethodPut, "/fleets/alpha/routes", "[{\"service\":\"w\"}]\n\t "); rec.Code != http.StatusOK {
		t.Errorf("routes with trailing white space: status %d, want 200", rec.Code)
	}
}

// TestAdminRefusesUncleanPaths: a path with a doubled slash or a "." or
// ".." element is refused with a JSON 400 that names the clean form, and
// changes nothing, where net/http's mux answered an HTML 307 redirect (a
// PUT of routes "answered" 307). Found by FuzzAdmin.
func TestAdminRefusesUncleanPaths(t *testing.T) {
	s, err := NewServer(Options{StateDir: shortDir(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.adminHandler()
	for _, p := range []string{"/fleets/alpha//routes", "/fleets/alpha/./routes", "/fleets/x/../alpha/routes", "//ping", "/fleets/alpha/routes/."} {
		rec := adminDo(t, h, http.MethodPut, p, `[{"service":"w"}]`)
		var reply errorReply
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); rec.Code != http.StatusBadRequest || err != nil || !strings.Contains(reply.Error, "clean form") {
			t.Errorf("PUT %s: %d %q, want 400 with the clean form", p, rec.Code, rec.Body)
		}
	}
	if v := s.current.Load().table.Version; v != 0 {
		t.Errorf("table version %d after refused paths, want 0", v)
	}
	if rec := adminDo(t, h, http.MethodPut, "/fleets/alpha/routes", `[{"service":"w"}]`); rec.Code != http.StatusOK {
		t.Errorf("clean path: status %d, want 200", rec.Code)
	}
}

// TestAdminRefusesFleetNamesNotUTF8: a fleet name that is not valid UTF-8
// (only a path can carry one: JSON strings are always valid) is refused
// with 400. It was set, and saved with U+FFFD in its place, so the routes
// file named another fleet than the table did. Found by FuzzAdmin.
func TestAdminRefusesFleetNamesNotUTF8(t *testing.T) {
	s, err := NewServer(Options{StateDir: shortDir(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.adminHandler()
	for _, p := range []string{"/fleets/%FF/routes", "/fleets/a%C3/routes"} {
		if rec := adminDo(t, h, http.MethodPut, p, `[{"service":"w"}]`); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not valid UTF-8") {
			t.Errorf("PUT %s: %d %q, want 400 naming UTF-8", p, rec.Code, rec.Body)
		}
	}
	if v := s.current.Load().table.Version; v != 0 {
		t.Errorf("table version %d after refused names, want 0", v)
	}
	if rec := adminDo(t, h, http.MethodPut, "/fleets/caf%C3%A9/routes", `[{"service":"w"}]`); rec.Code != http.StatusOK {
		t.Errorf("a valid UTF-8 name: status %d, want 200", rec.Code)
	}
}
