package router

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// GenerationHeader is the response header that names the generation (spec
// hash) of the backend that answered.
const GenerationHeader = "X-Molt-Generation"

// attempt is the state of one proxied request; through the ReverseProxy,
// it is carried in the request's context from the handler to the transport
// and back. Only the request's own goroutine touches it.
type attempt struct {
	listen  string
	route   *route
	backend *backend
	// Left by the fast exchange for the lane (fast.go): begun says that
	// the attempt at backend was counted, in slot, from start; sent is the
	// backend connection the request was written to, whose response is
	// still to be read.
	begun bool
	slot  *slot
	start time.Time
	sent  *upConn
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attempt {
	at, _ := ctx.Value(attemptKey{}).(*attempt)
	return at
}

// acquire picks a backend for a request arriving on listen and counts it in
// flight, all from one table: it increments the backend's counter, then
// checks that the table is still current, and picks again if it is not.
// So once SetRoutes has swapped a table in, a backend that left it gets no new
// request, and every request still headed to it is already counted for
// Drain. It returns a nil route if nothing is exposed on listen, and a nil
// backend if the route has none (other than exclude).
func (s *Server) acquire(listen string, exclude ...string) (*route, *backend) {
	for {
		c := s.current.Load()
		rt := c.byListen[listen]
		if rt == nil {
			return nil, nil
		}
		b := rt.pick(exclude...)
		if b == nil {
			return rt, nil
		}
		b.up.inflight.Add(1)
		if s.current.Load() == c {
			return rt, b
		}
		b.up.inflight.Add(-1)
	}
}

// dataHandler serves the requests that arrive on one listen address:
// plain ones (see plain) it forwards itself, the others through the
// ReverseProxy.
func (s *Server) dataHandler(listen string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, b := s.acquire(listen)
		if rt == nil {
			http.Error(w, "no service on "+listen, http.StatusServiceUnavailable)
			return
		}
		if b == nil {
			rt.stats.noInstance.Add(1)
			http.Error(w, "no healthy instance for "+rt.service, http.StatusServiceUnavailable)
			return
		}
		at := &attempt{listen: listen, route: rt, backend: b}
		defer at.done()
		if plain(r) {
			s.forward(w, r, at)
			return
		}
		s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attemptKey{}, at)))
	})
}

// done ends the attempt: its backend has one request fewer in flight.
func (at *attempt) done() { at.backend.up.inflight.Add(-1) }

// newProxy builds the reverse proxy shared by every listener.
func (s *Server) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			at := attemptFrom(pr.In.Context())
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = at.backend.Addr
			pr.Out.Host = pr.In.Host // the backend sees the public host
			pr.SetXForwarded()
		},
		Transport: transportFunc(s.roundTrip),
		ModifyResponse: func(resp *http.Response) error {
			at := attemptFrom(resp.Request.Context())
			resp.Header.Set(GenerationHeader, at.backend.Generation)
			return nil
		},
		ErrorHandler: s.proxyError,
		BufferPool:   bufferPool{},
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends the request to the attempt's backend. If it fails
// before any response (the backend cannot be reached, or its connection
// breaks before the response's headers), the backend is passed over by
// picks for a while, and a request that is idempotent without a body is
// sent again to another backend of the route, up to maxTries backends in
// all, as nginx's proxy_next_upstream does for errors.
func (s *Server) roundTrip(req *http.Request) (*http.Response, error) {
	at := attemptFrom(req.Context())
	resp, err := s.send(req, at.backend)
	tried := []string{at.backend.Addr}
	for err != nil && req.Context().Err() == nil {
		at.backend.up.failed(time.Now())
		if !retryable(req) || len(tried) >= maxTries {
			return nil, err
		}
		_, next := s.acquire(at.listen, tried...)
		if next == nil {
			return nil, err
		}
		s.log.Debug("backend failed, retrying on another", "fleet", at.route.fleet, "service", at.route.service,
			"backend", at.backend.Addr, "retry", next.Addr, "err", err)
		at.backend.up.inflight.Add(-1)
		at.backend = next
		tried = append(tried, next.Addr)
		again := req.Clone(req.Context())
		again.URL.Host = next.Addr
		resp, err = s.send(again, next)
	}
	return resp, err
}

// maxTries bounds the backends one request is sent to.
const maxTries = 4

// send makes one attempt and counts it: in the totals since start and in
// the slot of its start, with its outcome and, if it got a response, its
// latency: the time from handing the request to the backend's connection
// pool (dial included) until the response's headers arrived.
func (s *Server) send(req *http.Request, b *backend) (*http.Response, error) {
	start := time.Now()
	sl := b.gen.begin(s.stats.slotTime(start))
	resp, err := b.up.transport.RoundTrip(req)
	switch {
	case err == nil:
		b.gen.response(sl, resp.StatusCode, time.Since(start))
	case req.Context().Err() == nil:
		b.gen.proxyError(sl)
	}
	return resp, err
}

// retryable reports whether a request may be sent twice: idempotent
// methods without a body.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return req.Body == nil || req.Body == http.NoBody
	}
	return false
}

// proxyError answers a request that got no response from its backend.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	s.answerError(w, r, attemptFrom(r.Context()), err)
}

// answerError answers a request that got no response from at's backend.
func (s *Server) answerError(w http.ResponseWriter, r *http.Request, at *attempt, err error) {
	if r.Context().Err() != nil {
		// The client went away; there is no one to answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	s.log.Warn("backend did not answer", "fleet", at.route.fleet, "service", at.route.service,
		"backend", at.backend.Addr, "instance", at.backend.Instance, "err", err)
	http.Error(w, "no answer from an instance of "+at.route.service, http.StatusBadGateway)
}

// bufferPool recycles the proxy's copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
