package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// credentials give the Client the token of each request: a fixed token,
// a token file re-read when it changes, or a GitHub App's installation
// token (see ClientOptions).
type credentials interface {
	// token returns the token to send now; ctx bounds what it sends to
	// get one.
	token(ctx context.Context) (string, error)
	// refused is told that GitHub answered 401 to tok. It reports
	// whether the next token may be another one, worth sending the
	// request again with.
	refused(tok string) bool
}

// authTransport is the http.RoundTripper under go-github that
// authenticates each request ("Authorization: Bearer <token>"), only to
// the API's own scheme and host, and sends a request once more, with a
// fresh token, after a 401.
type authTransport struct {
	base   http.RoundTripper
	creds  credentials
	origin *url.URL
	log    *slog.Logger
}

var _ http.RoundTripper = (*authTransport)(nil)

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !sameOrigin(req.URL, t.origin) {
		closeBody(req)
		return nil, fmt.Errorf("github: not sending credentials to %s://%s, which is not the API's %s://%s",
			req.URL.Scheme, req.URL.Host, t.origin.Scheme, t.origin.Host)
	}
	tok, err := t.creds.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.send(req, req.Body, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // cannot be sent again
	}
	if !t.creds.refused(tok) {
		return resp, nil
	}
	fresh, err := t.creds.token(req.Context())
	if err != nil {
		t.log.Warn("github answered 401 and no fresh token could be had", "path", req.URL.Path, "err", err)
		return resp, nil
	}
	if fresh == tok {
		return resp, nil
	}
	var body io.ReadCloser
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	t.log.Info("github answered 401: sending again with a fresh token", "method", req.Method, "path", req.URL.Path)
	return t.send(req, body, fresh)
}

// send sends a copy of req with body and the token; RoundTrip must not
// change the request it is given.
func (t *authTransport) send(req *http.Request, body io.ReadCloser, tok string) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(r)
}

// parseToken reads a token as a file or the environment holds it:
// surrounding white space is ignored, none may be inside.
func parseToken(b []byte) (string, error) {
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 {
		return "", errors.New("token is empty")
	}
	if bytes.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("token has white space inside")
	}
	return string(tok), nil
}

// staticToken is a token given once.
type staticToken string

func (s staticToken) token(context.Context) (string, error) { return string(s), nil }
func (s staticToken) refused(string) bool                   { return false }

// TokenFileCheckInterval is how often, at most, the Client looks whether
// its token file changed (besides after every 401).
const TokenFileCheckInterval = 5 * time.Second

// tokenFile is a token kept in a file and rotated in place (by a secret
// manager, a sidecar, a person): the file is looked at again at most
// every TokenFileCheckInterval, re-read when its size or modification
// time changed, and re-read at once after a 401. A file that cannot be
// read, or holds no token, keeps the last token in use (and says so,
// once per cause).
type tokenFile struct {
	path  string
	clock Clock
	log   *slog.Logger

	mu      sync.Mutex
	tok     string
	mod     time.Time
	size    int64
	checked time.Time
	lastErr string
}

// newTokenFile reads the token file; it fails when there is no token in
// it.
func newTokenFile(path string, clock Clock, log *slog.Logger) (*tokenFile, error) {
	f := &tokenFile{path: path, clock: clock, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if f.tok, err = parseToken(b); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	f.mod, f.size, f.checked = fi.ModTime(), fi.Size(), clock.Now()
	return f, nil
}

func (f *tokenFile) token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clock.Now().Sub(f.checked) >= TokenFileCheckInterval {
		f.reload(false)
	}
	return f.tok, nil
}

func (f *tokenFile) refused(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload(true)
	return f.tok != tok
}

// reload looks at the file and reads it when it changed (or when
// forced); f.mu is held.
func (f *tokenFile) reload(force bool) {
	f.checked = f.clock.Now()
	fi, err := os.Stat(f.path)
	if err == nil && !force && fi.ModTime().Equal(f.mod) && fi.Size() == f.size {
		return
	}
	var tok string
	if err == nil {
		var b []byte
		if b, err = os.ReadFile(f.path); err == nil {
			tok, err = parseToken(b)
		}
	}
	if err != nil {
		if msg := err.Error(); msg != f.lastErr {
			f.lastErr = msg
			f.log.Warn("github token file cannot be read: the last token read stays in use", "file", f.path, "err", err)
		}
		return
	}
	f.lastErr = ""
	f.mod, f.size = fi.ModTime(), fi.Size()
	if tok != f.tok {
		f.tok = tok
		f.log.Info("github token file changed: its new token is in use", "file", f.path)
	}
}
