package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"time"

	"github.com/molt-dev/molt/targets"
)

// The admin protocol: JSON over HTTP on the unix socket STATE/router/admin.sock.
// FLEET is one path segment, escaped (url.PathEscape): a non-empty name
// without "/", other than "." and "..".
//
//	GET  /ping                 {"pid": N, "version": V}
//	GET  /fleets               the fleets that have routes, sorted: ["alpha", "beta"]
//	GET  /fleets/FLEET/routes  the fleet's routes, sorted by service ([] for none)
//	PUT  /fleets/FLEET/routes  replace the fleet's routes with the body (a JSON
//	                           list of routes; [] or null removes the fleet);
//	                           answers the fleet's routes in effect
//	GET  /fleets/FLEET/stats   the fleet's counters since start (FleetStats)
//	GET  /fleets/FLEET/counts?since=T
//	                           the fleet's counts of the attempts started from T
//	                           (RFC 3339, rounded down to a slot; absent means
//	                           all the history kept) until now (countsReply)
//	POST /drain                {"addrs": [...]}; answers {} once nothing is in flight to them
//	GET  /stats                every fleet's counters since start (Stats)
//	GET  /table                the whole table in effect, for debugging (Table)
//	POST /shutdown             make the router exit
//
// Errors are {"error": "..."} with status 400 (invalid routes or fleet
// name), 409 (a listen address cannot be bound; a drained address still in
// the table), 504 (drain timed out) or 500.

type pingReply struct {
	PID     int   `json:"pid"`
	Version int64 `json:"version"`
	// Protocol is the admin protocol's version (absent, so 0, before
	// routes were scoped by fleet).
	Protocol int `json:"protocol"`
}

// adminProtocol is the version of the admin protocol this router speaks:
// 2 scoped routes by fleet, 3 added /fleets/FLEET/counts.
const adminProtocol = 3

// countsReply is the answer of GET /fleets/FLEET/counts.
type countsReply struct {
	// From is the start of the first slot counted.
	From time.Time `json:"from"`
	// Services holds the counts by service, then generation.
	Services map[string]map[string]targets.Counts `json:"services"`
}

type drainRequest struct {
	Addrs []string `json:"addrs"`
}

type errorReply struct {
	Error string `json:"error"`
}

// maxTableBytes caps the size of a fleet's routes sent to the router, and
// of an answer read by the client.
const maxTableBytes = 16 << 20

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, pingReply{PID: os.Getpid(), Version: s.current.Load().table.Version, Protocol: adminProtocol})
	})
	mux.HandleFunc("GET /table", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.current.Load().table)
	})
	mux.HandleFunc("GET /fleets", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.current.Load().table.fleetNames())
	})
	mux.HandleFunc("GET /fleets/{fleet}/routes", func(w http.ResponseWriter, r *http.Request) {
		fleet, ok := pathFleet(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, fleetRoutes(s.current.Load().table, fleet))
	})
	mux.HandleFunc("PUT /fleets/{fleet}/routes", func(w http.ResponseWriter, r *http.Request) {
		fleet, ok := pathFleet(w, r)
		if !ok {
			return
		}
		var routes []targets.Route
		if err := decodeBody(w, r, maxTableBytes, &routes); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %w", ErrInvalidTable, err))
			return
		}
		inEffect, err := s.setRoutes(fleet, routes)
		switch {
		case errors.Is(err, ErrInvalidTable):
			writeError(w, http.StatusBadRequest, err)
		case errors.Is(err, ErrListen):
			writeError(w, http.StatusConflict, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, http.StatusOK, inEffect)
		}
	})
	mux.HandleFunc("GET /fleets/{fleet}/stats", func(w http.ResponseWriter, r *http.Request) {
		fleet, ok := pathFleet(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, s.stats.fleet(fleet))
	})
	mux.HandleFunc("GET /fleets/{fleet}/counts", func(w http.ResponseWriter, r *http.Request) {
		fleet, ok := pathFleet(w, r)
		if !ok {
			return
		}
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("since: %w", err))
				return
			}
			since = t
		}
		counts, from := s.stats.counts(fleet, since)
		writeJSON(w, http.StatusOK, countsReply{From: from, Services: counts})
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		var d drainRequest
		if err := decodeBody(w, r, 1<<20, &d); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		err := s.drain(r.Context(), d.Addrs)
		switch {
		case errors.Is(err, ErrDrainTimeout):
			writeError(w, http.StatusGatewayTimeout, err)
		case err != nil:
			writeError(w, http.StatusConflict, err)
		default:
			writeJSON(w, http.StatusOK, struct{}{})
		}
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.stats.snapshot())
	})
	mux.HandleFunc("POST /shutdown", func(w http.ResponseWriter, r *http.Request) {
		s.log.Info("shutdown requested")
		writeJSON(w, http.StatusOK, struct{}{})
		s.requestStop()
	})
	return cleanPaths(mux)
}

// cleanPaths refuses a request whose path is not in its clean form (a
// doubled slash, a "." or ".." element) with a JSON error, where
// net/http's mux would answer with a redirect to the clean path: an
// HTML 307 that a client of this API does not follow, and that says
// nothing about what was wrong. molt's own client never sends such a
// path. Found by FuzzAdmin.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && cleanPath(p) != p {
			writeError(w, http.StatusBadRequest, fmt.Errorf("admin path %q is not in its clean form %q", p, cleanPath(p)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is p as net/http's mux cleans it: rooted, no "." or ".."
// elements, no doubled slashes, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c
}

// pathFleet returns the request's fleet name, or answers 400 and false if
// it is not one.
func pathFleet(w http.ResponseWriter, r *http.Request) (string, bool) {
	fleet := r.PathValue("fleet")
	if err := checkFleetName(fleet); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %w", ErrInvalidTable, err))
		return "", false
	}
	return fleet, true
}

// decodeBody reads the request's body, at most max bytes, as exactly one
// JSON value into v: anything after the value (a second value, garbage)
// makes it invalid rather than silently ignored.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorReply{Error: err.Error()})
}
