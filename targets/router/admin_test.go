package router

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/molt-dev/molt/targets"
)

// oneJSON decodes body as exactly one JSON value.
func oneJSON(t *testing.T, body string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		t.Errorf("answer %q holds more than one JSON value", body)
	}
	return v
}

func adminDo(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body)))
	return rec
}

func TestDrainAnswersOnce(t *testing.T) {
	s, err := NewServer(Options{StateDir: shortDir(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	routed := "127.0.0.1:40001"
	tbl := Table{Fleets: map[string][]targets.Route{"alpha": {{
		Service: "web", Listen: "127.0.0.1:40000",
		Backends: []targets.Backend{{Instance: "i1", Addr: routed, Generation: "g1"}},
	}}}}
	s.current.Store(compile(tbl, s.upstreams, s.stats))
	h := s.adminHandler()

	tests := []struct {
		name, body string
		status     int
		errorText  string // part of the error, when the drain fails
	}{
		{"idle addresses", `{"addrs": ["127.0.0.1:9"]}`, http.StatusOK, ""},
		{"routed backend", `{"addrs": ["` + routed + `"]}`, http.StatusConflict, "still in a route"},
		{"bad request", `{"addrs": `, http.StatusBadRequest, "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := adminDo(t, h, http.MethodPost, "/drain", tc.body)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			v := oneJSON(t, rec.Body.String())
			msg, _ := v["error"].(string)
			if tc.errorText == "" && len(v) != 0 || !strings.Contains(msg, tc.errorText) {
				t.Errorf("answer %v, want error %q", v, tc.errorText)
			}
		})
	}
}

func TestAdminRefusesBadFleetPath(t *testing.T) {
	s, err := NewServer(Options{StateDir: shortDir(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.adminHandler()
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/fleets/a%2Fb/routes"},
		{http.MethodPut, "/fleets/a%2Fb/routes"},
		{http.MethodGet, "/fleets/a%2Fb/stats"},
		{http.MethodGet, "/fleets/a%2Fb/counts"},
	} {
		rec := adminDo(t, h, req.method, req.path, "[]")
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s %s: status %d, want 400", req.method, req.path, rec.Code)
		}
		if msg, _ := oneJSON(t, rec.Body.String())["error"].(string); !strings.Contains(msg, "slash") {
			t.Errorf("%s %s: error %q, want one about the slash", req.method, req.path, msg)
		}
	}
}
