package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ErrUnreachable wraps the failure to reach HAProxy's Runtime API (HAProxy
// is down or restarting): a transient error.
var ErrUnreachable = errors.New("haproxy runtime api unreachable")

// socket is the address of a Runtime API: a network ("unix" or "tcp") and
// an address.
type socket struct{ network, addr string }

// parseSocket reads "unix:PATH" or "tcp:HOST:PORT".
func parseSocket(s string) (socket, error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok || addr == "" {
		return socket{}, fmt.Errorf("%q: want unix:PATH or tcp:HOST:PORT", s)
	}
	switch network {
	case "unix":
	case "tcp":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return socket{}, fmt.Errorf("%q: %w", s, err)
		}
	default:
		return socket{}, fmt.Errorf("%q: want unix:PATH or tcp:HOST:PORT", s)
	}
	return socket{network, addr}, nil
}

func (s socket) String() string { return s.network + ":" + s.addr }

// maxAnswer bounds what one command may answer (a show stat of thousands
// of servers fits).
const maxAnswer = 64 << 20

// run sends one command on a connection of its own (HAProxy's
// non-interactive mode: it answers and closes) and returns the answer.
// Cancelling ctx closes the connection.
func (s socket) run(ctx context.Context, command string) (string, error) {
	if strings.ContainsAny(command, "\n;") {
		return "", fmt.Errorf("haproxy command %q: one command, no newline or ';'", command)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, s.network, s.addr)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrUnreachable, s, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrUnreachable, s, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxAnswer))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: %s: %w", ErrUnreachable, s, err)
	}
	return string(b), nil
}
