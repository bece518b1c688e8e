package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The router reads the requests of a client's connection itself (the
// lane) for as long as each is one it forwards itself (see plain and
// laneable), and writes their responses itself (laneWriter), so that a
// request costs none of net/http's server machinery: no goroutine reading
// in the background for the length of each request, no response writer
// and chunk writer pair, no second context. At the first request it does
// not take, the connection is handed over to net/http, with every byte
// read from it so far, and net/http serves it from then on: through the
// router's forward or the ReverseProxy, exactly as it serves connections
// it accepted itself.

// Timeouts of a connection in the lane, as net/http's server of a
// listener has them.
const (
	laneHeaderTimeout = 30 * time.Second // from a request's first byte to its last header byte
	laneIdleTimeout   = 2 * time.Minute  // between requests
)

// laneBuffer is the size of a lane connection's read and write buffers. A
// request whose header does not fit in it goes to net/http.
const laneBuffer = 4 << 10

// laneWatchAfter is how long a request waits for its backend before the
// lane starts watching its client's connection for an end (a client that
// left cancels the request, as it does under net/http). Most answers come
// sooner and cost no watch.
const laneWatchAfter = 20 * time.Millisecond

// laneBlindWait bounds the wait for a client's next request that does not
// look whether it is already there (see serveLane): what a client that
// sends its next request before its answer waits once.
const laneBlindWait = 50 * time.Millisecond

// lane holds the connections in the lane of one listener, for a graceful
// close like http.Server.Shutdown's.
type lane struct {
	mu      sync.Mutex
	conns   map[*laneConn]struct{} // guarded by mu (and each one's idle)
	closing bool                   // guarded by mu
}

// add enters c, unless the lane closes.
func (l *lane) add(c *laneConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	if l.conns == nil {
		l.conns = map[*laneConn]struct{}{}
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *lane) remove(c *laneConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// setIdle marks c idle or busy. It reports false when the lane closes: an
// idle connection is then closed, a busy one finishes its request.
func (l *lane) setIdle(c *laneConn, idle bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	c.idle = idle
	return true
}

func (l *lane) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

// shutdown closes the idle connections at once and the others as they
// finish their request, until ctx ends; then it closes what is left and
// reports ctx's error.
func (l *lane) shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		l.mu.Lock()
		left := 0
		for c := range l.conns {
			if c.idle {
				c.nc.Close()
				delete(l.conns, c)
				continue
			}
			left++
		}
		l.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			l.close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// close closes every connection of the lane.
func (l *lane) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for c := range l.conns {
		c.nc.Close()
		delete(l.conns, c)
	}
}

// handoff is the listener net/http serves: the connections the lane hands
// over.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// give hands c over to net/http; it reports false when net/http no longer
// takes connections.
func (h *handoff) give(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// replayConn is a connection handed over: its reads return first what the
// lane had read from it.
type replayConn struct {
	net.Conn
	in connReader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.in.Read(p) }

// CloseWrite half-closes the connection: net/http does, before it closes
// a connection whose request body it did not read whole, on connections
// that can (so that the client reads the answer before the reset that
// unread bytes would cause).
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// laneConn is one client connection in the lane.
type laneConn struct {
	lane   *lane
	nc     net.Conn
	remote string // nc's remote address
	in     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	raw    []byte     // the current request's header, as read
	w      laneWriter // the current request's, reused
	at     attempt    // the current request's, reused
	watch  *watch     // the last request's, reused if its timer did not fire
	// blind says that an answer held back in bw is sent by the read that
	// waits for the next request (see serveLane), until the client is
	// seen to send a request before it has its answer.
	blind  bool
	idle   bool        // between requests; guarded by lane.mu
	idleFn func() bool // marks c idle, bound once
	// Scratch space of the fast exchange, reused.
	fields, rfields []field
	names           []byte
}

// writer returns the connection's response writer, reset for r.
func (c *laneConn) writer(r *http.Request, closeAfter bool) *laneWriter {
	h, body := c.w.h, c.w.body
	clear(h)
	c.w = laneWriter{c: c, req: r, h: h, body: body[:0], closeAfter: closeAfter}
	return &c.w
}

// connReader reads the connection after pending: the bytes that a watch
// read while a request waited (a client may send its next request
// early), or all that the lane read before a hand-over.
type connReader struct {
	nc      net.Conn
	sr      *sendReader // nc's, if not nil (a lane connection's)
	pending []byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	if r.sr != nil {
		return r.sr.Read(p)
	}
	return r.nc.Read(p)
}

// accept accepts the connections of l until its socket closes, and serves
// each in the lane.
func (s *Server) accept(l *listener) {
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A shortage (of file descriptors, say): wait and try again,
			// as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Debug("accept failed; retrying", "listen", l.addr, "in", delay, "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go s.serveLane(l, nc)
	}
}

// serveLane serves the requests of nc that the lane takes, and hands nc
// over to net/http at the first it does not.
func (s *Server) serveLane(l *listener, nc net.Conn) {
	c := &laneConn{lane: &l.lane, nc: nc, remote: nc.RemoteAddr().String(), blind: true}
	c.in.nc, c.in.sr = nc, newSendReader(nc)
	c.idleFn = func() bool { return l.lane.setIdle(c, true) }
	if !l.lane.add(c) {
		nc.Close()
		return
	}
	c.br = bufio.NewReaderSize(&c.in, laneBuffer)
	c.bw = bufio.NewWriterSize(newSockWriter(nc), laneBuffer)
	defer l.lane.remove(c)
	for {
		// The answer to the last request, held back in bw (fastServe),
		// is sent by the read that waits for the next one: it can only
		// come after its answer, and so that read does not look first
		// (sendReader). Should the client have sent it earlier (HTTP/1.1
		// pipelining), the wait would not see it: it is bounded by
		// laneBlindWait, after which the read looks, and a client that
		// is seen to do that loses the blind wait.
		blind := c.bw.Buffered() > 0 && c.sendsLater()
		if blind {
			nc.SetReadDeadline(time.Now().Add(laneBlindWait))
			c.in.sr.sendFirst(c.bw, c.idleFn) // marked idle once sent
		} else {
			if !l.lane.setIdle(c, true) {
				c.bw.Flush() // an answer held back for the next request's sake
				nc.Close()
				return
			}
			nc.SetReadDeadline(time.Now().Add(laneIdleTimeout))
		}
		_, err := c.br.Peek(1)
		if blind && errors.Is(err, os.ErrDeadlineExceeded) {
			// Sent, marked idle, and no request within laneBlindWait:
			// wait for one as usual. One that was there already had
			// come before its answer.
			nc.SetReadDeadline(time.Now().Add(laneIdleTimeout))
			_, err = c.br.Peek(1)
			c.blind = c.in.sr.waited
		}
		if err != nil {
			nc.Close()
			return
		}
		if !l.lane.setIdle(c, false) {
			c.bw.Flush()
			nc.Close() // closing: a request that had not begun (as net/http does)
			return
		}
		c.raw = c.raw[:0]
		n, err := c.headerEnd()
		if err != nil {
			s.handOver(l, c) // too long, bare line feeds, or cut short: net/http says so
			return
		}
		fast, ok := c.parseFast(n)
		var req *http.Request
		if !ok {
			if req, ok = c.readRequest(n); !ok {
				s.handOver(l, c)
				return
			}
		}
		rt, b := s.acquire(l.addr)
		if b == nil {
			// No route or no backend: net/http answers, as before.
			s.handOver(l, c)
			return
		}
		c.at = attempt{listen: l.addr, route: rt, backend: b}
		at := &c.at
		if req == nil {
			out, keep := s.fastServe(c, n, &fast, at)
			switch out {
			case fastAnswered:
				at.done()
				if !keep {
					return
				}
				continue
			case fastHanded:
				// The fast exchange took the header out of the
				// buffer: it is in c.raw, and parses as a laneable
				// request.
				req, err = http.ReadRequest(bufio.NewReader(bytes.NewReader(c.raw)))
			default:
				req, ok = c.readRequest(n)
				if !ok {
					err = errors.New("refused by readRequest")
				}
			}
			if err != nil || !laneable(req) {
				at.done()
				s.log.Error("lane: a request of the fast exchange is not laneable", "listen", l.addr, "err", err)
				nc.Close()
				return
			}
		}
		nc.SetReadDeadline(time.Time{})
		c.raw = c.raw[:0] // the lane serves it
		if !s.laneServe(l, c, req, at) {
			return
		}
	}
}

// sendsLater reports whether an answer held back in c.bw is sent by the
// read that waits for the next request (see serveLane): nothing of that
// request has been read yet, and the client has not been seen to send
// one before its answer.
func (c *laneConn) sendsLater() bool {
	return c.blind && c.br.Buffered() == 0 && len(c.in.pending) == 0
}

// handOver gives c, and what was read of it, to net/http, once the
// lane's answers are all written.
func (s *Server) handOver(l *listener, c *laneConn) {
	l.lane.remove(c)
	if err := c.bw.Flush(); err != nil {
		c.nc.Close()
		return
	}
	rest, _ := c.br.Peek(c.br.Buffered())
	pending := make([]byte, 0, len(c.raw)+len(rest)+len(c.in.pending))
	pending = append(append(append(pending, c.raw...), rest...), c.in.pending...)
	c.nc.SetReadDeadline(time.Time{})
	if !l.handoff.give(&replayConn{Conn: c.nc, in: connReader{nc: c.nc, pending: pending}}) {
		c.nc.Close()
	}
}

// readRequest reads the next request's header, the first n bytes of the
// buffer, which the lane takes (ok) if the request is laneable. c.raw
// keeps the header as it was read, for a hand-over.
func (c *laneConn) readRequest(n int) (*http.Request, bool) {
	c.raw = c.raw[:0]
	head, _ := c.br.Peek(n)
	c.raw = append(c.raw, head...)
	before := c.br.Buffered()
	req, err := http.ReadRequest(c.br)
	// ReadRequest may end the header before n (at a line of "\n\r\n"):
	// c.raw keeps only what it read, the rest is still in the buffer.
	c.raw = c.raw[:min(len(c.raw), before-c.br.Buffered())]
	if err != nil || !laneable(req) {
		return nil, false
	}
	return req, true
}

// headerEnd returns the length of the request header at the start of the
// connection's buffer, blank line included, once all of it is buffered.
// Before it waits for more of it, it sends what bw holds (the answer to
// the request before, held back while this one's first bytes were already
// there), and the first time, it sets the header's deadline (a request
// that arrives whole, as most do, keeps its idle deadline).
func (c *laneConn) headerEnd() (int, error) {
	br, bw := c.br, c.bw
	waited := false
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if bytes.Contains(buf[:i], []byte("\n\n")) {
				return 0, errors.New("bare line feeds")
			}
			return i + 4, nil
		}
		if bytes.Contains(buf, []byte("\n\n")) {
			return 0, errors.New("bare line feeds")
		}
		if len(buf) >= br.Size() {
			return 0, bufio.ErrBufferFull
		}
		if bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return 0, err
			}
		}
		if !waited {
			c.nc.SetReadDeadline(time.Now().Add(laneHeaderTimeout))
			waited = true
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

// laneable reports whether the lane serves r itself: a plain request
// (see plain) of HTTP/1.1 in origin form, with one valid Host and nothing
// net/http's server would refuse or treat specially (an Expect, an
// invalid field).
func laneable(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || !plain(r) || r.URL.Host != "" ||
		len(r.RequestURI) == 0 || r.RequestURI[0] != '/' {
		return false
	}
	// (ReadRequest refused a second Host and took the one out of the
	// header: r.Host is it.)
	if r.Host == "" || !laneHost(r.Host) {
		return false
	}
	if _, ok := r.Header["Expect"]; ok {
		return false
	}
	for k, vv := range r.Header {
		if !laneToken(k) {
			return false
		}
		for _, v := range vv {
			if !laneValue(v) {
				return false
			}
		}
	}
	return true
}

// laneHost reports whether h is a Host the lane takes: letters, digits
// and the characters of names, IPv4 and IPv6 addresses and ports.
func laneHost(h string) bool {
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// laneToken reports whether k is an HTTP token (a valid field name).
func laneToken[S ~string | ~[]byte](k S) bool {
	if len(k) == 0 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// laneValue reports whether v is a valid field value: no control
// character but a tab.
func laneValue[S ~string | ~[]byte](v S) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// laneServe forwards r to at's backend and writes the response on c. It
// reports whether the connection stays in the lane for another request.
func (s *Server) laneServe(l *listener, c *laneConn, r *http.Request, at *attempt) (keep bool) {
	defer at.done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r = r.WithContext(ctx)
	r.RemoteAddr = c.remote
	w := c.writer(r, r.Close)
	watch := c.watchAfter(laneWatchAfter, cancel, nil)
	defer func() {
		if watch.stop() {
			c.nc.Close() // the client left
			keep = false
		}
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				s.log.Error("lane: panic serving a request", "listen", l.addr, "panic", p)
			}
			c.nc.Close()
			keep = false
			return
		}
		if err := w.finish(); err != nil || w.closeAfter {
			c.nc.Close()
			keep = false
		}
	}()
	s.forward(w, r, at)
	return true
}

// watch is a watch of a client connection while its request waits. A
// connection reuses its watch, and the watch's timer, from one request
// to the next for as long as the timer is stopped before it fires (most
// answers come before it): a timer that fired may still run its
// function, so its watch is left to it and the next request makes a new
// one.
type watch struct {
	c       *laneConn
	timer   *time.Timer
	mu      sync.Mutex
	stopped bool          // guarded by mu: the watch must not start
	done    chan struct{} // guarded by mu: made when the watch starts, closed when its read ends
	gone    bool          // the connection ended
	// What the client's leaving cancels: the request's context
	// (cancel), or the backend connection of the fast exchange (up).
	cancel func()
	up     *upConn
	reuse  bool // the timer was stopped before it fired
}

// watchAfter starts watching c's connection after d: if it ends (the
// client left), cancel is called, or up is cut (one of them nil).
func (c *laneConn) watchAfter(d time.Duration, cancel func(), up *upConn) *watch {
	w := c.watch
	if w != nil && w.reuse {
		w.stopped, w.done, w.gone, w.cancel, w.up, w.reuse = false, nil, false, cancel, up, false
		w.timer.Reset(d)
		return w
	}
	w = &watch{c: c, cancel: cancel, up: up}
	w.timer = time.AfterFunc(d, w.start)
	c.watch = w
	return w
}

// start starts the watch, unless it was stopped.
func (w *watch) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.done = make(chan struct{})
	// The connection may still have its idle deadline (the fast
	// exchange leaves it): the watch waits for as long as the request.
	w.c.nc.SetReadDeadline(time.Time{})
	go w.read()
}

// read waits for a byte of the client's next request, or its end.
func (w *watch) read() {
	defer close(w.done)
	if w.c.br.Buffered() > 0 || len(w.c.in.pending) > 0 {
		return // the next request is already here: nothing to watch
	}
	var b [1]byte
	n, err := w.c.nc.Read(b[:])
	if n > 0 {
		w.c.in.pending = append(w.c.in.pending, b[0])
	}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		w.gone = true
		if w.up != nil {
			w.up.abort()
		} else {
			w.cancel()
		}
	}
}

// stop ends the watch and reports whether the client left.
func (w *watch) stop() bool {
	w.reuse = w.timer.Stop()
	w.mu.Lock()
	w.stopped = true
	done := w.done
	w.mu.Unlock()
	if done == nil {
		return false // it never started
	}
	w.c.nc.SetReadDeadline(time.Unix(1, 0)) // interrupt the read
	<-done
	w.c.nc.SetReadDeadline(time.Time{})
	return w.gone
}

// laneWriter writes a response on a lane connection as net/http's server
// writes the response of a handler: the body is buffered up to
// laneChunking bytes, so that a short one gets a Content-Length; a longer
// one or one flushed early without a length is sent chunked; a missing
// Date is set and a missing Content-Type sniffed; a HEAD response, a 204
// and a 304 have no body; trailers follow a chunked body.
type laneWriter struct {
	c          *laneConn
	req        *http.Request
	h          http.Header
	status     int  // the final status, once written
	sent       bool // the header is on the wire (in c.bw)
	chunked    bool
	noBody     bool
	closeAfter bool
	body       []byte // buffered before the header is sent
	err        error
}

// laneChunking is how much body is held before a response without a
// length goes chunked (net/http's bufferBeforeChunkingSize).
const laneChunking = 2048

func (w *laneWriter) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header, 8)
	}
	return w.h
}

func (w *laneWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code >= 100 && code <= 199 {
		// Sent at once, with the fields set so far (the caller clears
		// them after).
		w.writeStatus(code)
		w.writeFields(nil)
		w.c.bw.WriteString("\r\n")
		w.flushWire()
		return
	}
	w.status = code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
}

func (w *laneWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		return len(p), nil
	}
	if !w.sent {
		if len(w.body)+len(p) <= laneChunking {
			w.body = append(w.body, p...)
			return len(p), nil
		}
		w.sendHeader(false)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *laneWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHeader(false)
	}
	w.flushWire()
}

// finish ends the response: the header if not yet sent, the buffered
// body, the last chunk and trailers; it flushes unless the client's next
// request is already buffered.
func (w *laneWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHeader(true)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n")
		w.writeTrailers()
		w.c.bw.WriteString("\r\n")
	}
	if w.err == nil && (w.closeAfter || w.c.br.Buffered() == 0) {
		w.flushWire()
	}
	return w.err
}

// sendHeader writes the status line and the fields; final says the
// handler is done, so the buffered body is the whole body. As net/http
// does, the fields it sets itself (Date, Content-Length, Content-Type,
// Connection, Transfer-Encoding) follow the handler's, sorted.
func (w *laneWriter) sendHeader(final bool) {
	w.sent = true
	h := w.Header()
	var date, length, ctype, conn string
	if _, ok := h["Date"]; !ok {
		date = httpDate()
	}
	_, hasLen := h["Content-Length"]
	_, hasTrailer := h["Trailer"]
	if !w.noBody {
		if ct, ok := h["Content-Type"]; !ok && len(w.body) > 0 {
			ctype = http.DetectContentType(w.body)
		} else if ok && len(ct) == 0 {
			delete(h, "Content-Type") // set to nil: no sniffing, no field
		}
		switch {
		case hasTrailer:
			delete(h, "Content-Length")
			w.chunked = true
		case hasLen:
		case final:
			length = strconv.Itoa(len(w.body))
		default:
			w.chunked = true
		}
	}
	if !w.closeAfter && w.c.lane.isClosing() {
		w.closeAfter = true // the listener goes: this is the last answer
	}
	if w.closeAfter {
		conn = "close"
	}
	w.writeStatus(w.status)
	w.writeFields(func(k string) bool { return k == "Trailer" && !w.chunked })
	bw := w.c.bw
	for _, f := range [...][2]string{{"Date", date}, {"Content-Length", length}, {"Content-Type", ctype}, {"Connection", conn}} {
		if f[1] != "" {
			writeField(bw, f[0], f[1])
		}
	}
	if w.chunked {
		writeField(bw, "Transfer-Encoding", "chunked")
	}
	bw.WriteString("\r\n")
	if len(w.body) > 0 {
		body := w.body
		w.body = w.body[:0]
		w.writeBody(body)
	}
}

func (w *laneWriter) writeStatus(code int) {
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.WriteString(strconv.Itoa(code))
	}
	bw.WriteString("\r\n")
}

// writeFields writes the header's fields, sorted by name as net/http
// writes them, but for the trailer values and those skip names.
func (w *laneWriter) writeFields(skip func(string) bool) {
	var small [16]string
	keys := small[:0]
	for k := range w.h {
		if skip != nil && skip(k) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range w.h[k] {
			writeField(w.c.bw, k, headerValue(v))
		}
	}
}

// writeTrailers writes the trailers, sorted: the fields the Trailer
// field announced, and those set under http.TrailerPrefix.
func (w *laneWriter) writeTrailers() {
	var tr http.Header
	add := func(k string, vv []string) {
		if tr == nil {
			tr = http.Header{}
		}
		tr[k] = append(tr[k], vv...)
	}
	for _, decl := range w.h["Trailer"] {
		for _, k := range splitList(decl) {
			k = http.CanonicalHeaderKey(k)
			if vv := w.h[k]; len(vv) > 0 {
				add(k, vv)
			}
		}
	}
	for k, vv := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(http.CanonicalHeaderKey(name), vv)
		}
	}
	keys := slices.Sorted(maps.Keys(tr))
	for _, k := range keys {
		for _, v := range tr[k] {
			writeField(w.c.bw, k, headerValue(v))
		}
	}
}

func (w *laneWriter) writeBody(p []byte) {
	if w.err != nil || len(p) == 0 {
		return
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	if _, err := bw.Write(p); err != nil {
		w.err = err
		return
	}
	if w.chunked {
		bw.WriteString("\r\n")
	}
}

func (w *laneWriter) flushWire() {
	if w.err != nil {
		return
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
	}
}

// laneWriter is an http.Flusher, as net/http's response writer is.
var _ http.Flusher = (*laneWriter)(nil)

// httpDate is the Date field of a response sent now, formatted once a
// second.
func httpDate() string {
	now := time.Now().Unix()
	if d := laneDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	laneDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var laneDate atomic.Pointer[dateText]

// headerValue is v as net/http writes a field value: line breaks turned
// into spaces, without leading or trailing blanks.
func headerValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	return strings.Trim(v, " \t")
}

// splitList splits a comma-separated field value into its trimmed items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.Trim(item, " \t"); item != "" {
			out = append(out, item)
		}
	}
	return out
}
