package github

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// AppAuth authenticates the Client as an installation of a GitHub App:
// it signs a JSON Web Token with the app's private key, exchanges it for
// an installation token (POST /app/installations/{id}/access_tokens,
// restricted to the Client's repository), and sends that token. The
// installation token is exchanged again five minutes before it expires
// (GitHub's last an hour), and once after a 401, after which the
// request is sent again.
type AppAuth struct {
	// ID is the app's id ("App ID" on its settings page): the issuer of
	// its JWTs.
	ID int64
	// Key is one of the app's private keys (see ParseAppKey).
	Key *rsa.PrivateKey
	// InstallationID is the app's installation that covers the
	// repository; zero finds it with GET /repos/{owner}/{repo}/installation
	// at the first exchange.
	InstallationID int64
}

// Validate checks the options.
func (a AppAuth) Validate() error {
	switch {
	case a.ID <= 0:
		return errors.New("github app: the app id is required (a positive number)")
	case a.Key == nil:
		return errors.New("github app: the private key is required")
	case a.InstallationID < 0:
		return errors.New("github app: the installation id is negative")
	}
	return nil
}

// ParseAppKey reads a GitHub App's private key: an RSA key in PEM, as
// PKCS#1 ("RSA PRIVATE KEY", what GitHub's "Generate a private key"
// downloads) or PKCS#8 ("PRIVATE KEY"). Errors never quote the key.
func ParseAppKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("github app key: not PEM (want -----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)")
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		return nil, errors.New("github app key: the PEM block is encrypted; give the key without a passphrase")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("github app key: PKCS#1: %w", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("github app key: PKCS#8: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("github app key: a %T, not an RSA key (GitHub Apps sign with RS256)", k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("github app key: a PEM %q block, want RSA PRIVATE KEY or PRIVATE KEY", block.Type)
}

// JWT timing: GitHub refuses a JWT that expires more than ten minutes
// after it is received, and one issued in its future; issuing it a
// minute in the past allows for a clock that is a little ahead.
const (
	jwtBackdate = 60 * time.Second
	jwtLifetime = 9 * time.Minute
)

// signJWT returns the app's JSON Web Token at now: RS256, iat a minute
// before now, exp nine minutes after, iss the app id.
func signJWT(appID int64, key *rsa.PrivateKey, now time.Time) (string, error) {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, err := json.Marshal(struct {
		IAT int64  `json:"iat"`
		EXP int64  `json:"exp"`
		ISS string `json:"iss"`
	}{now.Add(-jwtBackdate).Unix(), now.Add(jwtLifetime).Unix(), strconv.FormatInt(appID, 10)})
	if err != nil {
		return "", err
	}
	signed := header + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("github app: sign the JWT: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// AppError is an installation token that could not be had: GitHub
// refused the app's JWT, the app is not installed on the repository, or
// GitHub could not be reached. GitHub's answer is not unwrapped (it is
// not the answer to the call the token was for); a network error is.
// Permanent holds for a 4xx other than 408 and 429.
type AppError struct {
	AppID        int64
	Installation int64  // 0 when it was being looked for
	Op           string // what was done: "find the installation of o/r", "exchange the JWT for an installation token"
	Status       int    // GitHub's answer; 0 when there was none
	Message      string // GitHub's message
	err          error
}

func (e *AppError) Error() string {
	pre := fmt.Sprintf("github app %d: %s", e.AppID, e.Op)
	if e.Status == 0 {
		return fmt.Sprintf("%s: %v", pre, e.err)
	}
	msg := fmt.Sprintf("%s: GitHub answered %d (%s)", pre, e.Status, e.Message)
	switch {
	case e.Status == http.StatusUnauthorized:
		return msg + fmt.Sprintf(": the JWT was not accepted: is the key one of app %d's private keys (not revoked), is %d the app's id, and is this machine's clock right?", e.AppID, e.AppID)
	case e.Status == http.StatusNotFound && e.Installation == 0:
		return msg + ": the app is not installed on the repository (install it there, or give the installation id)"
	case e.Status == http.StatusNotFound:
		return msg + fmt.Sprintf(": installation %d is not one of app %d's", e.Installation, e.AppID)
	case e.Status == http.StatusUnprocessableEntity:
		return msg + ": the installation does not cover the repository (add it to the installation's repositories)"
	case e.Status == http.StatusForbidden:
		return msg + ": the installation may be suspended"
	}
	return msg
}

func (e *AppError) Unwrap() error { return e.err }

// permanent reports whether the same exchange would be refused again.
func (e *AppError) permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// appRetryAfter is how long a refused exchange is not tried again: every
// report would try it, and the answer will not change by itself soon.
const appRetryAfter = time.Minute

// appSource is the installation token of an AppAuth.
type appSource struct {
	auth        AppAuth
	owner, repo string
	api         *url.URL
	base        http.RoundTripper
	timeout     time.Duration
	clock       Clock
	log         *slog.Logger
	sem         chan struct{} // one exchange at a time

	mu           sync.Mutex
	installation int64
	tok          string
	expires      time.Time
	refreshAt    time.Time
	failed       *AppError // the last exchange's refusal, not tried again before failedUntil
	failedUntil  time.Time
}

// refreshBefore is how long before its expiry an installation token is
// exchanged again (at most half its lifetime).
const refreshBefore = 5 * time.Minute

func newAppSource(a AppAuth, owner, repo string, api *url.URL, base http.RoundTripper, timeout time.Duration, clock Clock, log *slog.Logger) *appSource {
	return &appSource{auth: a, owner: owner, repo: repo, api: api, base: base, timeout: timeout, clock: clock,
		log: log.With("github_app", a.ID), sem: make(chan struct{}, 1), installation: a.InstallationID}
}

func (s *appSource) cached() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok, s.tok != "" && s.clock.Now().Before(s.refreshAt)
}

func (s *appSource) token(ctx context.Context) (string, error) {
	if tok, ok := s.cached(); ok {
		return tok, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.sem }()
	if tok, ok := s.cached(); ok {
		return tok, nil // another caller exchanged it meanwhile
	}
	s.mu.Lock()
	now := s.clock.Now()
	if s.failed != nil && now.Before(s.failedUntil) {
		err := s.failed
		s.mu.Unlock()
		return "", err
	}
	s.mu.Unlock()

	tok, expires, err := s.exchange(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		var ae *AppError
		if errors.As(err, &ae) && ae.permanent() {
			s.failed, s.failedUntil = ae, now.Add(appRetryAfter)
		}
		if s.tok != "" && now.Before(s.expires) {
			s.log.Warn("github app installation token not renewed: the current one stays in use until it expires",
				"expires", s.expires, "err", err)
			return s.tok, nil
		}
		return "", err
	}
	s.failed = nil
	s.tok, s.expires = tok, expires
	s.refreshAt = expires.Add(-min(refreshBefore, expires.Sub(now)/2))
	s.log.Info("github app installation token obtained", "installation", s.installation, "expires", expires)
	return tok, nil
}

func (s *appSource) refused(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.tok {
		s.tok = "" // the next token call exchanges the JWT again
		s.log.Info("github refused the installation token: exchanging the JWT for a fresh one")
	}
	return true
}

// exchange signs a JWT, finds the installation when it is not known, and
// exchanges the JWT for an installation token of the repository.
func (s *appSource) exchange(ctx context.Context) (string, time.Time, error) {
	jwt, err := signJWT(s.auth.ID, s.auth.Key, s.clock.Now())
	if err != nil {
		return "", time.Time{}, err
	}
	c := gh.NewClient(&http.Client{Timeout: s.timeout, Transport: &authTransport{
		base: s.base, creds: staticToken(jwt), origin: s.api, log: s.log,
	}})
	c.BaseURL = s.api
	c.UserAgent = userAgent

	s.mu.Lock()
	id := s.installation
	s.mu.Unlock()
	if id == 0 {
		inst, _, err := c.Apps.FindRepositoryInstallation(ctx, s.owner, s.repo)
		if err != nil {
			return "", time.Time{}, s.fail(err, 0, "find the installation on "+s.owner+"/"+s.repo)
		}
		id = inst.GetID()
		s.mu.Lock()
		s.installation = id
		s.mu.Unlock()
		s.log.Info("github app installation found", "installation", id, "repo", s.owner+"/"+s.repo)
	}
	it, _, err := c.Apps.CreateInstallationToken(ctx, id, &gh.InstallationTokenOptions{Repositories: []string{s.repo}})
	if err != nil {
		return "", time.Time{}, s.fail(err, id, fmt.Sprintf("exchange the JWT for a token of installation %d", id))
	}
	if it.GetToken() == "" {
		return "", time.Time{}, &AppError{AppID: s.auth.ID, Installation: id, Op: "exchange the JWT", err: errors.New("GitHub answered no token")}
	}
	expires := it.GetExpiresAt().Time
	if expires.IsZero() {
		expires = s.clock.Now().Add(time.Hour)
	}
	return it.GetToken(), expires, nil
}

// fail makes an *AppError of an exchange's error.
func (s *appSource) fail(err error, installation int64, op string) error {
	ae := &AppError{AppID: s.auth.ID, Installation: installation, Op: op}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		ae.Status, ae.Message = er.Response.StatusCode, er.Message
		return ae
	}
	ae.err = err
	return ae
}
