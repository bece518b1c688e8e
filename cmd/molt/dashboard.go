package main

// The dashboard: a read-only page at GET / and the live stream at
// GET /api/v1/stream. The page is rendered on the server (html/template,
// embedded, no external assets); the stream is Server-Sent Events that
// carry the status and events documents whenever a pass happens or an
// event is appended, and, for the page, the same sections rendered again
// by the same templates, which its script swaps in. The dashboard only
// reads: it has no forms and no endpoint that acts.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed dashboard/*
var dashboardFiles embed.FS

// statusSource is where the dashboard reads the status document.
type statusSource interface {
	status(ctx context.Context) (apiStatus, error)
}

// eventSource is where the dashboard reads the newest events.
type eventSource interface {
	recent(n int) []apiEvent
}

// dashboardOptions tunes the dashboard. The zero value works.
type dashboardOptions struct {
	// MaxClients bounds the streams open at once (default 32); one more
	// is answered 503.
	MaxClients int
	// KeepAlive is how often an idle stream sends a comment, so that
	// proxies and browsers keep it open (default 15s).
	KeepAlive time.Duration
	// WriteTimeout bounds one update written to a stream (default 10s): a
	// client that reads slower than that is disconnected.
	WriteTimeout time.Duration
	// Events is how many of the newest events are shown (default 100).
	Events int
}

// Validate reports options that make no sense.
func (o dashboardOptions) Validate() error {
	if o.MaxClients < 0 || o.KeepAlive < 0 || o.WriteTimeout < 0 || o.Events < 0 {
		return errors.New("dashboard options must not be negative")
	}
	return nil
}

func (o dashboardOptions) withDefaults() dashboardOptions {
	if o.MaxClients == 0 {
		o.MaxClients = 32
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Events == 0 {
		o.Events = 100
	}
	return o
}

// dashboard serves the page and the stream. notify tells it that
// something changed; it never blocks: each stream has a wake-up channel
// of one slot, so a burst of notifications while a client is busy
// coalesces into one update, and a slow client slows only itself.
type dashboard struct {
	status statusSource
	events eventSource
	log    *slog.Logger
	opts   dashboardOptions
	page   *template.Template
	csp    string

	version atomic.Uint64 // counts notifications

	mu      sync.Mutex
	clients map[chan struct{}]struct{}
	stop    chan struct{}
	stopped bool

	// One snapshot serves every stream woken by the same notification.
	snapMu sync.Mutex
	snap   *dashSnapshot
}

// newDashboard builds the dashboard over its sources. It starts nothing.
func newDashboard(status statusSource, events eventSource, log *slog.Logger, opts dashboardOptions) (*dashboard, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	css, err := dashboardFiles.ReadFile("dashboard/dashboard.css")
	if err != nil {
		return nil, err
	}
	js, err := dashboardFiles.ReadFile("dashboard/dashboard.js")
	if err != nil {
		return nil, err
	}
	t, err := template.New("page.html").Funcs(template.FuncMap{
		"css":     func() template.CSS { return template.CSS(css) },
		"script":  func() template.JS { return template.JS(js) },
		"rev":     shortRevision,
		"age":     formatAge,
		"when":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"clock":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"health":  healthClass,
		"revlink": func(rev, url string) revisionLink { return revisionLink{Revision: rev, URL: url} },
		"result":  resultClass,
		"figures": func(m map[string]float64) []string {
			out := make([]string, 0, len(m))
			for k, v := range m {
				out = append(out, fmt.Sprintf("%s %g", k, v))
			}
			sort.Strings(out)
			return out
		},
	}).ParseFS(dashboardFiles, "dashboard/page.html")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(js)
	csp := "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
		"script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return &dashboard{
		status: status, events: events, log: log, opts: opts.withDefaults(), page: t, csp: csp,
		clients: map[chan struct{}]struct{}{}, stop: make(chan struct{}),
	}, nil
}

// notify wakes every open stream to send an update. It never blocks.
func (d *dashboard) notify() {
	d.version.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.clients {
		select {
		case c <- struct{}{}:
		default: // an update is already pending for it
		}
	}
}

// close ends every open stream and refuses new ones; the page still
// renders. Register it with http.Server.RegisterOnShutdown, so that
// Shutdown does not wait for streams that never go idle. Idempotent.
func (d *dashboard) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.stopped = true
		close(d.stop)
	}
}

// join registers a stream, or says why it may not open.
func (d *dashboard) join() (chan struct{}, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil, http.StatusServiceUnavailable, errors.New("molt serve is stopping")
	}
	if len(d.clients) >= d.opts.MaxClients {
		return nil, http.StatusServiceUnavailable, fmt.Errorf("too many streams open (%d)", d.opts.MaxClients)
	}
	c := make(chan struct{}, 1)
	d.clients[c] = struct{}{}
	return c, 0, nil
}

func (d *dashboard) leave(c chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.clients, c)
}

// dashSnapshot is what one update shows.
type dashSnapshot struct {
	version uint64
	taken   time.Time
	err     error
	status  apiStatus
	events  []apiEvent // newest first
	// The stream's messages, encoded once for all clients.
	statusJSON, eventsJSON, fragmentsJSON []byte
}

// snapshot reads the sources, or reuses the snapshot of the same
// notification taken less than a second ago.
func (d *dashboard) snapshot(ctx context.Context) *dashSnapshot {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	v := d.version.Load()
	if s := d.snap; s != nil && s.version == v && time.Since(s.taken) < time.Second {
		return s
	}
	s := &dashSnapshot{version: v, taken: time.Now()}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	s.status, s.err = d.status.status(sctx)
	cancel()
	s.events = append([]apiEvent(nil), d.events.recent(d.opts.Events)...)
	sort.SliceStable(s.events, func(i, j int) bool { return s.events[i].ID > s.events[j].ID })
	if s.err == nil {
		s.statusJSON, _ = json.Marshal(s.status)
	}
	s.eventsJSON, _ = json.Marshal(apiEvents{Events: s.events})
	var fleets, events bytes.Buffer
	view := d.view(s)
	if err := d.page.ExecuteTemplate(&fleets, "fleets", view); err != nil {
		d.log.Error("dashboard: render", "error", err)
	}
	if err := d.page.ExecuteTemplate(&events, "events", view); err != nil {
		d.log.Error("dashboard: render", "error", err)
	}
	s.fragmentsJSON, _ = json.Marshal(map[string]string{
		"fleets": fleets.String(), "events": events.String(), "generated": view.Generated,
	})
	if ctx.Err() == nil { // a cancelled request's snapshot is not shared
		d.snap = s
	}
	return s
}

// ServeHTTP serves the page (GET /).
func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := d.snapshot(r.Context())
	var b bytes.Buffer
	if err := d.page.ExecuteTemplate(&b, "page", d.view(s)); err != nil {
		d.log.Error("dashboard: render", "error", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", d.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b.Bytes())
}

// stream serves GET /api/v1/stream: Server-Sent Events, an update at once
// and after each notification (event "status" with the status document,
// "events" with the newest events, and with ?fragments=1 "fragments" with
// the page's sections rendered), a comment every KeepAlive. It returns
// when the client goes, when the dashboard is closed, or when a write
// takes longer than WriteTimeout.
func (d *dashboard) stream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wake, code, err := d.join()
		if err != nil {
			w.Header().Set("Retry-After", "5")
			http.Error(w, err.Error(), code)
			return
		}
		defer d.leave(wake)
		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		fragments := r.URL.Query().Get("fragments") == "1"
		// Each write has its own deadline, which also lifts the server's
		// WriteTimeout (if it has one) off a long stream.
		send := func(write func(io.Writer) error) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(d.opts.WriteTimeout))
			if err := write(w); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		update := func(w io.Writer) error { return d.writeUpdate(w, d.snapshot(r.Context()), fragments) }
		keepAlive := func(w io.Writer) error { _, err := io.WriteString(w, ": keep-alive\n\n"); return err }
		if !send(func(w io.Writer) error {
			if _, err := io.WriteString(w, "retry: 2000\n\n"); err != nil {
				return err
			}
			return update(w)
		}) {
			return
		}
		tick := time.NewTicker(d.opts.KeepAlive)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-d.stop:
				return
			case <-wake:
				if !send(update) {
					return
				}
			case <-tick.C:
				if !send(keepAlive) {
					return
				}
			}
		}
	})
}

// writeUpdate writes one update: its events, each one line of JSON.
func (d *dashboard) writeUpdate(w io.Writer, s *dashSnapshot, fragments bool) error {
	var b bytes.Buffer
	if s.err != nil {
		msg, _ := json.Marshal(map[string]string{"error": s.err.Error()})
		fmt.Fprintf(&b, "event: error\ndata: %s\n\n", msg)
	} else {
		fmt.Fprintf(&b, "event: status\ndata: %s\n\n", s.statusJSON)
	}
	fmt.Fprintf(&b, "event: events\ndata: %s\n\n", s.eventsJSON)
	if fragments {
		fmt.Fprintf(&b, "event: fragments\ndata: %s\n\n", s.fragmentsJSON)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// The page's view of a snapshot.
type (
	dashView struct {
		Generated string
		Error     string
		Fleets    []dashFleet
		Events    []apiEvent
	}
	dashFleet struct {
		apiFleet
		Services []dashService
	}
	dashService struct {
		apiService
		Generations []dashGeneration
		// Canary split: percent of traffic to the canary and to the rest.
		CanaryWeight, StableWeight int
	}
	dashGeneration struct {
		Generation string
		Labels     []string // new, serving, desired, old, previous, ...
		Revision   string
		Healthy    int
		Weight     int // its share of the traffic
		Instances  []apiInstance
	}
)

func (d *dashboard) view(s *dashSnapshot) dashView {
	v := dashView{Events: s.events, Generated: s.taken.UTC().Format(time.RFC3339)}
	if s.err != nil {
		v.Error = s.err.Error()
		return v
	}
	if !s.status.GeneratedAt.IsZero() {
		v.Generated = s.status.GeneratedAt.UTC().Format(time.RFC3339)
	}
	for _, f := range s.status.Fleets {
		fv := dashFleet{apiFleet: f}
		for _, svc := range f.Services {
			sv := dashService{apiService: svc, Generations: dashGenerations(svc)}
			if svc.Canary != nil {
				sv.CanaryWeight = min(max(svc.Canary.Weight, 0), 100)
				sv.StableWeight = 100 - sv.CanaryWeight
			}
			fv.Services = append(fv.Services, sv)
		}
		v.Fleets = append(v.Fleets, fv)
	}
	return v
}

// dashGenerations groups a service's instances by generation: the rollout's
// new generation first, then the serving one, the desired one, and the
// rest by name.
func dashGenerations(svc apiService) []dashGeneration {
	byGen := map[string]*dashGeneration{}
	var order []string
	for _, in := range svc.Instances {
		g := byGen[in.Generation]
		if g == nil {
			g = &dashGeneration{Generation: in.Generation, Revision: in.Revision}
			byGen[in.Generation] = g
			order = append(order, in.Generation)
		}
		g.Instances = append(g.Instances, in)
		g.Weight += in.Weight
		if in.Health == "healthy" {
			g.Healthy++
		}
	}
	var to, from string
	if svc.Rollout != nil {
		to, from = svc.Rollout.To, svc.Rollout.From
	}
	rank := func(gen string) int {
		switch gen {
		case to:
			return 0
		case svc.Live.Generation:
			return 1
		case svc.Desired.Generation:
			return 2
		}
		return 3
	}
	sort.SliceStable(order, func(i, j int) bool {
		ri, rj := rank(order[i]), rank(order[j])
		if ri != rj {
			return ri < rj
		}
		return order[i] < order[j]
	})
	out := make([]dashGeneration, 0, len(order))
	for _, gen := range order {
		g := byGen[gen]
		if gen != "" && gen == to {
			g.Labels = append(g.Labels, "new")
		}
		if gen != "" && gen == svc.Live.Generation {
			g.Labels = append(g.Labels, "serving")
		}
		if gen != "" && gen == svc.Desired.Generation && gen != to && gen != svc.Live.Generation {
			g.Labels = append(g.Labels, "desired")
		}
		if gen != "" && gen == from && gen != svc.Live.Generation {
			g.Labels = append(g.Labels, "old")
		}
		roles := map[string]bool{}
		for _, in := range g.Instances {
			if in.Role != "" && in.Role != "active" && in.Role != "new" && !roles[in.Role] {
				roles[in.Role] = true
				g.Labels = append(g.Labels, in.Role)
			}
		}
		if g.Revision == "" && gen == svc.Desired.Generation {
			g.Revision = svc.Desired.Revision
		}
		out = append(out, *g)
	}
	return out
}

// revisionLink is a revision and where its commit is, if known.
type revisionLink struct{ Revision, URL string }

// shortRevision prints "main@sha1:<40 hex>" as "main@sha1:<12 hex>".
func shortRevision(rev string) string {
	if i := strings.Index(rev, "sha1:"); i >= 0 && len(rev) > i+5+12 {
		return rev[:i+5+12]
	}
	return rev
}

func formatAge(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second)).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours())/24)
}

// healthClass maps a health to one of the page's classes.
func healthClass(h string) string {
	switch h {
	case "healthy", "unhealthy", "starting", "dead":
		return h
	}
	return "unknown"
}

// resultClass maps a result or an event kind to a colour class.
func resultClass(r string) string {
	switch r {
	case "converged", "deploy", "promote":
		return "good"
	case "failed", "held", "error", "rolled-back", "rollback", "failure", "abort":
		return "bad"
	case "degraded", "paused", "deferred", "drift", "selfheal", "recycle":
		return "warn"
	}
	return "neutral"
}
