package gittest

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Request is one HTTP request that a [Server] answered.
type Request struct {
	Method string // "GET" or "POST"
	Path   string // e.g. "/fleet.git/info/refs" or "/fleet.git/git-upload-pack"
	Query  string // raw query, e.g. "service=git-upload-pack"
	Status int    // the status code the backend answered with
}

// Server serves the bare repositories under a root directory over smart
// HTTP with the real git http-backend, on 127.0.0.1, and records every
// request it answers. It is safe for concurrent use.
type Server struct {
	// URL is the base URL, without a trailing slash; the repository at
	// root/name is at URL + "/" + name.
	URL string

	srv *httptest.Server
	mu  sync.Mutex
	log []Request
}

// ServeHTTP starts a Server for the bare repositories under root (read
// only: pushes are refused) and closes it when the test ends.
func ServeHTTP(t testing.TB, root string) *Server {
	t.Helper()
	backend := &cgi.Handler{
		Path: filepath.Join(ExecPath(t), "git-http-backend"),
		Env: append(Env(),
			"GIT_PROJECT_ROOT="+root,
			"GIT_HTTP_EXPORT_ALL=1",
		),
		Stderr: logWriter{t},
	}
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		backend.ServeHTTP(rec, req)
		s.mu.Lock()
		s.log = append(s.log, Request{
			Method: req.Method,
			Path:   req.URL.Path,
			Query:  req.URL.RawQuery,
			Status: rec.status,
		})
		s.mu.Unlock()
	}))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// RepoURL returns the URL of the repository at root/name.
func (s *Server) RepoURL(name string) string {
	return s.URL + "/" + strings.TrimPrefix(name, "/")
}

// Requests returns the requests answered so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Count returns how many requests with method ("" for any) and a path
// ending in pathSuffix were answered so far. Count("GET", "/info/refs")
// counts ref advertisements; Count("POST", "/git-upload-pack") counts
// pack negotiations (object downloads).
func (s *Server) Count(method, pathSuffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.log {
		if (method == "" || r.Method == method) && strings.HasSuffix(r.Path, pathSuffix) {
			n++
		}
	}
	return n
}

// Reset forgets the requests recorded so far.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// Close stops the server, so that its URL refuses connections; it is also
// done when the test ends. Closing twice is harmless.
func (s *Server) Close() { s.srv.Close() }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush lets the backend stream a pack.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// logWriter sends git http-backend's complaints to the test log. The
// server is closed (waiting for its handlers) before the test ends, so
// nothing is logged after it.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("git http-backend: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}
