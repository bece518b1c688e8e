// Package router is molt's built-in traffic router: a front that sits in
// front of the instances of the exposed services of every fleet of one
// state directory.
//
// The router runs as its own process (`molt router --state-dir DIR`), apart
// from the reconciler, so that a crash or restart of molt never drops a
// request. Clients configure it over a unix socket in the state directory
// (see Client), one fleet at a time: SetRoutes replaces all the routes
// (targets.Route) of one fleet atomically and never touches another
// fleet's, so several fleets, each possibly with a service named "web",
// share one router. The router persists the whole table in
// STATE/router/routes.json and keeps serving it, across its own restarts
// too, while no molt runs. A routes file it cannot use (corrupt, empty, of
// an older format) is moved aside, with a warning, and the router starts
// with no routes: the reconciler sets them again from the live fleet.
// A running router keeps its files: when its directory, socket, pid file
// or routes file is removed (the whole state directory with them), it
// makes them again within a second from its memory, while its listeners
// go on serving. EnsureRunning finds a router by its process in /proc as
// well as by its socket; it replaces only a router it started (EnvManaged)
// that does not answer, and never one started by someone else (systemd).
//
// Per exposed route it listens on one address and reverse-proxies HTTP to
// the listed backends by weight (smooth weighted round robin), retries an
// idempotent request once on another backend when a backend refuses the
// connection, counts the traffic per fleet, service and generation (below),
// and lets the client wait for the requests still in flight to a backend
// before retiring it (Drain). A listen address belongs to one route of one
// fleet at a time. It forwards the plain requests (GET, HEAD and OPTIONS
// without a body, the bulk of the traffic) itself, over keep-alive
// connections of its own, and the others (with a body, or asking for an
// upgrade such as a WebSocket) through httputil.ReverseProxy; both alike
// (see forward.go).
//
// # Counts
//
// The router counts attempts: a request sent to one backend (a retried
// request is two attempts, each in its backend's generation). Per fleet,
// service and generation it counts the attempts, their responses by status
// class, the attempts that got no response (proxy errors: refused, reset,
// timed out; not those the client gave up on), and the latency of those
// that got one: the time from handing the attempt to the backend's
// connection pool (a dial included) until the response headers arrived,
// not the body's transfer. Client.Stats returns totals since the router
// started. Client.Counts returns targets.Counts over a window, for canary
// analysis and post-rollout verification: attempts are counted in slots of
// 5 s (SlotWidth) of wall-clock time, by the time they started, and the
// router keeps at least the last hour of slots (History), so a window
// starts at a slot boundary no more than an hour back; Counts says which
// start it actually covers. Latency goes in a histogram of 18 buckets,
// bounded by 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300 and 500 ms, 1, 2,
// 3, 5 and 10 s, and above (LatencyBounds).
//
// Counting costs a few atomic additions per attempt. Slots are allocated
// 16 at a time as traffic arrives, at most about 64 KiB per generation
// with traffic in the last hour; a generation out of the routes with no
// traffic for over an hour is forgotten, its totals too. Counts live in
// memory only: a restarted router counts afresh.
//
// It deliberately knows nothing of plans, rollouts or generations beyond
// their names: it does not health-check backends (the reconciler lists only
// healthy ones), judge a generation by its counts (the reconciler does),
// terminate TLS, route by host or path, or interpret a route's Meta, which
// it stores and returns verbatim. The admin protocol is served on the local
// unix socket only, never on TCP.
package router
