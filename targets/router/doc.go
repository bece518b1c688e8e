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
//
// Per exposed route it listens on one address and reverse-proxies HTTP to
// the listed backends by weight (smooth weighted round robin), retries an
// idempotent request once on another backend when a backend refuses the
// connection, counts responses per fleet, service and generation (for
// canary analysis), and lets the client wait for the requests still in
// flight to a backend before retiring it (Drain). A listen address belongs
// to one route of one fleet at a time.
//
// It deliberately knows nothing of plans, rollouts or generations beyond
// their names: it does not health-check backends (the reconciler lists only
// healthy ones), terminate TLS, route by host or path, or interpret a
// route's Meta, which it stores and returns verbatim. The admin protocol is
// served on the local unix socket only, never on TCP.
package router
