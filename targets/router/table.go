package router

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"
)

// Table is the whole desired routing state. The reconciler sends it whole;
// the router swaps it atomically.
type Table struct {
	// Version is set by the router on Apply (monotonic, persisted across
	// restarts); it is ignored on input.
	Version  int64            `json:"version"`
	Services map[string]Route `json:"services"`
}

// Route is how one service is exposed.
type Route struct {
	// Listen is the address the router serves the service on, such as
	// "127.0.0.1:8080". Empty means not exposed: the entry only carries the
	// reconciler's metadata.
	Listen   string    `json:"listen,omitempty"`
	Backends []Backend `json:"backends"`

	// Reconciler metadata, persisted but not interpreted by the router.

	// Active is the spec hash of the generation in traffic.
	Active string `json:"active,omitempty"`
	// Previous is the spec hash of the warm previous generation.
	Previous string `json:"previous,omitempty"`
	// PreviousSince is when the previous generation left traffic.
	PreviousSince time.Time         `json:"previousSince,omitempty"`
	Meta          map[string]string `json:"meta,omitempty"`
}

// Backend is one instance that receives a share of a service's traffic.
type Backend struct {
	Instance   string `json:"instance"`   // instance id
	Addr       string `json:"addr"`       // "127.0.0.1:40123"
	Generation string `json:"generation"` // spec hash
	// Weight is the backend's relative share of the route's requests; 0
	// means 1. A canary is expressed as weights across generations.
	Weight int `json:"weight,omitempty"`
}

// ErrInvalidTable wraps errors of a table that no retry can fix (a bad
// address, two services on one listen address, a negative weight).
var ErrInvalidTable = errors.New("invalid route table")

// Validate reports the first problem of the table, wrapping ErrInvalidTable.
func (t Table) Validate() error {
	listen := make(map[string]string)
	for _, name := range t.serviceNames() {
		r := t.Services[name]
		if name == "" {
			return fmt.Errorf("%w: empty service name", ErrInvalidTable)
		}
		if r.Listen != "" {
			if err := checkAddr(r.Listen); err != nil {
				return fmt.Errorf("%w: service %s: listen: %w", ErrInvalidTable, name, err)
			}
			if other, ok := listen[r.Listen]; ok {
				return fmt.Errorf("%w: services %s and %s both listen on %s", ErrInvalidTable, other, name, r.Listen)
			}
			listen[r.Listen] = name
		}
		seen := make(map[string]bool, len(r.Backends))
		for _, b := range r.Backends {
			if err := checkAddr(b.Addr); err != nil {
				return fmt.Errorf("%w: service %s: backend %q: %w", ErrInvalidTable, name, b.Instance, err)
			}
			if seen[b.Addr] {
				return fmt.Errorf("%w: service %s: backend address %s listed twice", ErrInvalidTable, name, b.Addr)
			}
			seen[b.Addr] = true
			if b.Weight < 0 {
				return fmt.Errorf("%w: service %s: backend %s: negative weight %d", ErrInvalidTable, name, b.Addr, b.Weight)
			}
		}
	}
	return nil
}

// checkAddr accepts host:port with a numeric port from 1 to 65535. Port 0
// is refused: the table must say where the router really listens.
func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("empty address")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %s: port must be a number from 1 to 65535", addr)
	}
	return nil
}

func (t Table) serviceNames() []string {
	names := make([]string, 0, len(t.Services))
	for name := range t.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
