//go:build !unix

package router

import (
	"bufio"
	"io"
	"net"
)

// A sendReader reads a connection for a bufio.Reader, and can send what a
// writer holds first (see sendread_unix.go; here it only sends, then
// reads as usual).
type sendReader struct {
	nc     net.Conn
	send   *bufio.Writer
	then   func() bool
	waited bool // never known here
}

func newSendReader(nc net.Conn) *sendReader { return &sendReader{nc: nc} }

// newSockWriter returns the writer of nc for a bufio.Writer: nc itself
// here (see sendread_unix.go).
func newSockWriter(nc net.Conn) io.Writer { return nc }

// sendFirst has the next Read send what w holds, then call then (unless
// nil), before it reads.
func (r *sendReader) sendFirst(w *bufio.Writer, then func() bool) { r.send, r.then = w, then }

func (r *sendReader) Read(p []byte) (int, error) {
	w, then := r.send, r.then
	r.send, r.then = nil, nil
	return sendThenRead(r.nc, w, then, p)
}
