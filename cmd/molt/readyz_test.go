package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/targets/router"
)

// /readyz says truthfully what the router, the last fetch and the last
// reconcile are, in text (first line as before) and in JSON, and is 503
// while the router does not answer.
func TestReadyz(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var rs routerState
	st := reconciler.Status{Fetched: true, Revision: "main@sha1:abc"}
	r := &readiness{loop: func() reconciler.Status { return st }, router: func() routerState { return rs }, timeout: time.Minute}
	get := func(accept string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		r.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	for _, tc := range []struct {
		name     string
		router   routerState
		fetchErr error
		outcome  reconciler.Outcome
		code     int
		lines    []string
		state    string
	}{
		{"up", routerState{Checked: true, Since: at}, nil,
			reconciler.Outcome{Finished: at, Revision: "main@sha1:abc", Result: reconciler.Result{Converged: true}},
			200, []string{"ready: main@sha1:abc", "router: up since 2026-05-01T12:00:00Z", "fetch: 2026-05-01T12:00:00Z ok", "reconcile: 2026-05-01T12:00:00Z converged"}, "up"},
		{"down", routerState{Checked: true, Since: at, Err: errors.New("the router does not answer: refused")}, errors.New("no route to host"),
			reconciler.Outcome{Finished: at, Err: errors.New("read routes: refused")},
			503, []string{"not ready: the router does not answer: refused", "router: down since 2026-05-01T12:00:00Z: the router does not answer: refused",
				"fetch: 2026-05-01T12:00:00Z failed: no route to host", "reconcile: 2026-05-01T12:00:00Z error: read routes: refused"}, "down"},
		// A revision that failed before (a restart of serve since): its
		// services serve their rollback; said so, never "converged".
		{"held", routerState{Checked: true, Since: at}, nil,
			reconciler.Outcome{Finished: at, Revision: "main@sha1:bad", Result: reconciler.Result{Converged: true,
				Held: []reconciler.Failure{{Service: "web", Revision: "main@sha1:bad", Reason: "instance web-1 failed its health check"}}}},
			200, []string{"reconcile: 2026-05-01T12:00:00Z held: this revision failed and was rolled back (web: instance web-1 failed its health check); a new commit is tried"}, "up"},
		{"external", routerState{Checked: true, Since: at, External: true, Err: fmt.Errorf("%w: pid 7", router.ErrExternal)}, nil,
			reconciler.Outcome{Finished: at, Result: reconciler.Result{Converged: true}},
			503, []string{"router: not started by molt, not answering since 2026-05-01T12:00:00Z (molt waits for it)"}, "external-down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs = tc.router
			r.fetched(at, tc.fetchErr)
			r.onResult(tc.outcome)
			code, body := get("")
			if code != tc.code {
				t.Errorf("code %d, want %d:\n%s", code, tc.code, body)
			}
			for _, l := range tc.lines {
				if !strings.Contains(body, l+"\n") && !strings.Contains(body, l) {
					t.Errorf("text lacks %q:\n%s", l, body)
				}
			}
			code, body = get("application/json")
			var d readyDoc
			if err := json.Unmarshal([]byte(body), &d); err != nil {
				t.Fatalf("JSON: %v\n%s", err, body)
			}
			if code != tc.code || d.Ready != (tc.code == 200) || d.Router.State != tc.state || d.Fetch == nil || d.Fetch.OK != (tc.fetchErr == nil) || d.Reconcile == nil {
				t.Errorf("JSON %d: %s", code, body)
			}
		})
	}

	// Before the first fetch, and with no router checked yet.
	r2 := &readiness{loop: func() reconciler.Status { return reconciler.Status{} }, timeout: time.Minute}
	rec := httptest.NewRecorder()
	r2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz?format=json", nil))
	var d readyDoc
	json.Unmarshal(rec.Body.Bytes(), &d)
	if rec.Code != 503 || d.Reason != "the repository has not been fetched yet" || d.Fetch != nil || d.Reconcile != nil || d.Router.State != "unknown" {
		t.Errorf("before the first fetch: %d %s", rec.Code, rec.Body.String())
	}
}
