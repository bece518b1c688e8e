// Package haproxy is a front (reconciler.Front and reconciler.Counter)
// that carries a fleet's traffic through the user's own HAProxy, driven
// through its Runtime API on a stats socket of level admin.
//
// The user's haproxy.cfg declares the frontends, TLS, ACLs and one backend
// per exposed service (expose: haproxy: backend: "NAME"). molt keeps the
// servers of that backend equal to the service's routed instances: it adds
// them as dynamic servers named with ServerPrefix ("add server"), sets
// their weights, enables the new ones before it drains the old ones (so
// that no request meets an empty backend), and deletes a server only once
// HAProxy reports no session on it. It reads the servers' counters
// ("show stat") back for the canary and verification decisions.
//
// It deliberately does not reload HAProxy, write or read its
// configuration, create or remove backends, enable HAProxy's own health
// checks (molt's health checks gate traffic), or touch a server whose name
// does not start with ServerPrefix. HAProxy keeps no place for the
// reconciler's route metadata: the front persists each fleet's routes in
// its directory (DIR/<fleet>.json) and rebuilds the backend's servers from
// them when HAProxy lost them (a restart of HAProxy forgets dynamic
// servers).
package haproxy
