package router

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"
)

// connPool holds the idle keep-alive connections to one backend address,
// for the plain requests that the router forwards itself (forward.go). A
// connection is used by one request at a time, on the request's goroutine:
// unlike http.Transport's, it has no reading and writing goroutines of its
// own, so a request costs no hand-over between goroutines.
type connPool struct {
	addr string
	mu   sync.Mutex
	idle []*upConn // guarded by mu; the most recently used last
}

// upConn is one connection to a backend.
type upConn struct {
	nc net.Conn
	in *sendReader // br's
	br *bufio.Reader
	bw *bufio.Writer
	// reused says that the connection served a request before this one:
	// the backend may have closed it since, so a request that fails on
	// it before any response is sent again on a new connection.
	reused    bool
	idleSince time.Time
}

const (
	// maxIdlePerBackend bounds the idle connections kept to one backend
	// (as MaxIdleConnsPerHost does for the Transport).
	maxIdlePerBackend = 256
	// idleTimeout is how long an idle connection is kept.
	idleTimeout = 90 * time.Second
	// connBuffer is the size of each connection's read and write buffers.
	connBuffer = 4 << 10
)

var dialer = net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// get returns an idle connection, the most recently used, or dials a new
// one. Cancelling ctx abandons the dial.
func (p *connPool) get(ctx context.Context, now time.Time) (*upConn, error) {
	if c := p.take(now); c != nil {
		return c, nil
	}
	return p.dial(ctx)
}

// take returns the most recently used idle connection that has not timed
// out, or nil if there is none (the fast exchange does not dial).
func (p *connPool) take(now time.Time) *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleSince) < idleTimeout {
			c.reused = true
			return c
		}
		c.nc.Close()
	}
	return nil
}

// dial opens a new connection.
func (p *connPool) dial(ctx context.Context) (*upConn, error) {
	nc, err := dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	in := newSendReader(nc)
	return &upConn{nc: nc, in: in, br: bufio.NewReaderSize(in, connBuffer), bw: bufio.NewWriterSize(newSockWriter(nc), connBuffer)}, nil
}

// put returns a connection whose exchange is complete (nothing left to
// read or write on it) to the pool, or closes it if the pool is full.
func (p *connPool) put(c *upConn, now time.Time) {
	c.idleSince = now
	p.mu.Lock()
	if len(p.idle) < maxIdlePerBackend {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// closeIdle closes every idle connection; those in use are closed by their
// requests as usual.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}
