package git

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Options says which remote to read and where to cache it.
type Options struct {
	// URL is the remote: a local path (absolute or relative to the working
	// directory), or a file://, https://, http:// or ssh:// URL, or the
	// scp-like form user@host:path. Credentials in the URL are used for
	// the transport but never written to the cache, to logs or to errors.
	URL string

	// CacheDir is the directory that holds the bare caches of remotes
	// (e.g. STATE/git). Each remote gets a subdirectory named by a hash of
	// its URL without credentials; Open creates it.
	CacheDir string

	// Auth authenticates to the remote; nil means none (or the
	// credentials of the URL).
	Auth transport.AuthMethod

	// Credential says, for error messages, which credential Auth carries
	// (e.g. "the token from MOLT_GIT_TOKEN", "no credential"); never the
	// secret itself. An authentication or authorization failure names it.
	Credential string

	// Logger receives what the cache does; nil discards it.
	Logger *slog.Logger

	// Shallow makes the Fetch of an empty cache bring only the commits
	// that the remote's branches and tags point at, without their history
	// (as git clone --depth 1 does), and the later Fetches of that cache
	// keep it so: all that a one-shot read of a branch needs, for a
	// fraction of the download. Resolve then finds no older commit until
	// Deepen. A cache that already holds history is fetched whole, as
	// without Shallow; so are remotes that go-git serves in process (a
	// local path where Git is not installed), which cannot serve shallow
	// fetches.
	//
	// Without Shallow, the first Fetch of a shallow cache (one that a
	// Repo with Shallow left) brings the history it lacks, as git fetch
	// --unshallow does.
	Shallow bool
}

// Validate checks the options without touching the disk or the network.
func (o Options) Validate() error {
	if o.URL == "" {
		return errors.New("git options: url is required")
	}
	if o.CacheDir == "" {
		return errors.New("git options: cache dir is required")
	}
	if _, err := parseRemote(o.URL); err != nil {
		return fmt.Errorf("git options: %w", err)
	}
	return nil
}

// remote is a parsed Options.URL.
type remote struct {
	url     string   // what the transport dials; may hold credentials
	display string   // the URL without user information: safe to print
	secrets []string // strings to scrub from messages that come back from go-git
	cred    string   // Options.Credential
}

// scpLike matches user@host:path (git's "scp-like syntax"); like git, a
// slash before the first colon makes it a local path instead.
var scpLike = regexp.MustCompile(`^(?:[^@/]+@)?[^:/\s]+:`)

// parseRemote turns Options.URL into the URL to dial and the URL to print.
func parseRemote(raw string) (remote, error) {
	if strings.TrimSpace(raw) != raw || strings.ContainsAny(raw, "\x00\n\r") {
		return remote{}, errors.New("url: leading or trailing space or control characters")
	}
	switch {
	case strings.Contains(raw, "://"):
		return parseURL(raw)
	case scpLike.MatchString(raw) && !strings.Contains(raw[:strings.Index(raw, ":")], "/"):
		// No password can be written in this form; the user name is not
		// a secret (it is "git" on every forge).
		return remote{url: raw, display: raw}, nil
	default:
		abs, err := filepath.Abs(raw)
		if err != nil {
			return remote{}, fmt.Errorf("url: local path: %w", err)
		}
		u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
		return remote{url: u, display: u}, nil
	}
}

func parseURL(raw string) (remote, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes its input, credentials included.
		return remote{}, errors.New("url: not a valid URL")
	}
	r := remote{url: raw}
	if u.User != nil {
		scheme := strings.ToLower(u.Scheme)
		if p, ok := u.User.Password(); ok && p != "" {
			r.secrets = append(r.secrets, u.User.Username()+":"+p, u.User.String(), p, url.PathEscape(p), url.QueryEscape(p))
		} else if name := u.User.Username(); name != "" && (scheme == "http" || scheme == "https") {
			// https://TOKEN@host/...: the user name is the credential.
			r.secrets = append(r.secrets, u.User.String(), name)
		}
	}
	safe := *u
	safe.User = nil
	r.display = safe.String()

	switch strings.ToLower(u.Scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return remote{}, fmt.Errorf("url %s: a file URL has no host", r.display)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return remote{}, fmt.Errorf("url %s: a file URL needs an absolute path", r.display)
		}
	case "http", "https", "ssh", "git":
		if u.Host == "" {
			return remote{}, fmt.Errorf("url %s: no host", r.display)
		}
	default:
		return remote{}, fmt.Errorf("url %s: scheme %q not supported (use a path, file, https, http, ssh or git)", r.display, u.Scheme)
	}
	return r, nil
}

// cacheName is the name of the cache directory of the remote: a hash of
// its URL without credentials, so that a token change keeps the cache.
func (r remote) cacheName() string {
	sum := sha256.Sum256([]byte(r.display))
	return hex.EncodeToString(sum[:12])
}

// userinfo matches the user information of a URL in a message.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s"']+@`)

// scrub removes credentials from a message that may quote the URL: the
// user information of any URL in it, and the URL's password wherever it
// appears.
func (r remote) scrub(msg string) string {
	msg = userinfo.ReplaceAllString(msg, "$1")
	if r.url != r.display {
		msg = strings.ReplaceAll(msg, r.url, r.display)
	}
	for _, s := range r.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return msg
}
