package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// FuzzLane writes arbitrary bytes to a router's listener, as a client's
// requests, then closes its side: every answer the router writes, in the
// lane or under net/http, parses as an HTTP/1.x response to the request
// it answers, and the router goes on answering other clients. An answer
// may end early: net/http takes the client's closing for its leaving and
// cuts a response in flight, and it closes a connection it refused a
// request on with the rest unread, which resets it. What must never come
// is a malformed answer.
func FuzzLane(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\nHEAD /b HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET /stream HTTP/1.1\r\nHost: a\r\n\r\nGET /trailer HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /early HTTP/1.1\r\nHost: a\r\nTe: trailers\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
		"\x00\x01garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	_, listen := routedBackend(f, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			for range 3 {
				io.WriteString(w, "part\n")
				w.(http.Flusher).Flush()
			}
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "1")
		case "/early":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "final")
		default:
			io.WriteString(w, r.URL.Path)
		}
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(in); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatal(err)
		}
		nc.(*net.TCPConn).CloseWrite()
		methods := requestMethods(in)
		br := bufio.NewReader(nc)
		for i := 0; ; {
			if _, err := br.Peek(1); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("no answer nor close after %d answer(s)", i)
				}
				break // closed (or reset after a refusal)
			}
			m := http.MethodGet
			if i < len(methods) {
				m = methods[i]
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: m})
			if err == nil && resp.StatusCode >= 400 && resp.Close {
				// net/http's refusal of a request it could not read: its
				// body follows whatever the method, and it is the last.
				break
			}
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // cut short (see above)
			}
			if err != nil {
				t.Fatalf("answer %d (to a %s) does not parse: %v", i+1, m, err)
			}
			if resp.StatusCode >= 200 {
				i++ // (a 1xx answer comes before the final one)
			}
		}
		c := dialRaw(t, listen)
		c.send("GET /still HTTP/1.1\r\nHost: a\r\n\r\n")
		c.expect("GET", "/still") // after the input, a plain GET
	})
}

// requestMethods returns the methods of the requests at the start of in,
// as net/http reads them.
func requestMethods(in []byte) []string {
	br := bufio.NewReader(bytes.NewReader(in))
	var methods []string
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return methods
		}
		methods = append(methods, r.Method)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return methods
		}
	}
}
