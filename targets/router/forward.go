package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The router forwards most requests itself, over its own keep-alive
// connections (pool.go), and the rest through httputil.ReverseProxy
// (proxy.go). Both answer a request alike: the same request reaches the
// backend (hop-by-hop headers removed, X-Forwarded-* set, the client's
// Host kept), the same response reaches the client (hop-by-hop headers
// removed, GenerationHeader set, 1xx responses and trailers passed on,
// streamed bodies flushed as they arrive), failures retried and answered
// alike, and every attempt counted alike. Forwarding itself saves the
// ReverseProxy's copy of the request and the Transport's hand-over of
// each request and response between goroutines.

// plain reports whether the router forwards r itself: an HTTP/1 request
// that may be sent twice (GET, HEAD or OPTIONS without a body), that asks
// for no protocol upgrade, and whose query and host the ReverseProxy and
// Transport would send as they are. A request that may be sent twice is
// also one that may be sent again on a new connection when a kept-alive
// one turns out to be closed by the backend.
func plain(r *http.Request) bool {
	if r.ProtoMajor != 1 || !retryable(r) {
		return false
	}
	if _, ok := r.Header["Upgrade"]; ok {
		return false
	}
	return cleanQuery(r.URL.RawQuery) && asciiHost(r.Host)
}

// cleanQuery reports whether the ReverseProxy would pass the query as it
// is: without a semicolon or a malformed escape, which it re-encodes.
func cleanQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// asciiHost reports whether host needs no conversion to punycode.
func asciiHost(host string) bool {
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return false
		}
	}
	return true
}

// forward proxies a plain request to at.backend, retrying as roundTrip
// does, and answers the client. A failure to copy the response's body
// aborts the client's connection (panic(http.ErrAbortHandler)), as the
// ReverseProxy does, so that a cut response is not taken for whole.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, at *attempt) {
	ctx := r.Context()
	ex, err := s.exchange(ctx, w, r, at)
	if err != nil {
		s.answerError(w, r, at, err)
		return
	}
	resp := ex.resp
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if !hopHeader(k, conn) {
			h[k] = vv
		}
	}
	h[GenerationHeader] = at.backend.genHeader
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	err = copyBody(w, resp.Body, streamed(resp))
	intact := ex.stop() // false: the client left and the connection was cut
	if err != nil {
		ex.conn.nc.Close()
		panic(http.ErrAbortHandler)
	}
	if intact && !resp.Close && ex.conn.br.Buffered() == 0 {
		at.backend.up.pool.put(ex.conn, time.Now())
	} else {
		ex.conn.nc.Close()
	}

	if len(resp.Trailer) > 0 {
		// Force chunking, so that the trailers can follow.
		flushClient(w)
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			h[k] = append(h[k], vv...)
		}
		return
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// exchanged is a response whose headers arrived, with the connection its
// body is read from and the stop function of the connection's abort on
// the client's leaving.
type exchanged struct {
	resp *http.Response
	conn *upConn
	stop func() bool
}

// exchange sends r to at.backend and reads the response's headers. If
// that fails, the backend is passed over by picks for a while and r is
// sent to another backend of the route, up to maxTries backends in all,
// as roundTrip does.
func (s *Server) exchange(ctx context.Context, w http.ResponseWriter, r *http.Request, at *attempt) (exchanged, error) {
	var tried [maxTries]string
	n := 0
	for {
		b := at.backend
		tried[n] = b.Addr
		n++
		ex, err := s.sendPlain(ctx, w, r, at)
		if err == nil || ctx.Err() != nil {
			return ex, err
		}
		b.up.failed(time.Now())
		if n >= maxTries {
			return ex, err
		}
		_, next := s.acquire(at.listen, tried[:n]...)
		if next == nil {
			return ex, err
		}
		s.log.Debug("backend failed, retrying on another", "fleet", at.route.fleet, "service", at.route.service,
			"backend", b.Addr, "retry", next.Addr, "err", err)
		b.up.inflight.Add(-1)
		at.backend = next
	}
}

// sendPlain makes one attempt at at.backend and counts it, as send does
// (unless the fast exchange had begun it).
func (s *Server) sendPlain(ctx context.Context, w http.ResponseWriter, r *http.Request, at *attempt) (exchanged, error) {
	b := at.backend
	var start time.Time
	var sl *slot
	if at.begun {
		start, sl, at.begun = at.start, at.slot, false
	} else {
		start = time.Now()
		sl = b.gen.begin(s.stats.slotTime(start))
	}
	sent := at.sent
	at.sent = nil
	ex, err := roundTripPlain(ctx, w, r, b.up, start, sent)
	switch {
	case err == nil:
		b.gen.response(sl, ex.resp.StatusCode, time.Since(start))
	case ctx.Err() == nil:
		b.gen.proxyError(sl)
	}
	return ex, err
}

// roundTripPlain sends r on a connection to up and reads the response's
// headers, passing 1xx responses on to w; sent, if not nil, is a
// connection r was already written to. A kept-alive connection that
// fails before a response (the backend closed it while idle) is replaced
// by a new one, once, and the other idle connections are dropped too.
// Cancelling ctx (the client left) cuts the connection, now or while the
// body is read, until stop is called.
func roundTripPlain(ctx context.Context, w http.ResponseWriter, r *http.Request, up *upstream, now time.Time, sent *upConn) (exchanged, error) {
	c, err := sent, error(nil)
	if c == nil {
		c, err = up.pool.get(ctx, now)
	}
	for err == nil {
		stop := context.AfterFunc(ctx, c.abort)
		var resp *http.Response
		resp, err = c.roundTrip(w, r, up.addr, sent != nil)
		sent = nil
		if err == nil {
			return exchanged{resp: resp, conn: c, stop: stop}, nil
		}
		stop()
		c.nc.Close()
		if !c.reused || ctx.Err() != nil {
			break
		}
		up.pool.closeIdle()
		c, err = up.pool.dial(ctx)
	}
	return exchanged{}, err
}

// abort cuts the connection's reads and writes short.
func (c *upConn) abort() { c.nc.SetDeadline(time.Unix(1, 0)) }

// maxInformational bounds the 1xx responses passed on before the final one.
const maxInformational = 5

// roundTrip writes r (unless written) and reads the final response's
// headers, passing the 1xx responses before it on to w.
func (c *upConn) roundTrip(w http.ResponseWriter, r *http.Request, addr string, written bool) (*http.Response, error) {
	if !written {
		writeRequest(c.bw, r, addr)
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
	}
	for range maxInformational + 1 {
		resp, err := http.ReadResponse(c.br, r)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("backend switched protocols without being asked to")
		case resp.StatusCode >= 200:
			return resp, nil
		}
		h := w.Header()
		for k, vv := range resp.Header {
			h[k] = append(h[k], vv...)
		}
		w.WriteHeader(resp.StatusCode)
		clear(h) // WriteHeader does not, for 1xx responses
	}
	return nil, errors.New("backend sent too many 1xx responses")
}

// writeRequest writes the request line and header of r, as the
// ReverseProxy (with SetXForwarded) and the Transport write them: the
// client's Host (addr if none), its header without the hop-by-hop fields
// and without its own Forwarded and X-Forwarded-* fields, then
// X-Forwarded-For, -Host and -Proto, and "Te: trailers" if the client
// accepts trailers. A plain request has no body.
func writeRequest(bw *bufio.Writer, r *http.Request, addr string) {
	host := r.Host
	if host == "" {
		host = addr
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\n")
	writeField(bw, "Host", host)
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if hopHeader(k, conn) || forwardedHeader(k) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		writeField(bw, "X-Forwarded-For", ip)
	}
	writeField(bw, "X-Forwarded-Host", r.Host)
	writeField(bw, "X-Forwarded-Proto", "http") // the router does not terminate TLS
	if hasToken(r.Header["Te"], "trailers") {
		writeField(bw, "Te", "trailers")
	}
	bw.WriteString("\r\n")
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// hopHeader reports whether the field k of a header whose Connection
// field is conn is hop-by-hop: one of the RFC's list, or named in conn.
func hopHeader(k string, conn []string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return len(conn) > 0 && hasToken(conn, k)
}

// forwardedHeader reports whether k is a field that the router sets
// itself or that the Transport derives from the request: the client's own
// are not passed on.
func forwardedHeader(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Host", "Content-Length":
		return true
	}
	return false
}

// hasToken reports whether one of the comma-separated lists vv holds
// token, compared without case.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// streamed reports whether a response's body is flushed to the client as
// it arrives: a body of unknown length, or server-sent events (as the
// ReverseProxy does).
func streamed(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	const sse = "text/event-stream"
	ct := resp.Header.Get("Content-Type")
	return len(ct) >= len(sse) && strings.EqualFold(ct[:len(sse)], sse) &&
		(len(ct) == len(sse) || ct[len(sse)] == ';' || ct[len(sse)] == ' ')
}

// copyBody copies a response's body to w, flushing after each write if
// flush, until the body's end (nil) or an error, of either side.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	if body == http.NoBody {
		return nil
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush {
				flushClient(w)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func flushClient(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
