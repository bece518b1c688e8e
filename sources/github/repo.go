package github

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// DefaultAPIURL is GitHub.com's REST API.
const DefaultAPIURL = "https://api.github.com/"

// RepoRef names a repository and where people see it on the web; it
// makes the links of comments. A plain value: it travels inside reports.
type RepoRef struct {
	Owner string `json:"owner"`
	Name  string `json:"name"`
	// WebURL is the root of the web interface, with a trailing slash:
	// "https://github.com/", or "https://ghe.example.com/" for GitHub
	// Enterprise Server. Empty means GitHub.com.
	WebURL string `json:"webURL,omitempty"`
}

// NewRepoRef returns the RepoRef of owner/name on the GitHub whose REST
// API is at apiURL ("" for GitHub.com).
func NewRepoRef(apiURL, owner, name string) (RepoRef, error) {
	web, err := webURL(apiURL)
	if err != nil {
		return RepoRef{}, err
	}
	return RepoRef{Owner: owner, Name: name, WebURL: web}, nil
}

// String is "owner/name".
func (r RepoRef) String() string { return r.Owner + "/" + r.Name }

// IsZero reports whether the reference names no repository.
func (r RepoRef) IsZero() bool { return r.Owner == "" && r.Name == "" }

func (r RepoRef) root() string {
	web := r.WebURL
	if web == "" {
		web = "https://github.com/"
	}
	if !strings.HasSuffix(web, "/") {
		web += "/"
	}
	return web + url.PathEscape(r.Owner) + "/" + url.PathEscape(r.Name)
}

// CommitURL is the web page of a commit.
func (r RepoRef) CommitURL(sha string) string { return r.root() + "/commit/" + url.PathEscape(sha) }

// PullURL is the web page of a pull request.
func (r RepoRef) PullURL(number int) string { return r.root() + "/pull/" + strconv.Itoa(number) }

// BlobURL is the web page of a file at a commit, at a line when line is
// positive.
func (r RepoRef) BlobURL(sha, file string, line int) string {
	segs := strings.Split(strings.TrimPrefix(file, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := r.root() + "/blob/" + url.PathEscape(sha) + "/" + strings.Join(segs, "/")
	if line > 0 {
		u += "#L" + strconv.Itoa(line)
	}
	return u
}

// apiBase checks an API URL and returns it with a trailing slash; ""
// gives DefaultAPIURL.
func apiBase(apiURL string) (*url.URL, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, fmt.Errorf("github api url: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("github api url %q: want http(s)://host/path/", apiURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// webURL derives the web root from an API URL: api.github.com (and
// api.<name>.ghe.com) drop the "api." host prefix, GitHub Enterprise
// Server drops the /api/v3/ path; any other URL (a test server) is its
// own web root.
func webURL(apiURL string) (string, error) {
	u, err := apiBase(apiURL)
	if err != nil {
		return "", err
	}
	host := u.Host
	if strings.HasPrefix(host, "api.") && (host == "api.github.com" || strings.HasSuffix(host, ".ghe.com")) {
		host = strings.TrimPrefix(host, "api.")
	}
	path := strings.TrimSuffix(u.Path, "api/v3/")
	return u.Scheme + "://" + host + path, nil
}

// ParseRepoURL reads the owner and name of a repository from its clone
// URL: https://github.com/o/n(.git), git@github.com:o/n.git or
// ssh://git@github.com/o/n.git, on any host (GitHub Enterprise too). It
// reports false for anything else, such as a local path.
func ParseRepoURL(raw string) (owner, name string, ok bool) {
	_, path, ok := splitRepoURL(raw)
	if !ok {
		return "", "", false
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	owner, name, found := strings.Cut(path, "/")
	if !found || !validName(owner) || !validName(name) {
		return "", "", false
	}
	return owner, name, true
}

// splitRepoURL splits a clone URL (a URL with a network scheme, or the
// scp-like [user@]host:path) into its host, lower case and without user
// or port, and its path. It reports false for anything else, such as a
// local path or a file:// URL.
func splitRepoURL(raw string) (host, path string, ok bool) {
	raw = strings.TrimSpace(raw)
	if i := strings.Index(raw, "://"); i >= 0 {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			return "", "", false
		}
		switch u.Scheme {
		case "https", "http", "ssh", "git", "git+ssh", "ssh+git":
		default:
			return "", "", false
		}
		return strings.ToLower(u.Hostname()), u.Path, true
	}
	// scp-like: [user@]host:owner/name(.git); a one-letter "host" is a
	// Windows drive.
	hostPart, p, found := strings.Cut(raw, ":")
	if !found || len(hostPart) < 2 || strings.ContainsAny(hostPart, "/\\") || strings.HasPrefix(p, "/") {
		return "", "", false
	}
	host = hostPart
	if user, h, hasUser := strings.Cut(hostPart, "@"); hasUser {
		if user == "" || h == "" {
			return "", "", false
		}
		host = h
	}
	return strings.ToLower(host), p, true
}

// validName reports whether s can be a GitHub owner or repository name:
// letters, digits, '-', '_' and '.', not "." or "..".
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 100 {
		return false
	}
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
