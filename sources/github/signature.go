package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Errors of verifySignature. Their messages go back to the sender, who
// sees them in GitHub's list of recent deliveries; none repeats the
// signature.
var (
	errNoSecret         = errors.New("no webhook secret configured")
	errNoSignature      = errors.New("missing X-Hub-Signature-256 header")
	errSignatureFormat  = errors.New("X-Hub-Signature-256 is not sha256=<64 hex digits>")
	errSignatureInvalid = errors.New("X-Hub-Signature-256 does not match the body and the secret")
)

// verifySignature checks that header is "sha256=" followed by the hex
// HMAC-SHA256 of body keyed with secret, as GitHub computes it over the
// exact bytes it sends. The comparison takes the same time wherever the
// first difference is. An empty secret is always refused.
func verifySignature(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return errNoSecret
	}
	if header == "" {
		return errNoSignature
	}
	digits, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(digits) != 2*sha256.Size {
		return errSignatureFormat
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(digits)); err != nil {
		return errSignatureFormat
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got[:]) {
		return errSignatureInvalid
	}
	return nil
}
