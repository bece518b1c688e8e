package docker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/moby/moby/client"
)

// DefaultHost is the engine address used when DOCKER_HOST is not set.
const DefaultHost = "unix:///var/run/docker.sock"

// defaultTimeout bounds each short call to one engine.
const defaultTimeout = 10 * time.Second

// Engine is one Docker Engine that instances may run on.
type Engine struct {
	// Name identifies the engine in instance ids ("<name>/<container id>")
	// and in a service's docker.engines: letters, digits, '-', '_' and '.'.
	// Required, unique.
	Name string
	// Host is the engine's address as DOCKER_HOST spells it:
	// unix:///var/run/docker.sock, tcp://10.0.0.5:2376, ... Required.
	Host string
	// CACert, Cert and Key are PEM files for TLS. Cert and Key go together.
	// Any of them set makes the connection TLS; CACert replaces the system
	// roots for verifying the engine.
	CACert, Cert, Key string
	// HostIP is the address on the engine's host that ports are published
	// on, and that endpoints name. Default 127.0.0.1, which only serves an
	// engine running on molt's own host. An engine on another host needs
	// the address of that host that molt and the front can reach.
	HostIP string
	// Max is the most molt instances (of every fleet and service) that
	// may run on the engine; 0 means no limit. Placement respects it, and
	// Provision refuses (a transient error) a new instance past it.
	Max int
}

// Options configure a Target.
type Options struct {
	// Engines are the engines instances may run on. At least one.
	Engines []Engine
	// Logger receives provision and retire events and warnings about
	// engines that do not answer. Nil discards them.
	Logger *slog.Logger
	// Timeout bounds each short call to one engine (ping, list, inspect),
	// so that an engine that does not answer costs at most that much. It
	// does not bound pulls, starts or stops. Zero means 10 seconds.
	Timeout time.Duration
}

// Validate reports whether the options can build a Target.
func (o Options) Validate() error {
	if len(o.Engines) == 0 {
		return errors.New("docker target: no engine")
	}
	if o.Timeout < 0 {
		return errors.New("docker target: negative timeout")
	}
	seen := make(map[string]bool, len(o.Engines))
	for _, e := range o.Engines {
		if err := e.validate(); err != nil {
			return fmt.Errorf("docker target: %w", err)
		}
		if seen[e.Name] {
			return fmt.Errorf("docker target: engine %q configured twice", e.Name)
		}
		seen[e.Name] = true
	}
	return nil
}

func (e Engine) validate() error {
	if !validName(e.Name) {
		return fmt.Errorf("engine name %q: use letters, digits, '-', '_' and '.'", e.Name)
	}
	if e.Host == "" {
		return fmt.Errorf("engine %s: no host", e.Name)
	}
	if _, err := client.ParseHostURL(e.Host); err != nil {
		return fmt.Errorf("engine %s: host %q: %w", e.Name, e.Host, err)
	}
	if (e.Cert == "") != (e.Key == "") {
		return fmt.Errorf("engine %s: TLS Cert and Key go together", e.Name)
	}
	if e.Max < 0 {
		return fmt.Errorf("engine %s: negative Max", e.Name)
	}
	if e.HostIP != "" {
		ip := net.ParseIP(e.HostIP)
		if ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("engine %s: HostIP %q is not an address endpoints can name", e.Name, e.HostIP)
		}
	}
	return nil
}

func (e Engine) tls() bool { return e.CACert != "" || e.Cert != "" }

func (e Engine) hostIP() string {
	if e.HostIP == "" {
		return "127.0.0.1"
	}
	return e.HostIP
}

// validName reports whether s is a non-empty engine name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
