package githubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures a Server. The zero value works.
type Options struct {
	// Owner and Repo name the one repository served; requests for
	// another answer 404. Defaults: "octo-org" and "fleet".
	Owner, Repo string
	// Token is the token accepted ("Authorization: Bearer <t>" or
	// "token <t>"), besides the installation tokens of App. Default
	// "test-token".
	Token string
	// TokenUser is the login of the token's owner: the author of what it
	// creates. Default "molt-bot".
	TokenUser string
	// Now is the server's clock, for timestamps, recorded request times
	// and rate-limit resets. Nil means time.Now. Share the clock of the
	// client under test to keep both on one (fake) time line.
	Now func() time.Time
	// WebURL is the base of html_url fields. Default: the server's URL,
	// which is what a client derives from an API URL that is neither
	// GitHub.com's nor GitHub Enterprise Server's.
	WebURL string
	// App, when set, makes the server also a GitHub App installed on the
	// repository: it answers the app's endpoints for a JWT signed with
	// the app's key, and accepts the installation tokens it issues (see
	// App). Token is still accepted.
	App *App
}

// Server is an in-process GitHub REST API. Its methods are safe for
// concurrent use with the requests it serves.
type Server struct {
	// URL is the API root with a trailing slash, for go-github's
	// BaseURL. The same API also answers under URL+"api/v3/", as GitHub
	// Enterprise Server does.
	URL string

	hs        *httptest.Server
	owner     string
	repo      string
	token     string
	tokenUser string
	clock     func() time.Time
	web       string
	api       string // URL, for the url fields of answers
	mux       *http.ServeMux
	app       *App

	mu             sync.Mutex
	seq            int64
	number         int
	comments       map[int][]*Comment
	statuses       map[string][]Status
	pulls          []*Pull
	refs           map[string]string // "heads/main" → sha
	commits        map[string]*Commit
	trees          map[string]bool
	requests       []Request
	faults         []injected
	exhaustedUntil time.Time
	used           int
	installTokens  map[string]time.Time // issued installation token → its expiry
}

// rateLimit is the primary limit the server advertises per hour.
const rateLimit = 5000

// Start starts a Server on 127.0.0.1 and closes it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := newServer(opts)
	s.hs = httptest.NewServer(s)
	s.URL = s.hs.URL + "/"
	s.api = s.URL
	if s.web == "" {
		s.web = s.URL
	}
	tb.Cleanup(s.Close)
	return s
}

func newServer(opts Options) *Server {
	s := &Server{
		owner: opts.Owner, repo: opts.Repo, token: opts.Token, tokenUser: opts.TokenUser,
		clock: opts.Now, web: opts.WebURL,
		comments: map[int][]*Comment{},
		statuses: map[string][]Status{},
		refs:     map[string]string{},
		commits:  map[string]*Commit{},
		trees:    map[string]bool{},

		installTokens: map[string]time.Time{},
	}
	if s.owner == "" {
		s.owner = "octo-org"
	}
	if s.repo == "" {
		s.repo = "fleet"
	}
	if s.token == "" {
		s.token = "test-token"
	}
	if s.tokenUser == "" {
		s.tokenUser = "molt-bot"
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.web != "" && !strings.HasSuffix(s.web, "/") {
		s.web += "/"
	}
	if opts.App != nil {
		app := *opts.App
		if app.InstallationID == 0 {
			app.InstallationID = 1
		}
		if app.Slug == "" {
			app.Slug = "molt"
		}
		if app.TokenTTL == 0 {
			app.TokenTTL = time.Hour
		}
		s.app = &app
	}
	s.mux = s.routes()
	return s
}

// Close shuts the server down, abandoning requests in flight.
func (s *Server) Close() {
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// Owner and Repo name the repository served.
func (s *Server) Owner() string { return s.owner }

// Repo is the name of the repository served.
func (s *Server) Repo() string { return s.repo }

// Token is the token the server accepts.
func (s *Server) Token() string { return s.token }

func (s *Server) now() time.Time { return s.clock() }

// ServeHTTP answers one request: it records it, checks the credentials,
// applies an injected fault or the exhausted rate limit if any, then
// routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api/v3")
	s.mu.Lock()
	i := len(s.requests)
	s.requests = append(s.requests, Request{Time: s.now(), Method: r.Method, Path: path, Query: r.URL.RawQuery})
	s.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w}
	cred := s.serve(rec, r, path)
	s.mu.Lock()
	s.requests[i].Status = rec.status
	s.requests[i].Credential = cred
	s.mu.Unlock()
}

// serve answers a request; it returns the kind of credential that was
// accepted ("" when none was).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, path string) string {
	h := w.Header()
	h.Set("X-GitHub-Request-Id", fmt.Sprintf("C0DE:%X:%X", s.now().Unix(), len(path)))
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	header := r.Header.Get("Authorization")
	var who identity
	var refusal *errorJSON
	if s.app != nil && appEndpoint(r.Method, path) {
		who, refusal = s.authorizeJWT(header)
	} else {
		who, refusal = s.authorized(header)
	}
	if refusal != nil {
		writeError(w, http.StatusUnauthorized, *refusal)
		return ""
	}
	if who.credential == CredentialInstallation {
		if need, ok := s.permissionFor(r.Method, path); !ok {
			writeError(w, http.StatusForbidden, errorJSON{Message: "Resource not accessible by integration", DocumentationURL: docs + need})
			return who.credential
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), identityKey{}, who))
	s.answer(w, r, path)
	return who.credential
}

// answer serves an authenticated request.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, path string) {
	h := w.Header()
	s.mu.Lock()
	now := s.now()
	fault, faulty := s.takeFault(r.Method, path)
	exhausted := now.Before(s.exhaustedUntil)
	reset := s.exhaustedUntil
	s.used++
	used := s.used
	s.mu.Unlock()

	if faulty && fault.Delay > 0 {
		// Read the body first: only then does net/http notice a client
		// that gives up, and cancel r.Context().
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if exhausted {
		setRate(h, 0, reset, rateLimit)
		writeError(w, http.StatusForbidden, errorJSON{
			Message:          "API rate limit exceeded for user ID 1000001. If you reach out to GitHub Support for help, please include the request ID C0DE:1.",
			DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit",
		})
		return
	}
	setRate(h, max(rateLimit-used, 1), now.Add(time.Hour), used)
	if !faulty || fault.Status == 0 {
		s.route(w, r, path)
		return
	}
	if fault.Late {
		s.route(httptest.NewRecorder(), r, path)
	}
	if fault.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((fault.RetryAfter+time.Second-1)/time.Second)))
	}
	switch {
	case fault.Secondary:
		writeError(w, fault.Status, errorJSON{
			Message:          "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID C0DE:2.",
			DocumentationURL: "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
		})
	default:
		writeError(w, fault.Status, errorJSON{Message: http.StatusText(fault.Status), DocumentationURL: "https://docs.github.com/rest"})
	}
}

// Kinds of credentials a Request was made with (Request.Credential).
const (
	CredentialToken        = "token"        // Options.Token
	CredentialInstallation = "installation" // an installation token the App issued
	CredentialJWT          = "jwt"          // the App's JWT, on the app's endpoints
)

// identity is who a request was accepted as: the kind of credential, and
// the login that what it creates is authored by.
type identity struct {
	credential string
	login      string
}

type identityKey struct{}

// author is the login of the request's credentials.
func (s *Server) author(r *http.Request) string {
	if who, ok := r.Context().Value(identityKey{}).(identity); ok && who.login != "" {
		return who.login
	}
	return s.tokenUser
}

// bearer reads "Bearer <t>" or "token <t>".
func bearer(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || (!strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token")) {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authorized checks the Authorization header of a repository endpoint;
// on refusal it gives GitHub's answer.
func (s *Server) authorized(header string) (identity, *errorJSON) {
	if header == "" {
		return identity{}, &errorJSON{Message: "Requires authentication", DocumentationURL: docs}
	}
	tok, ok := bearer(header)
	if ok && tok == s.token {
		return identity{credential: CredentialToken, login: s.tokenUser}, nil
	}
	if ok && s.app != nil {
		s.mu.Lock()
		expires, issued := s.installTokens[tok]
		live := issued && s.now().Before(expires)
		s.mu.Unlock()
		if live {
			return identity{credential: CredentialInstallation, login: s.app.Slug + "[bot]"}, nil
		}
	}
	return identity{}, &errorJSON{Message: "Bad credentials", DocumentationURL: docs}
}

func setRate(h http.Header, remaining int, reset time.Time, used int) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(rateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Used", strconv.Itoa(used))
	h.Set("X-RateLimit-Resource", "core")
}

// writeJSON answers with v as GitHub formats it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, e errorJSON) {
	e.Status = strconv.Itoa(status)
	writeJSON(w, status, e)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
