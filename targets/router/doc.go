// Package router is molt's built-in traffic router: the data plane that
// sits in front of the instances of each exposed service.
//
// The router runs as its own process (`molt router --state-dir DIR`), apart
// from the reconciler, so that a crash or restart of molt never drops a
// request. The reconciler configures it over a unix socket in the state
// directory (see Client) by sending the whole routing Table; the router
// swaps it in atomically, persists it in STATE/router/routes.json and keeps
// serving it, across its own restarts too, while no molt runs.
//
// Per exposed service it listens on one address and reverse-proxies HTTP to
// the listed backends by weight, retries an idempotent request once on
// another backend when a backend refuses the connection, counts responses
// per generation (for canary analysis), and lets the reconciler wait for the
// requests still in flight to a backend before retiring it (Drain).
//
// It deliberately does not health-check backends (the reconciler lists only
// healthy ones), terminate TLS, route by host or path, or interpret the
// reconciler's metadata that it stores alongside each route. The admin
// protocol is served on the local unix socket only, never on TCP.
package router
