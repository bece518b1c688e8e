package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
)

// readiness is what serve's /readyz reports: the loop's status, the
// router's state as its checks found it, the last fetch and the last
// reconcile.
type readiness struct {
	loop    func() reconciler.Status
	router  func() routerState // nil: no router of molt's (none checked)
	timeout time.Duration      // a reconcile running longer is stuck
	// state says why the state directory cannot be written (nil: it
	// can; see statewrites.go). serve stays ready meanwhile: degraded,
	// serving from memory.
	state func() error

	mu        sync.Mutex
	fetch     readyFetch
	reconcile readyReconcile
}

type readyFetch struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

type readyReconcile struct {
	Time     time.Time `json:"time"`
	Revision string    `json:"revision,omitempty"`
	Outcome  string    `json:"outcome"` // one of reconcileResults
	Error    string    `json:"error,omitempty"`
	// Reason says why a reconcile is "held": the recorded failure of
	// each service that serves its rollback.
	Reason  string     `json:"reason,omitempty"`
	Running *time.Time `json:"running,omitempty"` // when the reconcile in progress started
}

type readyRouter struct {
	// State is up, down, external-down (a router molt did not start,
	// which it waits for), or unknown (not checked yet).
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	Error string    `json:"error,omitempty"`
}

// readyDoc is /readyz as JSON (?format=json, or Accept: application/json).
type readyDoc struct {
	Ready     bool            `json:"ready"`
	Reason    string          `json:"reason,omitempty"` // why not ready
	Revision  string          `json:"revision,omitempty"`
	Router    readyRouter     `json:"router"`
	Fetch     *readyFetch     `json:"fetch"`     // null before the first fetch
	Reconcile *readyReconcile `json:"reconcile"` // null before the first reconcile ends
	// State is "" when the state directory can be written, else why not
	// (ready stays true: serve goes on from memory).
	State string `json:"stateDir,omitempty"`
}

// fetched records one fetch of the repository (from the source's metrics
// hook).
func (r *readiness) fetched(at time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetch = readyFetch{Time: at, OK: err == nil}
	if err != nil {
		r.fetch.Error = err.Error()
	}
}

// onResult records the end of a reconcile.
func (r *readiness) onResult(o reconciler.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconcile = readyReconcile{Time: o.Finished, Revision: o.Revision, Outcome: reconcileResult(o)}
	if o.Err != nil {
		r.reconcile.Error = o.Err.Error()
	}
	if r.reconcile.Outcome == "held" {
		var why []string
		for _, f := range o.Result.Held {
			why = append(why, f.Service+": "+f.Reason)
		}
		r.reconcile.Reason = "this revision failed and was rolled back (" + strings.Join(why, "; ") + "); a new commit is tried"
	}
}

// doc is the current readiness: not ready while the router (when molt
// checks one) does not answer, before the first fetch, or while a
// reconcile is stuck.
func (r *readiness) doc(now time.Time) readyDoc {
	st := r.loop()
	d := readyDoc{Ready: true, Revision: st.Revision, Router: readyRouter{State: "unknown"}}
	r.mu.Lock()
	if !r.fetch.Time.IsZero() {
		f := r.fetch
		d.Fetch = &f
	}
	if !r.reconcile.Time.IsZero() {
		c := r.reconcile
		d.Reconcile = &c
	}
	r.mu.Unlock()
	if !st.Running.IsZero() {
		if d.Reconcile == nil {
			d.Reconcile = &readyReconcile{Outcome: "running"}
		}
		running := st.Running
		d.Reconcile.Running = &running
	}
	var rs routerState
	if r.router != nil {
		rs = r.router()
	}
	if rs.Checked {
		d.Router.Since = rs.Since
		switch {
		case rs.Err == nil:
			d.Router.State = "up"
		case rs.External:
			d.Router.State, d.Router.Error = "external-down", rs.Err.Error()
		default:
			d.Router.State, d.Router.Error = "down", rs.Err.Error()
		}
	}
	switch {
	case rs.Checked && rs.Err != nil && rs.External:
		d.Reason = "the router does not answer since " + rs.Since.Format(time.RFC3339) + "; molt did not start it and waits for it: " + rs.Err.Error()
	case rs.Checked && rs.Err != nil:
		d.Reason = rs.Err.Error()
	case !st.Fetched && st.LastErr != nil:
		d.Reason = st.LastErr.Error()
	case !st.Fetched:
		d.Reason = "the repository has not been fetched yet"
	case !st.Running.IsZero() && now.Sub(st.Running) > r.timeout:
		d.Reason = "a reconcile is stuck since " + st.Running.Format(time.RFC3339)
	}
	d.Ready = d.Reason == ""
	if r.state != nil {
		if err := r.state(); err != nil {
			d.State = err.Error()
		}
	}
	return d
}

// ServeHTTP answers 200 when ready and 503 when not. The text answer's
// first line is "ready: REVISION" or "not ready: REASON", as it always
// was; the lines after it say "router: ...", "fetch: ..." and
// "reconcile: ...". ?format=json (or Accept: application/json) answers
// readyDoc.
func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	d := r.doc(time.Now())
	code := http.StatusOK
	if !d.Ready {
		code = http.StatusServiceUnavailable
	}
	if req.URL.Query().Get("format") == "json" || strings.Contains(req.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(d)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprint(w, d.text())
}

func (d readyDoc) text() string {
	var b strings.Builder
	if d.Ready {
		fmt.Fprintf(&b, "ready: %s\n", d.Revision)
	} else {
		fmt.Fprintf(&b, "not ready: %s\n", d.Reason)
	}
	switch d.Router.State {
	case "up":
		fmt.Fprintf(&b, "router: up since %s\n", d.Router.Since.Format(time.RFC3339))
	case "down":
		fmt.Fprintf(&b, "router: down since %s: %s\n", d.Router.Since.Format(time.RFC3339), d.Router.Error)
	case "external-down":
		fmt.Fprintf(&b, "router: not started by molt, not answering since %s (molt waits for it): %s\n", d.Router.Since.Format(time.RFC3339), d.Router.Error)
	default:
		b.WriteString("router: not checked yet\n")
	}
	switch {
	case d.Fetch == nil:
		b.WriteString("fetch: none yet\n")
	case d.Fetch.OK:
		fmt.Fprintf(&b, "fetch: %s ok\n", d.Fetch.Time.Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "fetch: %s failed: %s\n", d.Fetch.Time.Format(time.RFC3339), d.Fetch.Error)
	}
	switch {
	case d.Reconcile == nil:
		b.WriteString("reconcile: none yet\n")
	case d.Reconcile.Time.IsZero():
		fmt.Fprintf(&b, "reconcile: running since %s\n", d.Reconcile.Running.Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "reconcile: %s %s", d.Reconcile.Time.Format(time.RFC3339), d.Reconcile.Outcome)
		if d.Reconcile.Error != "" {
			fmt.Fprintf(&b, ": %s", d.Reconcile.Error)
		}
		if d.Reconcile.Reason != "" {
			fmt.Fprintf(&b, ": %s", d.Reconcile.Reason)
		}
		if d.Reconcile.Running != nil {
			fmt.Fprintf(&b, " (another running since %s)", d.Reconcile.Running.Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	if d.State != "" {
		fmt.Fprintf(&b, "state: degraded: %s\n", d.State)
	}
	return b.String()
}
