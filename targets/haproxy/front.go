package haproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/targets"
)

// ServerPrefix starts the name of every server molt adds ("molt-" and the
// instance id). Servers with other names are the user's: never touched.
const ServerPrefix = "molt-"

// maxWeight is the largest weight HAProxy takes.
const maxWeight = 256

// Options configure a Front.
type Options struct {
	// Socket is the address of HAProxy's Runtime API, a stats socket of
	// level admin: "unix:PATH" or "tcp:HOST:PORT".
	Socket string
	// Dir is where the fleets' routes are kept (DIR/<fleet>.json), such
	// as STATE/haproxy. It is created when first needed.
	Dir string
	// DrainTimeout bounds how long Drain waits for a server's sessions
	// to end (default 30s).
	DrainTimeout time.Duration
	// Logger receives what the front does (nil: discarded).
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports an unusable socket address or a missing directory.
func (o Options) Validate() error {
	if _, err := parseSocket(o.Socket); err != nil {
		return fmt.Errorf("haproxy socket %w", err)
	}
	if o.Dir == "" {
		return errors.New("haproxy: no directory for the fleets' routes")
	}
	return nil
}

// Front drives HAProxy's backends through the Runtime API. Its methods are
// safe for concurrent use. The zero value is not usable: see New.
type Front struct {
	opts Options
	sock socket
	mu   sync.Mutex // serializes changes and the route files
	hist *history
}

// New returns a front on o's socket. It does not contact HAProxy.
func New(o Options) (*Front, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	sock, _ := parseSocket(o.Socket)
	return &Front{opts: o, sock: sock, hist: newHistory()}, nil
}

func (f *Front) now() time.Time {
	if f.opts.Now != nil {
		return f.opts.Now()
	}
	return time.Now()
}

func (f *Front) logger() *slog.Logger {
	if f.opts.Logger != nil {
		return f.opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Ping asks HAProxy for its version; it fails when the socket does not
// answer.
func (f *Front) Ping(ctx context.Context) error {
	_, err := f.sock.run(ctx, "show info")
	return err
}

// serverName is the server molt adds for an instance.
func serverName(instance string) string { return ServerPrefix + instance }

// nameOK matches what HAProxy takes as a server name.
var nameOK = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// Routes returns the fleet's routes as the front keeps them, checked
// against HAProxy: a route whose backend's molt servers are not exactly its
// backends, ready and with their weights (HAProxy restarted and forgot
// them, say), is returned with the backends HAProxy really has, so that
// the reconciler sets the route again. A fleet with no HAProxy route does
// not contact HAProxy; otherwise an unreachable HAProxy is an error
// wrapping ErrUnreachable.
func (f *Front) Routes(ctx context.Context, fleet string) ([]targets.Route, error) {
	f.mu.Lock()
	ff, err := f.load(fleet)
	f.mu.Unlock()
	if err != nil || len(ff.Routes) == 0 {
		return nil, err
	}
	servers, err := f.sock.showStat(ctx)
	if err != nil {
		return nil, err
	}
	f.hist.observe(fleet, ff, servers, f.now())
	byBackend := map[string][]server{}
	for _, s := range servers {
		if strings.HasPrefix(s.name, ServerPrefix) {
			byBackend[s.backend] = append(byBackend[s.backend], s)
		}
	}
	out := make([]targets.Route, 0, len(ff.Routes))
	for _, r := range ff.Routes {
		if r.HAProxy != "" {
			r.Backends = liveBackends(r, byBackend[r.HAProxy])
		}
		out = append(out, r)
	}
	return out, nil
}

// liveBackends is r's backends as HAProxy carries them: r.Backends itself
// when the backend's ready molt servers are exactly those, with their
// addresses and weights; otherwise the backends HAProxy really sends new
// requests to (a server it does not know about has no generation).
func liveBackends(r targets.Route, live []server) []targets.Backend {
	weights := haproxyWeights(r.Backends)
	ready := map[string]server{}
	for _, s := range live {
		if s.ready() {
			ready[s.name] = s
		}
	}
	same := len(ready) == len(r.Backends)
	var out []targets.Backend
	for i, b := range r.Backends {
		s, ok := ready[serverName(b.Instance)]
		if !ok {
			same = false
			continue
		}
		delete(ready, s.name)
		nb := b
		if s.addr != b.Addr || s.weight != weights[i] {
			same = false
			nb.Addr, nb.Weight = s.addr, s.weight
		}
		out = append(out, nb)
	}
	if same {
		return r.Backends
	}
	for _, name := range slices.Sorted(maps.Keys(ready)) {
		out = append(out, targets.Backend{Instance: strings.TrimPrefix(name, ServerPrefix), Addr: ready[name].addr})
	}
	if out == nil {
		out = []targets.Backend{}
	}
	return out
}

// haproxyWeights are the weights HAProxy gets for backends: their own (0
// meaning 1), scaled down in proportion when one is above 256 (HAProxy's
// largest), never below 1.
func haproxyWeights(backends []targets.Backend) []int {
	out := make([]int, len(backends))
	top := 0
	for i, b := range backends {
		out[i] = max(b.Weight, 1)
		top = max(top, out[i])
	}
	if top > maxWeight {
		for i := range out {
			out[i] = max(1, (out[i]*maxWeight+top/2)/top)
		}
	}
	return out
}

// SetRoutes makes the HAProxy backends of routes carry exactly the routes'
// backends, and saves the routes (Meta included) for Routes. Every route
// must name a HAProxy backend. For each backend, in this order: the
// missing servers are added (in maintenance, as HAProxy adds them) with
// their weights, weights are set, and every wanted server is made ready;
// only then, once every backend has its new servers in service, the molt
// servers no longer wanted (in these backends, or in backends the fleet no
// longer uses) are set to drain, so that no request ever meets a backend
// without a ready server. SetRoutes then waits a little (up to 3 s) for
// the drained servers to have no session and deletes those that do
// (maintenance, then "del server"); Drain, or a later SetRoutes, deletes
// the others once HAProxy reports them idle.
//
// It is idempotent. A backend that another fleet's routes use, or a
// route without a HAProxy backend, is refused with an error wrapping
// targets.ErrInvalidRoutes; an unreachable HAProxy or a backend missing
// from its configuration is an error that a retry may fix, and leaves the
// saved routes as they were.
func (f *Front) SetRoutes(ctx context.Context, fleet string, routes []targets.Route) error {
	drained, err := f.setRoutes(ctx, fleet, routes)
	if err != nil || len(drained) == 0 {
		return err
	}
	// A server out of traffic that stays alive (a warm previous
	// generation) gets no Drain: delete the drained servers that turn
	// idle within a short while; Drain or the next SetRoutes deletes the
	// others.
	settle, cancel := context.WithTimeout(ctx, min(f.drainTimeout(), settleTimeout))
	defer cancel()
	if err := f.deleteIdle(settle, func(s server) bool { return slices.Contains(drained, s.key()) }); err != nil && ctx.Err() == nil {
		f.logger().Debug("drained haproxy servers still busy; Drain or the next change deletes them", "fleet", fleet, "error", err)
	}
	return ctx.Err()
}

// settleTimeout bounds how long SetRoutes waits for the servers it drained
// to turn idle.
const settleTimeout = 3 * time.Second

func (f *Front) drainTimeout() time.Duration {
	if f.opts.DrainTimeout > 0 {
		return f.opts.DrainTimeout
	}
	return 30 * time.Second
}

// setRoutes is SetRoutes but for the wait: it returns the keys of the
// servers it drained.
func (f *Front) setRoutes(ctx context.Context, fleet string, routes []targets.Route) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	claimed, err := f.claims(fleet)
	if err != nil {
		return nil, err
	}
	wanted := map[string]targets.Route{} // by HAProxy backend
	for _, r := range routes {
		switch {
		case r.HAProxy == "":
			return nil, fmt.Errorf("%w: service %s has no HAProxy backend", targets.ErrInvalidRoutes, r.Service)
		case r.Listen != "":
			return nil, fmt.Errorf("%w: service %s has both a listen address and a HAProxy backend", targets.ErrInvalidRoutes, r.Service)
		case claimed[r.HAProxy] != "":
			return nil, fmt.Errorf("%w: HAProxy backend %s of service %s is used by %s", targets.ErrInvalidRoutes, r.HAProxy, r.Service, claimed[r.HAProxy])
		case wanted[r.HAProxy].Service != "":
			return nil, fmt.Errorf("%w: HAProxy backend %s is used by services %s and %s", targets.ErrInvalidRoutes, r.HAProxy, wanted[r.HAProxy].Service, r.Service)
		}
		for _, b := range r.Backends {
			if !nameOK.MatchString(b.Instance) {
				return nil, fmt.Errorf("%w: instance id %q of service %s cannot name a HAProxy server", targets.ErrInvalidRoutes, b.Instance, r.Service)
			}
		}
		wanted[r.HAProxy] = r
	}
	old, err := f.load(fleet)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{} // every backend the fleet uses or used
	for _, r := range old.Routes {
		if r.HAProxy != "" {
			used[r.HAProxy] = true
		}
	}
	for b := range wanted {
		used[b] = true
	}
	servers, err := f.sock.showStat(ctx)
	if err != nil {
		return nil, err
	}
	f.hist.observe(fleet, old, servers, f.now())
	live := map[string]server{} // by key
	for _, s := range servers {
		if strings.HasPrefix(s.name, ServerPrefix) && used[s.backend] {
			live[s.key()] = s
		}
	}
	added := map[string]time.Time{}
	for k, t := range old.Added {
		if _, ok := live[k]; ok {
			added[k] = t
		}
	}
	log := f.logger().With("fleet", fleet)

	// 1. Every wanted server in service, with its weight.
	keep := map[string]bool{}
	for _, backend := range slices.Sorted(maps.Keys(wanted)) {
		r := wanted[backend]
		weights := haproxyWeights(r.Backends)
		for i, b := range r.Backends {
			s := server{backend: backend, name: serverName(b.Instance)}
			keep[s.key()] = true
			w := strconv.Itoa(weights[i])
			cur, ok := live[s.key()]
			if ok && cur.addr != b.Addr {
				// The same instance at another address (an engine moved
				// it): a new server, once the old one is gone.
				if err := f.remove(ctx, cur); err != nil {
					return nil, err
				}
				ok = false
			}
			if !ok {
				if err := f.expect(ctx, "New server registered", "add server %s %s weight %s", s.key(), b.Addr, w); err != nil {
					return nil, err
				}
				added[s.key()] = f.now()
				f.hist.reset(s.key())
				log.Info("haproxy server added", "service", r.Service, "server", s.key(), "addr", b.Addr, "weight", w)
			} else if cur.weight != weights[i] {
				if err := f.expect(ctx, "", "set server %s weight %s", s.key(), w); err != nil {
					return nil, err
				}
			}
			if !ok || !cur.ready() {
				if err := f.expect(ctx, "", "set server %s state ready", s.key()); err != nil {
					return nil, err
				}
			}
		}
	}

	// 2. Only then, the rest out of service: drained, or deleted when
	// drained already and idle.
	var drained []string
	for _, k := range slices.Sorted(maps.Keys(live)) {
		s := live[k]
		if keep[k] {
			continue
		}
		switch {
		case s.ready():
			if err := f.expect(ctx, "", "set server %s state drain", k); err != nil {
				return nil, err
			}
			log.Info("haproxy server draining", "server", k, "addr", s.addr)
			drained = append(drained, k)
		case s.idle():
			if err := f.remove(ctx, s); err != nil {
				log.Warn("drained haproxy server not deleted yet", "server", k, "error", err)
			}
		}
	}
	// 3. The routes as they now are, for Routes.
	saved := fleetFile{Added: added}
	for _, r := range routes {
		r.Backends = slices.Clone(r.Backends)
		if r.Backends == nil {
			r.Backends = []targets.Backend{}
		}
		saved.Routes = append(saved.Routes, r)
	}
	return drained, f.save(fleet, saved)
}

// Drain waits until HAProxy reports no session and no queued request on
// the molt servers of addrs that are out of service (drained by
// SetRoutes), for up to the drain timeout, and deletes each as soon as it
// is idle (maintenance, then "del server"). A server still in service, or
// not molt's, is never touched; addresses that no molt server has are
// done at once. Cancelling ctx stops the wait with ctx's error.
func (f *Front) Drain(ctx context.Context, addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	ctx, cancel := context.WithTimeout(ctx, f.drainTimeout())
	defer cancel()
	if err := f.deleteIdle(ctx, func(s server) bool { return want[s.addr] }); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// deleteIdle waits until the molt servers that match and are out of
// service have no session, deleting each as soon as it is idle, until ctx
// is done.
func (f *Front) deleteIdle(ctx context.Context, matches func(server) bool) error {
	for {
		servers, err := f.sock.showStat(ctx)
		if err != nil {
			return err
		}
		var busy []string
		f.mu.Lock()
		for _, s := range servers {
			if !strings.HasPrefix(s.name, ServerPrefix) || s.ready() || !matches(s) {
				continue
			}
			if s.idle() {
				if err := f.remove(ctx, s); err == nil {
					continue
				}
			}
			busy = append(busy, s.key())
		}
		f.mu.Unlock()
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sessions still open on haproxy servers %v: %w", busy, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// remove takes a drained server out of HAProxy: maintenance, then "del
// server", which HAProxy itself refuses while a connection is attached.
// Its last counters stay in the history. The caller holds f.mu.
func (f *Front) remove(ctx context.Context, s server) error {
	if !strings.HasPrefix(s.name, ServerPrefix) {
		return fmt.Errorf("haproxy server %s is not molt's", s.key())
	}
	f.hist.final(s, f.now())
	if !s.maint() {
		if err := f.expect(ctx, "", "set server %s state maint", s.key()); err != nil {
			return err
		}
	}
	if err := f.expect(ctx, "Server deleted", "del server %s", s.key()); err != nil {
		return err
	}
	f.logger().Info("haproxy server deleted", "server", s.key(), "addr", s.addr)
	return nil
}

// expect runs a command and checks its answer: it must start with ok
// (every answer but an empty one is an error when ok is "").
func (f *Front) expect(ctx context.Context, ok, format string, args ...any) error {
	cmd := fmt.Sprintf(format, args...)
	out, err := f.sock.run(ctx, cmd)
	if err != nil {
		return err
	}
	got := strings.TrimSpace(out)
	if (ok == "" && got == "") || (ok != "" && strings.HasPrefix(got, ok)) {
		return nil
	}
	return fmt.Errorf("haproxy %q: %s", cmd, firstLine(got))
}
