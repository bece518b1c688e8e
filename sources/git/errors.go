package git

import (
	"errors"
	"fmt"
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
	return &remoteError{msg: r.scrub(op + " " + r.display + ": " + err.Error()), err: err}
}
