package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/molt-dev/molt/targets"
)

// ErrNotRunning says that no router answers on the state directory's socket.
var ErrNotRunning = errors.New("router not running")

// Client talks to the router of a state directory over its admin socket.
// Its methods are safe for concurrent use; cancelling ctx abandons the call
// (a SetRoutes already received by the router still completes there). Every
// method returns an error wrapping ErrNotRunning when no router answers.
type Client struct {
	stateDir string
	hc       *http.Client
}

// NewClient returns a client for the router of stateDir. It connects
// lazily, on each call.
func NewClient(stateDir string) *Client {
	c := &Client{stateDir: stateDir}
	c.hc = &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			path, err := socketPath(stateDir)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", path)
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
				return nil, fmt.Errorf("%w (no socket at %s)", ErrNotRunning, path)
			}
			return conn, err
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
	return c
}

// ErrProtocol says that the router answering is of another molt version,
// which speaks another admin protocol (such as the one before routes were
// scoped by fleet): it must be replaced (EnsureRunning does so).
var ErrProtocol = errors.New("the router runs another admin protocol")

// Ping returns nil if the router answers, an error wrapping ErrNotRunning
// if nothing listens on the socket, and one wrapping ErrProtocol if the
// router is of another molt version.
func (c *Client) Ping(ctx context.Context) error {
	var p pingReply
	if err := c.call(ctx, http.MethodGet, "/ping", nil, &p); err != nil {
		return err
	}
	if p.Protocol != adminProtocol {
		return fmt.Errorf("%w (pid %d speaks protocol %d, this molt %d)", ErrProtocol, p.PID, p.Protocol, adminProtocol)
	}
	return nil
}

// Routes returns fleet's routes in effect, sorted by service; a fleet
// without routes has an empty list. A malformed fleet name gives an error
// wrapping ErrInvalidTable.
func (c *Client) Routes(ctx context.Context, fleet string) ([]targets.Route, error) {
	path, err := fleetPath(fleet, "routes")
	if err != nil {
		return nil, err
	}
	var routes []targets.Route
	if err := c.call(ctx, http.MethodGet, path, nil, &routes); err != nil {
		return nil, err
	}
	if routes == nil {
		routes = []targets.Route{}
	}
	return routes, nil
}

// SetRoutes replaces every route of fleet with routes, atomically: either
// all of them are in effect afterwards or none, and the routes of other
// fleets never change. An empty list removes the fleet from the router. It
// returns once the routes are in effect (every listen address bound, new
// requests routed by them) and persisted. The router stores each route's
// Meta verbatim and does not interpret it.
//
// If the routes are invalid (see ErrInvalidTable; among them a listen
// address used by another fleet's route or another service's, named in the
// error) the error wraps ErrInvalidTable; if a listen address cannot be
// bound it wraps ErrListen; either way nothing changes. Setting the same
// routes twice is harmless (only the table's version changes).
func (c *Client) SetRoutes(ctx context.Context, fleet string, routes []targets.Route) error {
	path, err := fleetPath(fleet, "routes")
	if err != nil {
		return err
	}
	if routes == nil {
		routes = []targets.Route{}
	}
	return c.call(ctx, http.MethodPut, path, routes, nil)
}

// Fleets returns the fleets that have routes, sorted.
func (c *Client) Fleets(ctx context.Context) ([]string, error) {
	var fleets []string
	if err := c.call(ctx, http.MethodGet, "/fleets", nil, &fleets); err != nil {
		return nil, err
	}
	if fleets == nil {
		fleets = []string{}
	}
	return fleets, nil
}

// fleetPath returns the admin path of one of fleet's resources, or an
// error wrapping ErrInvalidTable if fleet cannot be a fleet's name.
func fleetPath(fleet, resource string) (string, error) {
	if err := checkFleetName(fleet); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidTable, err)
	}
	return "/fleets/" + url.PathEscape(fleet) + "/" + resource, nil
}

// Drain waits until no request is in flight to any of the backend
// addresses, which must already be out of every fleet's routes. It gives
// up when ctx is done or after the router's drain timeout (the error then
// wraps ErrDrainTimeout).
func (c *Client) Drain(ctx context.Context, addrs []string) error {
	return c.call(ctx, http.MethodPost, "/drain", drainRequest{Addrs: addrs}, nil)
}

// Stats returns the counters of fleet's services since the router
// started, by service and generation. Another fleet's service of the same
// name is counted apart. A generation out of the routes with no traffic
// for over an hour is forgotten, its counters too (see Counts for counts
// over a window).
func (c *Client) Stats(ctx context.Context, fleet string) (FleetStats, error) {
	path, err := fleetPath(fleet, "stats")
	if err != nil {
		return FleetStats{}, err
	}
	var s FleetStats
	if err := c.call(ctx, http.MethodGet, path, nil, &s); err != nil {
		return FleetStats{}, err
	}
	if s.Services == nil {
		s.Services = map[string]ServiceStats{}
	}
	return s, nil
}

// Counts returns the counts of fleet's generations, by service and then
// generation (spec hash), of the attempts that started from since, rounded
// down to a slot (SlotWidth), until now; and from, the start of the first
// slot counted. from is later than since when the router does not reach
// that far back: it keeps History (one hour) and nothing from before it
// started. Every generation that the router counts for the fleet is
// listed, with zeros if it had no attempt in the window: those in the
// routes, and those with an attempt in the last hour. Another fleet's
// service of the same name is counted apart. It has no side effect.
func (c *Client) Counts(ctx context.Context, fleet string, since time.Time) (counts map[string]map[string]targets.Counts, from time.Time, err error) {
	path, err := fleetPath(fleet, "counts")
	if err != nil {
		return nil, time.Time{}, err
	}
	path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	var r countsReply
	if err := c.call(ctx, http.MethodGet, path, nil, &r); err != nil {
		return nil, time.Time{}, err
	}
	if r.Services == nil {
		r.Services = map[string]map[string]targets.Counts{}
	}
	return r.Services, r.From, nil
}

// Shutdown asks the router to exit and waits until it has (its listeners
// closed after their in-flight requests, its pid lock released), or ctx is
// done. A router that is not running is not an error.
func (c *Client) Shutdown(ctx context.Context) error {
	err := c.call(ctx, http.MethodPost, "/shutdown", nil, nil)
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	c.hc.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !routerGone(routerDir(c.stateDir)) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for router to exit: %w", ctx.Err())
		}
	}
	return nil
}

// call sends one admin request with a JSON body (if in is not nil) and
// decodes the JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("router %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://router"+path, body)
	if err != nil {
		return fmt.Errorf("router %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("router %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTableBytes))
	if err != nil {
		return fmt.Errorf("router %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorReply
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return fmt.Errorf("router refused: %w", statusError(resp.StatusCode, e.Error))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("router %s %s: %w", method, path, err)
	}
	return nil
}

// statusError turns an admin error back into an error that errors.Is can
// classify.
func statusError(status int, msg string) error {
	switch status {
	case http.StatusBadRequest:
		return rewrap(ErrInvalidTable, msg)
	case http.StatusConflict:
		if strings.HasPrefix(msg, ErrListen.Error()) {
			return rewrap(ErrListen, msg)
		}
	case http.StatusGatewayTimeout:
		return rewrap(ErrDrainTimeout, msg)
	}
	return errors.New(msg)
}

// rewrap returns msg as an error wrapping sentinel, whose text msg may
// already start with.
func rewrap(sentinel error, msg string) error {
	rest, ok := strings.CutPrefix(msg, sentinel.Error())
	if !ok {
		rest = ": " + msg
	}
	return fmt.Errorf("%w%s", sentinel, rest)
}
