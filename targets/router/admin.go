package router

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
)

// The admin protocol: JSON over HTTP on the unix socket STATE/router/admin.sock.
//
//	GET  /ping      {"pid": N, "version": V}
//	GET  /table     the table in effect
//	PUT  /table     apply a table; answers the table in effect (with its version)
//	POST /drain     {"addrs": [...]}; answers once nothing is in flight to them
//	GET  /stats     counters since start
//	POST /shutdown  make the router exit
//
// Errors are {"error": "..."} with status 400 (invalid table), 409 (a
// listen address cannot be bound; a drained address still in the table),
// 504 (drain timed out) or 500.

type pingReply struct {
	PID     int   `json:"pid"`
	Version int64 `json:"version"`
}

type drainRequest struct {
	Addrs []string `json:"addrs"`
}

type errorReply struct {
	Error string `json:"error"`
}

// maxTableBytes caps the size of an applied table.
const maxTableBytes = 16 << 20

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, pingReply{PID: os.Getpid(), Version: s.current.Load().table.Version})
	})
	mux.HandleFunc("GET /table", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.current.Load().table)
	})
	mux.HandleFunc("PUT /table", func(w http.ResponseWriter, r *http.Request) {
		var t Table
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTableBytes)).Decode(&t); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		applied, err := s.apply(t)
		switch {
		case errors.Is(err, ErrInvalidTable):
			writeError(w, http.StatusBadRequest, err)
		case errors.Is(err, ErrListen):
			writeError(w, http.StatusConflict, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, http.StatusOK, applied)
		}
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		var d drainRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&d); err != nil {
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
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.stats.snapshot())
	})
	mux.HandleFunc("POST /shutdown", func(w http.ResponseWriter, r *http.Request) {
		s.log.Info("shutdown requested")
		writeJSON(w, http.StatusOK, struct{}{})
		s.requestStop()
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorReply{Error: err.Error()})
}
