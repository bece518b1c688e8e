package router

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is one backend address: its connection pools (its own, for the
// requests the router forwards itself, and a Transport's for the others)
// and the number of requests in flight to it. Tables share upstreams by address, so a
// request counted under an old table is still seen by Drain.
type upstream struct {
	addr      string
	inflight  atomic.Int64
	pool      connPool
	transport *http.Transport
	// failedUntil (unix nanoseconds) is set when a request to it failed
	// before any response: until then picks prefer other backends, so a
	// backend that died is not tried again by every request until the
	// next route update takes it out.
	failedUntil atomic.Int64
}

// ejectFor is how long a backend that failed a request is passed over
// (when the route has others).
const ejectFor = 2 * time.Second

// failed marks the upstream as failing for ejectFor from now.
func (u *upstream) failed(now time.Time) { u.failedUntil.Store(now.Add(ejectFor).UnixNano()) }

// ejected reports whether the upstream failed a request recently.
func (u *upstream) ejected(now time.Time) bool {
	return u != nil && now.UnixNano() < u.failedUntil.Load()
}

func newUpstream(addr string) *upstream {
	return &upstream{
		addr: addr,
		pool: connPool{addr: addr},
		transport: &http.Transport{
			Proxy: nil, // never an HTTP proxy from the environment
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			// Pass bodies through as the backend encoded them.
			DisableCompression: true,
			ForceAttemptHTTP2:  false,
		},
	}
}

// upstreams is the registry of upstreams by address.
type upstreams struct {
	mu sync.Mutex
	m  map[string]*upstream
}

func newUpstreams() *upstreams { return &upstreams{m: map[string]*upstream{}} }

// get returns the upstream of addr, creating it if needed.
func (u *upstreams) get(addr string) *upstream {
	u.mu.Lock()
	defer u.mu.Unlock()
	up, ok := u.m[addr]
	if !ok {
		up = newUpstream(addr)
		u.m[addr] = up
	}
	return up
}

// lookup returns the upstream of addr, or nil.
func (u *upstreams) lookup(addr string) *upstream {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[addr]
}

// prune forgets the upstreams that are not in keep and have no request in
// flight, closing their idle connections. The caller must hold the
// server's apply lock, so that no table being compiled loses its upstreams.
func (u *upstreams) prune(keep map[string]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, up := range u.m {
		if keep[addr] || up.inflight.Load() > 0 {
			continue
		}
		up.closeIdle()
		delete(u.m, addr)
	}
}

// closeAll closes every idle connection (on shutdown).
func (u *upstreams) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, up := range u.m {
		up.closeIdle()
	}
}

// closeIdle closes the upstream's idle connections, of both pools.
func (u *upstream) closeIdle() {
	u.pool.closeIdle()
	u.transport.CloseIdleConnections()
}
