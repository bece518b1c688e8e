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

// ClientOptions configures a Client. Token, Owner and Repo are required.
type ClientOptions struct {
	// Token is a GitHub token (fine-grained, classic or an app's
	// installation token) allowed to write issue comments, commit
	// statuses, and, for revert pull requests, contents and pull
	// requests. Read it from a file or the environment, never a flag.
	// Surrounding white space (a file's newline) is ignored.
	Token []byte

	// APIURL is the REST API root: "" for GitHub.com
	// (https://api.github.com/); for GitHub Enterprise Server, e.g.
	// https://ghe.example.com/api/v3/.
	APIURL string

	// Owner and Repo name the repository reported to (see ParseRepoURL).
	Owner, Repo string

	// HTTPClient makes the requests; nil means one with a one-minute
	// timeout. It is copied, not changed.
	HTTPClient *http.Client

	// Logger receives rate-limit waits and what was written; never the
	// token. Nil discards them.
	Logger *slog.Logger

	// Clock paces writes and times rate limits; nil is the real clock.
	Clock Clock

	// MinWriteInterval is the least time between two writes (POST,
	// PATCH, PUT, DELETE). Zero means DefaultMinWriteInterval.
	MinWriteInterval time.Duration
}

// Validate checks the options.
func (o ClientOptions) Validate() error {
	tok := bytes.TrimSpace(o.Token)
	if len(tok) == 0 {
		return errors.New("github client: token is required")
	}
	if bytes.ContainsAny(tok, " \t\r\n") {
		return errors.New("github client: token has white space inside")
	}
	if !validName(o.Owner) || !validName(o.Repo) {
		return fmt.Errorf("github client: repository %q/%q is not owner/name", o.Owner, o.Repo)
	}
	if _, err := apiBase(o.APIURL); err != nil {
		return fmt.Errorf("github client: %w", err)
	}
	if o.MinWriteInterval < 0 {
		return errors.New("github client: min write interval is negative")
	}
	return nil
}

// Client reports to one repository on GitHub through go-github: plan
// comments on pull requests, commit statuses, outcome comments and revert
// pull requests. Every write is paced (see MinWriteInterval) and GitHub's
// rate limits are obeyed: a request that meets one fails with a
// *LimitedError instead of waiting, and so does every request until the
// limit lifts. Safe for concurrent use.
type Client struct {
	gh    *gh.Client
	repo  RepoRef
	log   *slog.Logger
	limit *limiter
}

var _ Reporter = (*Client)(nil)

// NewClient checks the options and returns a Client. It sends nothing.
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
	hc := &http.Client{Timeout: time.Minute}
	if opts.HTTPClient != nil {
		copied := *opts.HTTPClient
		hc = &copied
	}
	transport := hc.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	interval := opts.MinWriteInterval
	if interval == 0 {
		interval = DefaultMinWriteInterval
	}
	lim := &limiter{base: transport, clock: clockOr(opts.Clock), interval: interval, log: log}
	hc.Transport = lim
	c := gh.NewClient(hc).WithAuthToken(string(bytes.TrimSpace(opts.Token)))
	c.BaseURL = base
	c.UserAgent = "molt (+https://github.com/molt-dev/molt)"
	return &Client{
		gh:    c,
		repo:  RepoRef{Owner: opts.Owner, Name: opts.Repo, WebURL: web},
		log:   log,
		limit: lim,
	}, nil
}

// Repo returns the repository reported to, with its web root.
func (c *Client) Repo() RepoRef { return c.repo }
