package github

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// genericMaxBody caps what Generic reads of a body it ignores.
const genericMaxBody = 64 << 10

// GenericOptions configures a Generic hook. Token is required.
type GenericOptions struct {
	// Token is the bearer token callers send as "Authorization: Bearer
	// <token>". Required, and without surrounding white space or control
	// characters (such a token could never be sent in a header: a token
	// read from a file usually needs its final newline trimmed).
	Token []byte

	// OnTrigger is called, on the request's goroutine, for each
	// authorized request. It must not block. Nil means nothing is done.
	OnTrigger func()

	// Logger receives one record per refused request; never the token.
	// Nil discards them.
	Logger *slog.Logger
}

// Validate checks the options.
func (o GenericOptions) Validate() error {
	if len(o.Token) == 0 {
		return errors.New("generic hook: token is required")
	}
	if !bytes.Equal(bytes.TrimSpace(o.Token), o.Token) {
		return errors.New("generic hook: token has leading or trailing white space")
	}
	for _, c := range o.Token {
		if c < 0x20 || c == 0x7f {
			return errors.New("generic hook: token has control characters")
		}
	}
	return nil
}

// Generic is the http.Handler of POST /hooks/generic: a request that
// carries the token triggers a reconcile, whatever its body (read up to
// 64 KiB and discarded). Safe for concurrent use.
type Generic struct {
	tokenSum  [sha256.Size]byte
	onTrigger func()
	log       *slog.Logger
}

var _ http.Handler = (*Generic)(nil)

// NewGeneric checks the options and returns a Generic hook. It starts
// nothing.
func NewGeneric(opts GenericOptions) (*Generic, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	g := &Generic{tokenSum: sha256.Sum256(opts.Token), onTrigger: opts.OnTrigger, log: opts.Logger}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("hook", "generic")
	return g, nil
}

// ServeHTTP answers 405 to a method other than POST, 401 to a missing or
// wrong token, 413 to a body over 64 KiB, and 202 after calling
// OnTrigger.
func (g *Generic) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	log := g.log.With("remote", req.RemoteAddr)
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		g.refuse(w, log, http.StatusMethodNotAllowed, "method "+printable(req.Method)+" not allowed")
		return
	}
	if !g.authorized(req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="molt"`)
		g.refuse(w, log, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	if req.ContentLength > genericMaxBody {
		g.refuse(w, log, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
		return
	}
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, req.Body, genericMaxBody)); err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			g.refuse(w, log, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
			return
		}
		if limited(w, err) {
			log.Warn("generic hook request refused", "why", err.Error())
			return
		}
		g.refuse(w, log, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	if g.onTrigger != nil {
		g.onTrigger()
	}
	log.Info("generic hook triggered")
	reply(w, http.StatusAccepted, "accepted")
}

// authorized compares the bearer token of an Authorization header with
// the configured one through their SHA-256 digests, so that the time
// taken reveals neither a common prefix nor the token's length.
func (g *Generic) authorized(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	return subtle.ConstantTimeCompare(sum[:], g.tokenSum[:]) == 1
}

func (g *Generic) refuse(w http.ResponseWriter, log *slog.Logger, status int, msg string) {
	log.Warn("generic hook request refused", "status", status, "why", msg)
	reply(w, status, msg)
}
