//go:build unix

package router

import (
	"bufio"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// A sendReader reads a connection for a bufio.Reader. Before a read it
// can send what a writer holds (a request to a backend, an answer to a
// client) and then wait for the connection to turn readable before it
// reads: an answer to what was just sent cannot be there yet, so the read
// that would only say so (EAGAIN) is not made. Go's poller forgets a
// readiness that it saw before a read begins, so the bytes are sent from
// inside the read (syscall.RawConn.Read), after it began: whatever
// arrives from then on wakes it.
type sendReader struct {
	nc   net.Conn
	rc   syscall.RawConn // nil if nc has none: then it sends, and reads, as usual
	send *bufio.Writer   // for the next read only
	then func() bool     // for the next read only: called once sent; false ends the read (errClosing)
	// waited says that the last read found nothing to read at first and
	// waited (or, after a send, was woken with nothing to read).
	waited  bool
	sending bool
	p       []byte
	n       int
	err     error
	fn      func(fd uintptr) bool // r.read, bound once
}

func newSendReader(nc net.Conn) *sendReader {
	r := &sendReader{nc: nc, rc: rawConnOf(nc)}
	r.fn = r.read
	return r
}

// rawConnOf returns nc's syscall.RawConn, or nil if it has none (a TLS
// connection, a pipe in a test).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sendFirst has the next Read send what w holds, then call then (unless
// nil), before it waits to read.
func (r *sendReader) sendFirst(w *bufio.Writer, then func() bool) { r.send, r.then = w, then }

func (r *sendReader) Read(p []byte) (int, error) {
	if r.rc == nil {
		w, then := r.send, r.then
		r.send, r.then, r.waited = nil, nil, false
		return sendThenRead(r.nc, w, then, p)
	}
	r.p, r.n, r.err, r.waited = p, 0, nil, false
	r.sending = r.send != nil
	err := r.rc.Read(r.fn)
	if err != nil && r.sending {
		// It ended before it began (the deadline had passed): what it
		// was to send is sent all the same.
		r.sending = false
		if serr := send(r.send, r.then); serr != nil {
			err = serr
		}
	}
	r.send, r.then, r.p = nil, nil, nil
	if err != nil {
		return 0, err // closed, or the deadline passed, while it waited
	}
	return r.n, r.err
}

// read is the syscall.RawConn's callback: it sends first, if asked to,
// then reads, and asks to wait (false) for as long as there is nothing to
// read.
func (r *sendReader) read(fd uintptr) bool {
	if r.sending {
		r.sending = false
		if err := send(r.send, r.then); err != nil {
			r.err = err
			return true
		}
		return false
	}
	if len(r.p) == 0 {
		return true
	}
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch errno {
		case 0:
			if n == 0 {
				r.err = io.EOF
			}
			r.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.waited = true
			return false
		default:
			r.err = opError("read", r.nc, errno)
			return true
		}
	}
}

func opError(op string, nc net.Conn, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: nc.LocalAddr(), Addr: nc.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// A sockWriter writes a connection for a bufio.Writer, as net.Conn's
// Write does but for the system call: both it and sendReader make theirs
// raw (syscall.RawSyscall), without telling the Go scheduler, which is
// right for a socket that never blocks (its read or write returns EAGAIN
// instead, and the poller waits). A write to a loopback peer runs the
// peer's receive in the same call, long enough that the scheduler's
// monitor, told of every call, hands the goroutine's processor to another
// thread while it lasts and wakes itself every 20 µs to do so: about a
// tenth of the router's time, measured (perf, 64 connections), before
// the calls were raw.
type sockWriter struct {
	nc  net.Conn
	rc  syscall.RawConn
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // w.write, bound once
}

func newSockWriter(nc net.Conn) io.Writer {
	rc := rawConnOf(nc)
	if rc == nil {
		return nc
	}
	w := &sockWriter{nc: nc, rc: rc}
	w.fn = w.write
	return w
}

func (w *sockWriter) Write(p []byte) (int, error) {
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Write(w.fn)
	n := w.n
	w.p = nil
	if err == nil {
		err = w.err
	}
	return n, err
}

// write is the syscall.RawConn's callback: it writes until all is
// written, and asks to wait (false) while the socket's buffer is full.
func (w *sockWriter) write(fd uintptr) bool {
	for w.n < len(w.p) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.p[w.n])), uintptr(len(w.p)-w.n))
		switch errno {
		case 0:
			w.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.err = opError("write", w.nc, errno)
			return true
		}
	}
	return true
}
