package github

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// ClientOptions configures a Client. Owner, Repo and exactly one of
// Token, TokenFile and App are required.
type ClientOptions struct {
	// Token is a GitHub token (fine-grained, classic or an app's
	// installation token) allowed to write issue comments, commit
	// statuses, and, for revert pull requests, contents and pull
	// requests (see Permission). Read it from a file or the environment,
	// never a flag. Surrounding white space (a file's newline) is
	// ignored.
	Token []byte

	// TokenFile is a file holding the token instead. NewClient reads it;
	// afterwards it is looked at again at most every
	// TokenFileCheckInterval and after every 401, and re-read when it
	// changed, so that a token rotated in place is used without a
	// restart.
	TokenFile string

	// App authenticates as an installation of a GitHub App instead (see
	// AppAuth): installation tokens are exchanged and renewed as needed.
	App *AppAuth

	// APIURL is the REST API root: "" for GitHub.com
	// (https://api.github.com/); for GitHub Enterprise Server, e.g.
	// https://ghe.example.com/api/v3/. It must be https unless its host
	// is a loopback address (see ValidateAPIURL): credentials are sent
	// to it only, never to another host a response points at.
	APIURL string

	// Owner and Repo name the repository reported to (see ParseRepoURL).
	Owner, Repo string

	// HTTPClient makes the requests; nil means one with a one-minute
	// timeout. It is copied, not changed.
	HTTPClient *http.Client

	// Logger receives rate-limit waits and what was written; never the
	// token. Nil discards them.
	Logger *slog.Logger

	// Clock paces writes, times rate limits and the expiry of
	// installation tokens; nil is the real clock.
	Clock Clock

	// MinWriteInterval is the least time between two writes (POST,
	// PATCH, PUT, DELETE). Zero means DefaultMinWriteInterval.
	MinWriteInterval time.Duration
}

// Validate checks the options. It reads nothing (a TokenFile is read by
// NewClient).
func (o ClientOptions) Validate() error {
	given := 0
	for _, set := range []bool{o.Token != nil, o.TokenFile != "", o.App != nil} {
		if set {
			given++
		}
	}
	switch {
	case given == 0, o.Token != nil && given == 1 && len(bytes.TrimSpace(o.Token)) == 0:
		return errors.New("github client: token is required (a token, a token file or a GitHub App)")
	case given > 1:
		return errors.New("github client: give one of a token, a token file and a GitHub App")
	}
	if o.Token != nil {
		if _, err := parseToken(o.Token); err != nil {
			return fmt.Errorf("github client: %w", err)
		}
	}
	if o.App != nil {
		if err := o.App.Validate(); err != nil {
			return fmt.Errorf("github client: %w", err)
		}
	}
	if !validName(o.Owner) || !validName(o.Repo) {
		return fmt.Errorf("github client: repository %q/%q is not owner/name", o.Owner, o.Repo)
	}
	if err := ValidateAPIURL(o.APIURL); err != nil {
		return fmt.Errorf("github client: %w", err)
	}
	if o.MinWriteInterval < 0 {
		return errors.New("github client: min write interval is negative")
	}
	return nil
}

// userAgent is the User-Agent of every request.
const userAgent = "molt (+https://github.com/molt-dev/molt)"

// Client reports to one repository on GitHub through go-github: plan
// comments on pull requests, commit statuses, outcome comments and revert
// pull requests. Every write is paced (see MinWriteInterval) and GitHub's
// rate limits are obeyed: a request that meets one fails with a
// *LimitedError instead of waiting, and so does every request until the
// limit lifts. A request answered 401 is sent once more with a fresh
// token when one can be had (a token file that changed, a new
// installation token). Safe for concurrent use.
type Client struct {
	gh      *gh.Client
	repo    RepoRef
	log     *slog.Logger
	limit   *limiter
	refused refusals
}

var _ Reporter = (*Client)(nil)

// NewClient checks the options and returns a Client. It reads a
// TokenFile, and sends nothing.
func NewClient(opts ClientOptions) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	base, _ := apiBase(opts.APIURL)
	web, _ := webURL(opts.APIURL)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("github", opts.Owner+"/"+opts.Repo)
	clock := clockOr(opts.Clock)
	hc := &http.Client{Timeout: time.Minute}
	if opts.HTTPClient != nil {
		copied := *opts.HTTPClient
		hc = &copied
	}
	transport := hc.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	var creds credentials
	switch {
	case opts.App != nil:
		creds = newAppSource(*opts.App, opts.Owner, opts.Repo, base, transport, hc.Timeout, clock, log)
	case opts.TokenFile != "":
		f, err := newTokenFile(opts.TokenFile, clock, log)
		if err != nil {
			return nil, fmt.Errorf("github client: %w", err)
		}
		creds = f
	default:
		tok, _ := parseToken(opts.Token)
		creds = staticToken(tok)
	}
	interval := opts.MinWriteInterval
	if interval == 0 {
		interval = DefaultMinWriteInterval
	}
	lim := &limiter{base: transport, clock: clock, interval: interval, log: log}
	hc.Transport = &authTransport{base: lim, creds: creds, origin: base, log: log}
	c := gh.NewClient(hc)
	c.BaseURL = base
	c.UserAgent = userAgent
	return &Client{
		gh:    c,
		repo:  RepoRef{Owner: opts.Owner, Name: opts.Repo, WebURL: web},
		log:   log,
		limit: lim,
	}, nil
}

// Refusals counts the reports GitHub refused for their credentials, by
// the permission they need and GitHub's answer (401, 403, 404): every
// combination, in a stable order, zeros included (see RefusedError).
func (c *Client) Refusals() []Refusal { return c.refused.snapshot() }

// Repo returns the repository reported to, with its web root.
func (c *Client) Repo() RepoRef { return c.repo }
