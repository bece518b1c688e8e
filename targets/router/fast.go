package router

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The fast exchange serves the commonest request of all, a GET, HEAD or
// OPTIONS without a body whose answer has a Content-Length, without
// building an http.Request or an http.Response: the request's header is
// parsed where it lies in the connection's buffer, written to a kept-alive
// backend connection field by field, and the response's header is parsed
// where it lies in that connection's buffer and written to the client,
// its body copied after it. It writes the same bytes the lane writes for
// the same exchange (forward.go, lane.go), but for the order of the
// fields sent to the backend, which is the client's own instead of a
// map's. Whatever it is not sure to write alike (a request or a response
// outside that shape, no idle backend connection, a backend connection
// that fails before its response) it leaves to the lane, where nothing of
// it was consumed: the request is parsed again by net/http, and a
// response whose header it had only looked at is read by net/http from
// the same connection.
//
// Each exchange costs two reads and two writes: the request is sent by
// the read that waits for the backend's answer, and the answer by the
// read that waits for the client's next request (sendReader), so that
// neither looks for bytes that cannot be there yet.

// maxFastFields bounds the fields of a request or response that the fast
// exchange takes.
const maxFastFields = 48

// field is one header field, pointing into the bytes it was parsed from.
type field struct{ name, value []byte }

// fastReq is a request header parsed in place.
type fastReq struct {
	method, target, host []byte
	fields               []field // without Host
	close                bool    // Connection: close
	trailers             bool    // TE: trailers
}

// parseFastRequest parses head, a whole request header (blank line
// included), and reports whether the fast exchange takes it: an HTTP/1.1
// GET, HEAD or OPTIONS in origin form, a target that net/http would send
// on unchanged, one valid Host, and no field that asks for a body, an
// upgrade, an expectation or anything that net/http would rewrite.
func parseFastRequest(head []byte, fields []field) (fastReq, bool) {
	var r fastReq
	line, rest, ok := cutLine(head)
	if !ok {
		return r, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return r, false
	}
	r.method, line = line[:sp], line[sp+1:]
	switch string(r.method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return r, false
	}
	sp = bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return r, false
	}
	r.target = line[:sp]
	if !fastTarget(r.target) {
		return r, false
	}
	r.fields = fields[:0]
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return r, false
		}
		if len(line) == 0 {
			break // the blank line
		}
		f, ok := parseField(line)
		if !ok || len(r.fields) == maxFastFields {
			return r, false
		}
		switch {
		case fieldIs(f.name, "Host"):
			if r.host != nil || len(f.value) == 0 || !laneHost(string(f.value)) {
				return r, false
			}
			r.host = f.value
			continue
		case fieldIs(f.name, "Content-Length"), fieldIs(f.name, "Transfer-Encoding"),
			fieldIs(f.name, "Expect"), fieldIs(f.name, "Upgrade"), fieldIs(f.name, "Pragma"):
			// A body, an expectation, an upgrade, or (Pragma) a field
			// net/http answers with a Cache-Control of its own.
			return r, false
		case fieldIs(f.name, "Connection"):
			r.close = r.close || listHas(f.value, []byte("close"))
		case fieldIs(f.name, "Te"):
			r.trailers = r.trailers || listHas(f.value, []byte("trailers"))
		}
		r.fields = append(r.fields, f)
	}
	if len(rest) != 0 || r.host == nil {
		return r, false
	}
	return r, true
}

// fastTarget reports whether t is an origin-form target that net/http
// sends on as it came: a path of characters it does not escape, and a
// query that cleanQuery accepts, of printable characters.
func fastTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	q := bytes.IndexByte(t, '?')
	path := t
	if q >= 0 {
		path = t[:q]
		query := t[q+1:]
		for _, c := range query {
			if c <= ' ' || c >= 0x7f || c == '#' {
				return false
			}
		}
		if !cleanQuery(string(query)) {
			return false
		}
	}
	for _, c := range path {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cutLine cuts b at its first CRLF. A bare LF is refused.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// parseField parses "Name: value" with a token for a name and a value of
// no control character but tabs, trimmed of its blanks. A continuation
// line (obs-fold) is refused.
func parseField(line []byte) (field, bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return field{}, false
	}
	name := line[:colon]
	value := bytes.Trim(line[colon+1:], " \t")
	if !laneToken(name) || !laneValue(value) {
		return field{}, false
	}
	return field{name: name, value: value}, true
}

// fieldIs reports whether name is canon (a canonical field name), without
// case.
func fieldIs(name []byte, canon string) bool {
	if len(name) != len(canon) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if lower(name[i]) != lower(canon[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// listHas reports whether the comma-separated list v holds token,
// compared without case.
func listHas(v, token []byte) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if bytes.EqualFold(bytes.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

// passedOn appends the canonical name of f to dst and reports whether f,
// one of fields, is passed on: not a hop-by-hop field (hopHeader), and
// not one that a Connection field of fields names. If it is not, dst is
// returned as it was.
func passedOn(dst []byte, f field, fields []field) ([]byte, bool) {
	n := len(dst)
	dst = appendCanonical(dst, f.name)
	if hopHeader(string(dst[n:]), nil) {
		return dst[:n], false
	}
	for _, c := range fields {
		if fieldIs(c.name, "Connection") && listHas(c.value, f.name) {
			return dst[:n], false
		}
	}
	return dst, true
}

// appendCanonical appends name as net/http canonicalizes a valid field
// name: upper case at the start and after each hyphen, lower case
// elsewhere.
func appendCanonical(dst, name []byte) []byte {
	upper := true
	for _, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
		upper = c == '-'
	}
	return dst
}

// writeFastRequest writes r to a backend as writeRequest writes the same
// request parsed by net/http (addr is never needed: r has a Host). names
// is scratch space for the canonical names.
func writeFastRequest(bw *bufio.Writer, r *fastReq, remote string, names []byte) []byte {
	bw.Write(r.method)
	bw.WriteByte(' ')
	bw.Write(r.target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.Write(r.host)
	bw.WriteString("\r\n")
	for _, f := range r.fields {
		canon, ok := passedOn(names[:0], f, r.fields)
		names = canon[:0]
		if !ok || forwardedHeader(string(canon)) {
			continue
		}
		bw.Write(canon)
		bw.WriteString(": ")
		bw.Write(f.value)
		bw.WriteString("\r\n")
	}
	if ip, _, err := net.SplitHostPort(remote); err == nil {
		writeField(bw, "X-Forwarded-For", ip)
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.Write(r.host)
	bw.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	if r.trailers {
		bw.WriteString("Te: trailers\r\n")
	}
	bw.WriteString("\r\n")
	return names
}

// fastResp is a response header parsed in place.
type fastResp struct {
	status  int
	length  int64 // Content-Length
	close   bool  // Connection: close
	hasDate bool
	fields  []field // all of them, in their order (writeFastResponse drops those not passed on)
}

// errNotFast says that a response is not one the fast exchange writes.
var errNotFast = errors.New("not a response for the fast exchange")

// parseFastResponse parses head, a whole response header (blank line
// included), for a request of method: a final HTTP/1.1 response, other
// than 204 and 304, with one Content-Length, a Content-Type (unless it has
// no body) other than server-sent events, and no Transfer-Encoding or
// Trailer. Anything else is errNotFast.
func parseFastResponse(head []byte, isHead bool, fields []field) (fastResp, error) {
	var r fastResp
	line, rest, ok := cutLine(head)
	if !ok || len(line) < len("HTTP/1.1 200") || string(line[:9]) != "HTTP/1.1 " ||
		len(line) > 12 && line[12] != ' ' {
		return r, errNotFast
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return r, errNotFast
		}
		r.status = 10*r.status + int(c-'0')
	}
	if r.status < 200 || r.status > 599 || r.status == http.StatusNoContent || r.status == http.StatusNotModified {
		return r, errNotFast
	}
	r.length = -1
	r.fields = fields[:0]
	var ctype []byte
	hasType := false
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return r, errNotFast
		}
		if len(line) == 0 {
			break
		}
		f, ok := parseField(line)
		if !ok || len(r.fields) == maxFastFields {
			return r, errNotFast
		}
		switch {
		case fieldIs(f.name, "Content-Length"):
			if r.length >= 0 || len(f.value) == 0 || len(f.value) > 15 {
				return r, errNotFast
			}
			n, err := strconv.ParseInt(string(f.value), 10, 64)
			if err != nil || f.value[0] == '+' || f.value[0] == '-' {
				return r, errNotFast
			}
			r.length = n
		case fieldIs(f.name, "Transfer-Encoding"), fieldIs(f.name, "Trailer"):
			return r, errNotFast
		case fieldIs(f.name, "Content-Type"):
			if !hasType {
				ctype = f.value // the one streamed reads
			}
			hasType = true
		case fieldIs(f.name, "Connection"):
			r.close = r.close || listHas(f.value, []byte("close"))
		case fieldIs(f.name, "Date"):
			r.hasDate = true
		}
		r.fields = append(r.fields, f)
	}
	if len(rest) != 0 || r.length < 0 {
		return r, errNotFast
	}
	if !isHead && r.length > 0 && !hasType {
		return r, errNotFast // net/http would sniff one
	}
	const sse = "text/event-stream"
	if len(ctype) >= len(sse) && bytes.EqualFold(ctype[:len(sse)], []byte(sse)) {
		return r, errNotFast // flushed as it arrives
	}
	return r, nil
}

// writeFastResponse writes the header of r, as the lane writes the same
// response forwarded (forward and laneWriter.sendHeader): the backend's
// fields, less the hop-by-hop ones, and GenerationHeader, sorted by
// canonical name, then Date if the backend sent none and Connection:
// close if closeAfter. names is scratch space for the canonical names.
func writeFastResponse(bw *bufio.Writer, r *fastResp, gen string, closeAfter bool, names []byte) []byte {
	var code [3]byte
	strconv.AppendInt(code[:0], int64(r.status), 10) // (three digits: parseFastResponse)
	bw.WriteString("HTTP/1.1 ")
	bw.Write(code[:])
	bw.WriteByte(' ')
	if text := http.StatusText(r.status); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(code[:])
	}
	bw.WriteString("\r\n")

	// The canonical names of the fields passed on (the backend's own
	// GenerationHeader is not), then an insertion sort of the fields by
	// them (stable: the values of one name keep their order).
	// GenerationHeader goes in its place among them.
	type entry struct{ name, value []byte }
	var small [maxFastFields]entry
	es := small[:0]
	names = names[:0]
	for _, f := range r.fields {
		start := len(names)
		var ok bool
		if names, ok = passedOn(names, f, r.fields); !ok || bytes.Equal(names[start:], generationName) {
			names = names[:start]
			continue
		}
		// (If names grows, the names before stay valid in the array
		// they were written to.)
		es = append(es, entry{name: names[start:len(names):len(names)], value: f.value})
	}
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && bytes.Compare(es[j-1].name, es[j].name) > 0; j-- {
			es[j-1], es[j] = es[j], es[j-1]
		}
	}
	genDone := false
	for _, e := range es {
		if !genDone && bytes.Compare(e.name, generationName) > 0 {
			writeField(bw, GenerationHeader, gen)
			genDone = true
		}
		bw.Write(e.name)
		bw.WriteString(": ")
		bw.Write(e.value)
		bw.WriteString("\r\n")
	}
	if !genDone {
		writeField(bw, GenerationHeader, gen)
	}
	if !r.hasDate {
		writeField(bw, "Date", httpDate())
	}
	if closeAfter {
		writeField(bw, "Connection", "close")
	}
	bw.WriteString("\r\n")
	return names
}

var generationName = []byte(GenerationHeader)

// bareLF reports whether b has a line feed without a carriage return
// before it.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// fastHeader returns the length of the response header at the start of
// br once all of it is buffered, reading more as needed: errNotFast if it
// does not fit in br's buffer or has a bare line feed, and the read's
// error if the connection fails first.
func fastHeader(br *bufio.Reader) (int, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		i := bytes.Index(buf, []byte("\r\n\r\n"))
		end := len(buf)
		if i >= 0 {
			end = i + 4
		}
		if bareLF(buf[:end]) {
			return 0, errNotFast // net/http reads those lines
		}
		if i >= 0 {
			return end, nil
		}
		if len(buf) >= br.Size() {
			return 0, errNotFast
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

// parseFast parses the request header of the first n bytes of c's
// buffer into c.raw, for the fast exchange: ok if it takes it.
func (c *laneConn) parseFast(n int) (fastReq, bool) {
	head, _ := c.br.Peek(n)
	c.raw = append(c.raw[:0], head...)
	r, ok := parseFastRequest(c.raw, c.fields)
	c.fields = r.fields[:0]
	c.raw = c.raw[:0]
	return r, ok
}

// fastOutcome is what became of a request offered to the fast exchange.
type fastOutcome int

const (
	fastDeclined fastOutcome = iota // nothing of it was read: the lane serves it
	fastHanded                      // read (its header is in c.raw), then left to the lane
	fastAnswered                    // answered
)

// fastServe tries the fast exchange for r, the request whose header is
// the first n bytes of c's buffer (parsed by parseFast, into c.raw, which
// nothing has written since), bound for at.backend. When it answers the
// request, keep says whether the connection stays in the lane. When it
// hands the request to the lane, at.begun says that the attempt was
// counted, and at.sent is the backend connection the request was written
// to, whose response the lane is to read (nil: the lane sends the request
// again, on a new connection).
func (s *Server) fastServe(c *laneConn, n int, r *fastReq, at *attempt) (out fastOutcome, keep bool) {
	b := at.backend
	start := time.Now()
	up := b.up.pool.take(start)
	if up == nil {
		c.raw = c.raw[:0]
		return fastDeclined, false // no idle connection: the lane dials one
	}
	c.raw = c.raw[:n] // what parseFast copied, r points into
	c.br.Discard(n)
	// (The connection keeps its idle deadline: a watch clears it.)

	at.slot, at.start, at.begun = b.gen.begin(s.stats.slotTime(start)), start, true
	watch := c.watchAfter(laneWatchAfter, nil, up)
	c.names = writeFastRequest(up.bw, r, c.remote, c.names)
	up.in.sendFirst(up.bw, nil) // sent by the read that waits for its answer
	hn, err := fastHeader(up.br)
	if watch.stop() {
		// The client left (and the backend connection was cut): no one
		// to answer, as in the lane.
		up.nc.Close()
		c.nc.Close()
		return fastAnswered, false
	}
	if err != nil && err != errNotFast {
		// A kept-alive connection that the backend had closed, or that
		// failed: the lane sends the request again on a new one, as
		// roundTripPlain does.
		up.nc.Close()
		b.up.pool.closeIdle()
		return fastHanded, false
	}
	var resp fastResp
	if err == nil {
		hb, _ := up.br.Peek(hn)
		resp, err = parseFastResponse(hb, string(r.method) == http.MethodHead, c.rfields)
		c.rfields = resp.fields[:0]
	}
	if err != nil {
		at.sent = up // the lane reads the response
		return fastHanded, false
	}
	b.gen.response(at.slot, resp.status, time.Since(start))
	at.begun = false
	s.fastAnswers.Add(1)

	closeAfter := r.close || c.lane.isClosing()
	c.names = writeFastResponse(c.bw, &resp, headerValue(b.Generation), closeAfter, c.names)
	up.br.Discard(hn)
	body := resp.length
	if string(r.method) == http.MethodHead {
		body = 0
	}
	for body > 0 {
		if up.br.Buffered() == 0 {
			if _, err := up.br.Peek(1); err != nil {
				// The body was cut: so is the client's answer, as the
				// lane aborts it.
				up.nc.Close()
				c.nc.Close()
				return fastAnswered, false
			}
		}
		chunk, _ := up.br.Peek(int(min(int64(up.br.Buffered()), body)))
		if _, err := c.bw.Write(chunk); err != nil {
			up.nc.Close()
			c.nc.Close()
			return fastAnswered, false
		}
		up.br.Discard(len(chunk))
		body -= int64(len(chunk))
	}
	if !resp.close && up.br.Buffered() == 0 {
		b.up.pool.put(up, time.Now())
	} else {
		up.nc.Close()
	}
	if closeAfter || c.br.Buffered() == 0 && !c.sendsLater() {
		if err := c.bw.Flush(); err != nil {
			c.nc.Close()
			return fastAnswered, false
		}
	}
	if closeAfter {
		c.nc.Close()
		return fastAnswered, false
	}
	return fastAnswered, true
}
