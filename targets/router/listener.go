package router

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// listener is one listen address of the data plane and its HTTP server.
// It stays open across applies for as long as some route uses the address.
type listener struct {
	addr string
	ln   *onceCloseListener
	srv  *http.Server // serves the connections the lane hands over
	// handoff is what srv serves; lane, the connections not handed over.
	handoff *handoff
	lane    lane
}

// onceCloseListener lets the router close a listener before
// http.Server.Shutdown does, without a second Close failing.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// bind listens on addr; the listener serves nothing until serve is called.
func (s *Server) bind(addr string) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{
		addr:    addr,
		ln:      &onceCloseListener{Listener: ln},
		handoff: newHandoff(ln.Addr()),
		srv: &http.Server{
			Handler:           s.dataHandler(addr),
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		},
	}, nil
}

// serve starts serving l in goroutines that the server waits for: the
// lane accepts each connection (lane.go), net/http serves those it hands
// over.
func (s *Server) serve(l *listener) {
	s.wg.Go(func() { s.accept(l) })
	s.wg.Go(func() {
		err := l.srv.Serve(l.handoff)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("listener stopped", "listen", l.addr, "err", err)
		}
	})
}

// retire closes l's socket at once, then lets its in-flight requests
// finish in the background for up to the drain timeout.
func (s *Server) retire(l *listener) {
	_ = l.ln.Close()
	s.wg.Go(func() { s.closeGracefully(l) })
}

// closeGracefully shuts l's server down, waiting for in-flight requests
// for up to the drain timeout, then closing what remains.
func (s *Server) closeGracefully(l *listener) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.drainTimeout())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.lane.shutdown(ctx); err != nil {
			s.log.Warn("listener closed with requests in flight", "listen", l.addr, "err", err)
		}
	})
	if err := l.srv.Shutdown(ctx); err != nil {
		s.log.Warn("listener closed with requests in flight", "listen", l.addr, "err", err)
		_ = l.srv.Close()
	}
	wg.Wait()
}
