package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrListen wraps the error of a SetRoutes whose listen address could not
// be bound (in use, not local, not permitted). The old routes stay in
// effect.
var ErrListen = errors.New("cannot listen")

// ErrDrainTimeout wraps the error of a Drain that gave up with requests
// still in flight.
var ErrDrainTimeout = errors.New("drain timed out")

// Server is the router process: the data-plane listeners and the admin
// socket. Run it once.
type Server struct {
	opts Options
	log  *slog.Logger
	dir  string

	current   atomic.Pointer[compiled]
	proxy     *httputil.ReverseProxy
	upstreams *upstreams
	stats     *statsRegistry

	applyMu   sync.Mutex           // serializes route changes, drains' pruning and shutdown
	listeners map[string]*listener // by address; guarded by applyMu

	wg       sync.WaitGroup // serving and closing goroutines
	stop     chan struct{}  // closed to make Run return
	stopOnce sync.Once

	own     ownFiles // the files under STATE/router that Run keeps (keep.go)
	managed bool     // started by EnsureRunning (EnvManaged names the directory)

	fastAnswers atomic.Int64 // requests the fast exchange answered (fast.go), for tests
}

// NewServer returns a router over opts.StateDir. It starts nothing.
func NewServer(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:      opts,
		log:       opts.logger(),
		dir:       routerDir(opts.StateDir),
		upstreams: newUpstreams(),
		stats:     newStatsRegistry(opts.clock),
		listeners: map[string]*listener{},
		stop:      make(chan struct{}),
	}
	if abs, err := filepath.Abs(opts.StateDir); err == nil {
		s.managed = os.Getenv(EnvManaged) != "" && sameDir(os.Getenv(EnvManaged), abs)
	}
	s.proxy = s.newProxy()
	s.current.Store(compile(emptyTable(), s.upstreams, s.stats))
	return s, nil
}

// Run serves until ctx is cancelled or a client asks for Shutdown, then
// stops gracefully: the admin socket closes, and each listener stops
// accepting and waits up to the drain timeout for its in-flight requests.
//
// On start it takes the directory's pid lock (failing if another router
// holds it), loads the persisted table and serves it; a listen address of
// that table that cannot be bound is logged and skipped, and a routes file
// it cannot use is moved aside (see loadTable). While it serves, it sweeps
// the counters every minute (see sweepStats), and keeps its files: a
// removed directory, socket, pid file or routes file is made again within
// about a second (see checkFiles), while the data listeners go on serving.
// A router not started by EnsureRunning (no EnvManaged) says so in
// STATE/router/external, so that molt waits for it rather than start
// another. Run returns nil after a requested stop, and an error if the
// router could not start.
func (s *Server) Run(ctx context.Context) error {
	if _, err := makeDir(s.opts.StateDir); err != nil {
		return err
	}
	pid, err := lockPID(s.dir)
	if err != nil {
		return err
	}
	s.own.pid = pid
	defer func() {
		s.own.mu.Lock()
		s.own.pid.release()
		s.own.mu.Unlock()
	}()
	s.markExternal()

	t, err := s.loadTable()
	if err != nil {
		return err
	}
	s.start(t)

	admin, info, err := s.listenAdmin()
	if err != nil {
		s.requestStop()
		s.stopListeners()
		s.wg.Wait()
		return err
	}
	s.own.ln, s.own.sock = admin, info
	s.log.Info("router started", "pid", os.Getpid(), "version", t.Version,
		"listen", s.listenAddrs(), "socket", admin.Addr().String())

	adminSrv := &http.Server{
		Handler:           s.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serveAdmin(adminSrv, admin)
	s.wg.Go(s.sweepStatsLoop)
	s.wg.Go(func() { s.keepFiles(adminSrv) })

	select {
	case <-ctx.Done():
	case <-s.stop:
	}
	s.log.Info("router stopping")
	s.requestStop() // ends pending drains

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := adminSrv.Shutdown(shutdownCtx); err != nil {
		_ = adminSrv.Close()
	}
	cancel()
	s.removeSocket()

	s.stopListeners()
	s.wg.Wait()
	s.upstreams.closeAll()
	s.log.Info("router stopped")
	return nil
}

// loadTable reads the persisted table. A file it cannot use is moved aside
// (and a warning logged): the router then starts with no routes, which the
// reconciler sets again from the live fleet. Only a file that cannot be
// moved aside is an error.
func (s *Server) loadTable() (Table, error) {
	path := filepath.Join(s.dir, tableName)
	t, err := readTable(path)
	if err == nil {
		return t, nil
	}
	aside, merr := moveAside(path, time.Now())
	if merr != nil {
		return Table{}, fmt.Errorf("load routes: %w; move it aside: %w", err, merr)
	}
	s.log.Warn("cannot use the routes file: moved it aside, starting with no routes",
		"path", path, "moved_to", aside, "err", err)
	return emptyTable(), nil
}

// start serves the persisted table, skipping the addresses it cannot bind.
func (s *Server) start(t Table) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.current.Store(compile(t, s.upstreams, s.stats))
	for _, addr := range t.listenAddrs() {
		l, err := s.bind(addr)
		if err != nil {
			s.log.Error("cannot listen; the route is not served until its routes are set again", "listen", addr, "err", err)
			continue
		}
		s.listeners[addr] = l
		s.serve(l)
	}
}

// listenAdmin listens on the admin socket, replacing a stale one (the pid
// lock says that no other router uses it), and returns the socket file's
// identity. Closing the listener leaves the file: removeSocket removes it
// only while it is still this router's.
func (s *Server) listenAdmin() (*net.UnixListener, os.FileInfo, error) {
	path, err := socketPath(s.opts.StateDir)
	if err != nil {
		return nil, nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("remove stale router socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen on router socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("listen on router socket: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("listen on router socket: %w", err)
	}
	return ln, info, nil
}

// serveAdmin serves the admin protocol on ln in a goroutine that the
// server waits for.
func (s *Server) serveAdmin(srv *http.Server, ln net.Listener) {
	s.wg.Go(func() {
		err := srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("admin socket stopped", "err", err)
		}
	})
}

func (s *Server) requestStop() { s.stopOnce.Do(func() { close(s.stop) }) }

// stopListeners closes every data-plane listener gracefully and waits.
func (s *Server) stopListeners() {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	var wg sync.WaitGroup
	for addr, l := range s.listeners {
		_ = l.ln.Close()
		wg.Go(func() { s.closeGracefully(l) })
		delete(s.listeners, addr)
	}
	wg.Wait()
}

func (s *Server) listenAddrs() []string {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	addrs := make([]string, 0, len(s.listeners))
	for addr := range s.listeners {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	return addrs
}

// sweepInterval is how often Run sweeps the counters (see sweepStats).
const sweepInterval = time.Minute

// sweepStatsLoop sweeps the counters every sweepInterval until the router
// stops.
func (s *Server) sweepStatsLoop() {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.sweepStats()
		case <-s.stop:
			return
		}
	}
}

// sweepStats forgets the counters of the generations out of the routes
// that had no traffic for over an hour, and frees the windowed counts
// older than the history. It may run at any time: a table being compiled
// marks its generations as routed before it is swapped in.
func (s *Server) sweepStats() {
	c := s.current.Load()
	routed := map[serviceKey]map[string]bool{}
	for _, rt := range c.byListen {
		key := serviceKey{fleet: rt.fleet, service: rt.service}
		gens := map[string]bool{}
		for _, b := range rt.backends {
			gens[b.Generation] = true
		}
		routed[key] = gens
	}
	if n := s.stats.sweep(s.stats.now(), routed); n > 0 {
		s.log.Debug("forgot the counters of idle generations out of the routes", "generations", n)
	}
}
