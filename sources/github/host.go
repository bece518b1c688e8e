package github

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// RepoHost returns the host of a clone URL (https://, ssh://, git@host:
// and the other forms ParseRepoURL reads), lower case and without user
// or port. It reports false for a local path or a file:// URL, which
// live on no host.
func RepoHost(repoURL string) (string, bool) {
	host, _, ok := splitRepoURL(repoURL)
	return host, ok
}

// APIURLFor returns the REST API root of the GitHub a repository lives
// on, from its clone URL: DefaultAPIURL for github.com (any form of its
// clone URLs, ssh.github.com too). It reports false for any other host,
// and for a local path: the API of a GitHub Enterprise Server cannot be
// told from its host (it may be https://host/api/v3/, a proxy, or not a
// GitHub at all), so it must be given, and a token is never sent to a
// host that was guessed.
func APIURLFor(repoURL string) (string, bool) {
	switch host, _ := RepoHost(repoURL); host {
	case "github.com", "www.github.com", "ssh.github.com":
		return DefaultAPIURL, true
	}
	return "", false
}

// ValidateAPIURL checks an API root that a token is to be sent to: an
// absolute http(s) URL without user, query or fragment, and https unless
// its host is a loopback address (a test server on this machine): a
// token never crosses a network in clear text. "" is GitHub.com's.
func ValidateAPIURL(apiURL string) error {
	u, err := apiBase(apiURL)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return fmt.Errorf("github api url %q: plain http:// to %s would send the token in clear text; use https://", apiURL, u.Hostname())
	}
	return nil
}

// loopbackHost reports whether a host name (without port) is this
// machine: "localhost" or a loopback address.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether u is on the scheme and host (with port) of
// base: the only place the Client's credentials go.
func sameOrigin(u, base *url.URL) bool {
	return strings.EqualFold(u.Scheme, base.Scheme) && strings.EqualFold(u.Host, base.Host)
}
