package git

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Errors to test for with errors.Is. A missing ref, an empty repository
// and a missing subdir are mistakes in the configuration or the repository
// that only a change there fixes; other errors from Fetch (an unreachable
// remote, a timeout) are transient.
var (
	// ErrRefNotFound: the ref given to Resolve names no branch, tag or
	// commit in the cache (after the last Fetch).
	ErrRefNotFound = errors.New("ref not found")

	// ErrEmptyRepository: the remote has no commits at all.
	ErrEmptyRepository = errors.New("repository has no commits")

	// ErrSymlink: Open or ReadFile of a Snapshot reached a symbolic link,
	// which is never followed. ReadLink and Lstat tell where it points.
	ErrSymlink = errors.New("symbolic link not followed")
)

// refError says that a ref is missing, without repeating "not found".
type refError struct {
	ref    string
	remote string
	why    string // "" or a hint
}

func (e *refError) Error() string {
	msg := fmt.Sprintf("ref %q not found in %s", e.ref, e.remote)
	if e.ref == "" {
		msg = "default branch not known for " + e.remote
	}
	if e.why != "" {
		msg += " (" + e.why + ")"
	}
	return msg
}

func (e *refError) Is(target error) bool { return target == ErrRefNotFound }

// remoteError is an error from the transport with the remote's credentials
// scrubbed from its message. Unwrap gives the original error to errors.Is
// and errors.As; do not print the unwrapped error.
type remoteError struct {
	msg string
	err error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.err }

// wrapRemote wraps an error from talking to the remote as "op URL: err",
// with credentials removed.
func (r remote) wrap(op string, err error) error {
	return &remoteError{msg: r.scrub(op + " " + r.display + ": " + r.explain(err)), err: err}
}

// explain says what the server answered when it refused the credential,
// and which credential that was. go-git reports an HTTP 401 as
// "authentication required: " followed by the response body, which is
// often empty; SSH refusals come back as handshake errors.
func (r remote) explain(err error) string {
	sent := r.cred
	if sent == "" {
		sent = "no credential"
	}
	answer := func(status, what string) string {
		msg := err.Error()
		body := ""
		if _, rest, ok := strings.Cut(msg, what+":"); ok {
			body = strings.TrimSpace(rest)
		}
		if body == "" {
			body = "no message"
		} else {
			body = fmt.Sprintf("%q", firstLine(body, 200))
		}
		return fmt.Sprintf("%s: the server answered %s (%s) to %s", what, status, body, sent)
	}
	msg := err.Error()
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return answer("HTTP 401", transport.ErrAuthenticationRequired.Error())
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return answer("HTTP 403", transport.ErrAuthorizationFailed.Error())
	case errors.Is(err, transport.ErrRepositoryNotFound) && r.cred != "":
		// Forges answer 404 for a private repository to a credential that
		// may not read it.
		return fmt.Sprintf("%s (the server answered as if it did not exist to %s; a private repository looks like this to a credential that may not read it)", msg, sent)
	case strings.Contains(msg, "unable to authenticate"):
		return fmt.Sprintf("the ssh server refused %s: %s", sent, msg)
	case strings.Contains(msg, "knownhosts:"):
		return fmt.Sprintf("the ssh server's host key is not the one known_hosts names: %s", msg)
	}
	return msg
}

// firstLine is the first line of s, cut to at most n bytes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
