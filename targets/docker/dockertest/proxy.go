package dockertest

import (
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// Proxy is a unix socket that forwards every connection to the test
// engine, so that a test can make "an engine" go away (Stop) while the
// daemon behind it stays up.
type Proxy struct {
	// Host is the proxy's address, for docker.Engine.Host.
	Host string

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
}

// NewProxy starts a proxy to the engine at Host() in a temporary
// directory; it is stopped when t ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	u, err := client.ParseHostURL(Host())
	if err != nil {
		t.Fatal(err)
	}
	network, addr := u.Scheme, u.Host // for unix, Host is the socket's path
	sock := filepath.Join(shortTempDir(t), "engine.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Host: "unix://" + sock, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(func() { p.serve(network, addr) })
	t.Cleanup(p.Stop)
	return p
}

func (p *Proxy) serve(network, addr string) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial(network, addr)
		if err != nil || !p.track(c, up) {
			c.Close()
			if up != nil {
				up.Close()
			}
			continue
		}
		p.wg.Go(func() { pipe(c, up) })
	}
}

// track records a pair of connections, and reports false once stopped.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

// pipe copies both ways until either side closes.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(a, b); a.Close() })
	wg.Go(func() { io.Copy(b, a); b.Close() })
	wg.Wait()
}

// Stop closes the socket and every connection through it, and waits for
// the proxy's goroutines. Connecting to Host fails afterwards. It is
// idempotent.
func (p *Proxy) Stop() {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
