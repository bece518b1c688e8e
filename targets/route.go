package targets

import "errors"

// ErrInvalidRoutes wraps a front's refusal of a set of routes that no retry
// can fix (a listen address another fleet uses, a bad address): like
// ErrInvalidSpec, it stalls until the desired state changes.
var ErrInvalidRoutes = errors.New("invalid route table")

// Route is how one service of one fleet receives traffic from a front (the
// built-in router, HAProxy). A front holds the routes of many fleets side
// by side and never lets one fleet read or change another's; two fleets may
// both have a service named "web".
//
// The front carries traffic to the backends by weight and stores Meta with
// the route without interpreting it: Meta is the route owner's own record
// (the reconciler keeps its traffic record there).
type Route struct {
	// Service is the service's name, unique within the fleet.
	Service string `json:"service"`
	// Listen is the address the front serves the service on, such as
	// "127.0.0.1:8080". Empty means not exposed: the route only carries
	// Meta, and its backends receive no traffic.
	Listen string `json:"listen,omitempty"`
	// HAProxy names the backend of the user's HAProxy that carries the
	// service's traffic (expose.haproxy.backend), instead of the built-in
	// router. At most one of Listen and HAProxy is set.
	HAProxy string `json:"haproxy,omitempty"`
	// Backends are the instances in traffic.
	Backends []Backend `json:"backends"`
	// Meta is opaque data of the route's owner, persisted with the route.
	Meta map[string]string `json:"meta,omitempty"`
}

// Backend is one instance that receives a share of a route's requests.
type Backend struct {
	Instance   string `json:"instance"`   // instance id
	Addr       string `json:"addr"`       // "127.0.0.1:40123"
	Generation string `json:"generation"` // spec hash
	// Weight is the backend's relative share of the route's requests; 0
	// means 1. A canary is expressed as weights across generations.
	Weight int `json:"weight,omitempty"`
}
