package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/molt-dev/molt/sources/github"
	"github.com/prometheus/client_golang/prometheus"
)

// githubAuth is how serve authenticates to GitHub.
type githubAuth int

const (
	authNone      githubAuth = iota
	authTokenEnv             // MOLT_GITHUB_TOKEN
	authTokenFile            // --github-token-file, re-read when it changes
	authApp                  // --github-app-id and --github-app-key-file
)

// githubChoice is the GitHub reporting that serve's flags ask for,
// decided before anything is read or sent.
type githubChoice struct {
	owner, name string
	named       bool   // the repository on GitHub is known
	apiURL      string // the REST API root; "" when the repository's host does not say it
	web         string // the web root of links ("" is github.com)
	auth        githubAuth
	// off says why nothing is sent although credentials were given: the
	// API of the repository's host is not known. "" when reporting is on
	// (or there are no credentials).
	off string
	// envIgnored: MOLT_GITHUB_TOKEN is set, and the app flags win.
	envIgnored bool
}

// chooseGitHub decides the reporting from the flags and whether
// MOLT_GITHUB_TOKEN is set. It reads no file and sends nothing; what is
// wrong with the flags is a usage error. The API is derived from the
// repository's host only for github.com: any other host needs
// --github-api-url, or reporting is off (a token is never sent to a
// guessed host), and a token never goes over plain http to a host other
// than this machine.
func chooseGitHub(f serveFlags, envToken bool) (githubChoice, error) {
	var c githubChoice
	app := f.githubAppID != 0 || f.githubAppKeyFile != ""
	switch {
	case f.githubAppID < 0 || f.githubAppInstallationID < 0:
		return c, &usageError{errors.New("--github-app-id and --github-app-installation-id are positive numbers")}
	case app && (f.githubAppID == 0 || f.githubAppKeyFile == ""):
		return c, &usageError{errors.New("a GitHub App needs both --github-app-id and --github-app-key-file")}
	case f.githubAppInstallationID != 0 && !app:
		return c, &usageError{errors.New("--github-app-installation-id needs --github-app-id and --github-app-key-file")}
	case app && f.githubTokenFile != "":
		return c, &usageError{errors.New("give either --github-token-file or a GitHub App (--github-app-id, --github-app-key-file), not both")}
	case app:
		c.auth, c.envIgnored = authApp, envToken
	case f.githubTokenFile != "":
		c.auth = authTokenFile
	case envToken:
		c.auth = authTokenEnv
	}
	if f.githubAPIURL != "" {
		if err := github.ValidateAPIURL(f.githubAPIURL); err != nil {
			return c, &usageError{fmt.Errorf("--github-api-url: %w", err)}
		}
	}
	if f.publicURL != "" {
		u, err := url.Parse(f.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return c, &usageError{fmt.Errorf("--public-url %q: want an absolute http(s) URL", f.publicURL)}
		}
	}

	if f.githubRepo != "" {
		c.owner, c.name, c.named = strings.Cut(f.githubRepo, "/")
	} else {
		c.owner, c.name, c.named = github.ParseRepoURL(f.src.repo)
	}
	if c.auth != authNone && !c.named {
		return c, &usageError{errors.New("a GitHub token needs the repository: pass --github-repo OWNER/NAME")}
	}

	host, onHost := github.RepoHost(f.src.repo)
	switch api, ok := github.APIURLFor(f.src.repo); {
	case f.githubAPIURL != "":
		c.apiURL = f.githubAPIURL
	case ok:
		c.apiURL = api
	case c.auth != authNone && onHost:
		c.off = fmt.Sprintf("the repository is on %s, not github.com, and --github-api-url is not given "+
			"(for GitHub Enterprise Server: --github-api-url https://%s/api/v3/)", host, host)
	case c.auth != authNone:
		c.off = "the repository is not a github.com URL and --github-api-url is not given " +
			"(for GitHub.com: --github-api-url " + github.DefaultAPIURL + ")"
	}
	switch {
	case c.apiURL != "":
		ref, err := github.NewRepoRef(c.apiURL, c.owner, c.name)
		if err != nil {
			return c, &usageError{fmt.Errorf("--github-api-url: %w", err)}
		}
		c.web = ref.WebURL
	case onHost:
		c.web = "https://" + host + "/"
	}
	return c, nil
}

// clientOptions are the options of the GitHub client of the choice; it
// reads the app's key.
func (c githubChoice) clientOptions(f serveFlags, envToken []byte, log *slog.Logger) (github.ClientOptions, error) {
	opts := github.ClientOptions{APIURL: c.apiURL, Owner: c.owner, Repo: c.name, Logger: log}
	switch c.auth {
	case authTokenEnv:
		opts.Token = envToken
	case authTokenFile:
		opts.TokenFile = f.githubTokenFile
	case authApp:
		pem, err := os.ReadFile(f.githubAppKeyFile)
		if err != nil {
			return opts, fmt.Errorf("--github-app-key-file: %w", err)
		}
		key, err := github.ParseAppKey(pem)
		if err != nil {
			return opts, fmt.Errorf("--github-app-key-file %s: %w", f.githubAppKeyFile, err)
		}
		opts.App = &github.AppAuth{ID: f.githubAppID, Key: key, InstallationID: f.githubAppInstallationID}
	}
	return opts, nil
}

// newReporter builds the GitHub reporting: a client with credentials (a
// token, a token file, or a GitHub App), a logger of what would be posted
// without them or when the API is not known, and the persistent queue.
// The client is nil when nothing is sent.
func newReporter(f serveFlags, w *world, log *slog.Logger) (*reporter, *github.Client, error) {
	envToken, err := secret("", "MOLT_GITHUB_TOKEN")
	if err != nil {
		return nil, nil, err
	}
	c, err := chooseGitHub(f, envToken != nil)
	if err != nil {
		return nil, nil, err
	}
	ref := github.RepoRef{Owner: c.owner, Name: c.name, WebURL: c.web}
	// Without credentials, say what would be posted; without even a
	// GitHub repository (a local path), there is nothing to say.
	qlog := log
	if c.auth == authNone && !c.named {
		qlog = slog.New(slog.DiscardHandler)
	}
	var sink github.Reporter = github.LogReporter{Logger: qlog, Repo: ref}
	var client *github.Client
	switch {
	case c.off != "":
		log.Warn("GitHub reporting is off: nothing is sent to any host: "+c.off, "repo", f.src.repo)
		sink = github.LogReporter{Logger: qlog, Repo: ref, Why: "reporting is off (no --github-api-url for this repository's host)"}
	case c.auth != authNone:
		if c.envIgnored {
			log.Warn("MOLT_GITHUB_TOKEN is set but not used: molt authenticates as the GitHub App")
		}
		opts, err := c.clientOptions(f, envToken, log)
		if err != nil {
			return nil, nil, err
		}
		cl, err := github.NewClient(opts)
		if err != nil {
			return nil, nil, err
		}
		sink, client = cl, cl
	case c.named:
		log.Info("no GitHub token: reports are logged, not posted")
	}
	q, err := github.NewQueue(github.QueueOptions{Dir: f.stateDir, Reporter: sink, Logger: qlog})
	if err != nil {
		return nil, nil, err
	}
	return &reporter{queue: q, repo: ref, branch: f.branch, revertPR: f.githubRevertPR, log: log, publicURL: f.publicURL,
		prs: map[int]github.Event{}, prWake: make(chan struct{}, 1)}, client, nil
}

// githubCredentials reports whether serve's flags give GitHub credentials
// (a token in MOLT_GITHUB_TOKEN or --github-token-file, or a GitHub App).
func githubCredentials(f serveFlags) (bool, error) {
	if f.githubAppID != 0 || f.githubAppKeyFile != "" {
		return true, nil
	}
	token, err := secret(f.githubTokenFile, "MOLT_GITHUB_TOKEN")
	return token != nil, err
}

// githubRefusals exports the client's count of reports GitHub refused for
// their credentials, one series per permission and answer:
// molt_github_refused_total{permission="statuses:write",status="403"}.
func (m *serveMetrics) githubRefusals(c *github.Client) {
	for i, r := range c.Refusals() {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "molt_github_refused_total",
			Help:        "GitHub reports refused for their credentials (401, 403, 404), by the permission they need and GitHub's answer.",
			ConstLabels: prometheus.Labels{"permission": r.Permission.String(), "status": strconv.Itoa(r.Status)},
		}, func() float64 { return float64(c.Refusals()[i].Count) }))
	}
}
