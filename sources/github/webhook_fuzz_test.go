package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fuzz targets of the webhook: the signature check, the parsing of
// each event's payload, and the whole receiver. Their seeds are the real
// deliveries of testdata (octokit/webhooks) plus the corpus of
// testdata/fuzz/FuzzX, which `go test` runs as ordinary tests; `make fuzz`
// runs them for FUZZTIME each.

// installationBody is an installation delivery (GitHub App), an event
// molt does not act on; the other seeds are the files of testdata.
const installationBody = `{"action":"created","installation":{"id":1,"account":{"login":"octocat"}},"repositories":[{"full_name":"octocat/Hello-World"}],"sender":{"login":"octocat"}}`

// realPayloads returns the deliveries of testdata by event name (the
// file name up to its first dot), installation included.
func realPayloads(f *testing.F) map[string][][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no payloads in testdata: %v", err)
	}
	out := map[string][][]byte{"installation": {[]byte(installationBody)}}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		event, _, _ := strings.Cut(filepath.Base(name), ".")
		out[event] = append(out[event], b)
	}
	return out
}

// rightSignature reports whether header is X-Hub-Signature-256 of body
// under secret: "sha256=" and the 64 hex digits of the HMAC.
func rightSignature(secret, body []byte, header string) bool {
	digits, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(digits)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func FuzzVerifySignature(f *testing.F) {
	for _, bodies := range realPayloads(f) {
		for _, b := range bodies {
			f.Add(testSecret, b, sign(testSecret, b))
			f.Add(testSecret, b, strings.ToUpper(sign(testSecret, b)))
			f.Add([]byte("other"), b, sign(testSecret, b))
		}
	}
	f.Add([]byte{}, []byte("{}"), sign(nil, []byte("{}")))
	f.Add(testSecret, []byte{}, "sha256=")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		err := verifySignature(secret, body, header)
		if err == nil && (len(secret) == 0 || !rightSignature(secret, body, header)) {
			t.Fatalf("accepted header %q for a body of %d bytes without the right HMAC (secret %d bytes)", header, len(body), len(secret))
		}
		if err != nil && len(secret) > 0 && rightSignature(secret, body, header) {
			t.Fatalf("refused the right HMAC: %v", err)
		}
		// The signature GitHub would send is always accepted, and the
		// same signature of another body never is.
		if len(secret) > 0 {
			good := sign(secret, body)
			if err := verifySignature(secret, body, good); err != nil {
				t.Fatalf("refused GitHub's signature: %v", err)
			}
			if err := verifySignature(secret, append(bytes.Clone(body), 'x'), good); err == nil {
				t.Fatal("accepted the signature of another body")
			}
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for event, bodies := range realPayloads(f) {
		for _, b := range bodies {
			f.Add(event, b)
		}
	}
	f.Add("push", []byte(`{"ref":"refs/heads/main","after":"`+zeroSHA+`","repository":{"full_name":"a/b"}}`))
	f.Add("issue_comment", []byte(`{"action":"created","issue":{"number":1,"pull_request":{}},"comment":{"id":1,"body":"/molt promote web","user":{"login":"u"}},"repository":{"full_name":"a/b"}}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		ev, err := parseEvent(name, testDelivery, payload)
		again, err2 := parseEvent(name, testDelivery, bytes.Clone(payload))
		if (err == nil) != (err2 == nil) || !cmp.Equal(ev, again) {
			t.Fatalf("parsing is not deterministic: %v, %v\n%s", err, err2, cmp.Diff(ev, again))
		}
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is not of the class errMalformed", err)
			}
			if ev != (Event{}) {
				t.Fatalf("an error comes with an event: %+v", ev)
			}
			return
		}
		if ev.Name != name || ev.Delivery != testDelivery {
			t.Fatalf("event %+v does not keep its headers", ev)
		}
		if ev.Kind.String() != name && ev.Kind != KindOther {
			t.Fatalf("event %q has kind %s", name, ev.Kind)
		}
		switch ev.Kind {
		case KindPush:
			if ev.Ref == "" || ev.Repo == "" || !isCommitID(ev.After) {
				t.Fatalf("push accepted without ref, repository or a commit id: %+v", ev)
			}
			if strings.Trim(ev.After, "0") == "" && !ev.Deleted {
				t.Fatalf("push to the zero commit is not a deletion: %+v", ev)
			}
		case KindPullRequest:
			if ev.PRNumber <= 0 || ev.PRAction == "" || ev.Repo == "" || !isCommitID(ev.HeadSHA) || ev.BaseRef == "" {
				t.Fatalf("pull request accepted without what it needs: %+v", ev)
			}
		case KindComment:
			if ev.CommentID <= 0 || ev.Author == "" || ev.Repo == "" || ev.PRNumber < 0 {
				t.Fatalf("comment accepted without what it needs: %+v", ev)
			}
			if c, ok := ParseCommand(ev.CommentBody); c != ev.Command || ok != (c.Action != "") {
				t.Fatalf("command %+v of body %q, ParseCommand says %+v %v", ev.Command, ev.CommentBody, c, ok)
			}
		case KindOther:
			if name == "ping" || name == "push" || name == "pull_request" || name == "issue_comment" {
				t.Fatalf("event %q parsed as other", name)
			}
		}
		_ = ev.LogValue().Resolve() // prints without panic
	})
}

// Signature modes of FuzzReceiver: how X-Hub-Signature-256 is made.
const (
	sigRight   = iota // GitHub's signature of the body
	sigFuzzed         // the fuzzed header as it is
	sigFlipped        // GitHub's signature with one hex digit changed
	sigModes
)

func FuzzReceiver(f *testing.F) {
	for event, bodies := range realPayloads(f) {
		for _, b := range bodies {
			f.Add(event, "application/json", b, uint8(sigRight), "")
			f.Add(event, "application/json", b, uint8(sigFlipped), "")
			f.Add(event, "application/x-www-form-urlencoded", []byte("payload="+url.QueryEscape(string(b))), uint8(sigRight), "")
		}
	}
	f.Add("push", "application/json", []byte("{}"), uint8(sigFuzzed), "sha256=")
	f.Add("ping", "text/plain", []byte("{}"), uint8(sigRight), "")
	f.Fuzz(func(t *testing.T, event, contentType string, body []byte, mode uint8, header string) {
		switch mode % sigModes {
		case sigRight:
			header = sign(testSecret, body)
		case sigFlipped:
			h := []byte(sign(testSecret, body))
			i := len("sha256=") + len(header)%64
			h[i] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", h[i])]
			header = string(h)
		}
		req := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
			r.Header.Set("X-GitHub-Event", event)
			r.Header.Set("X-GitHub-Delivery", testDelivery)
			r.Header.Set("X-Hub-Signature-256", header)
			r.Header.Set("Content-Type", contentType)
			return r
		}
		answer := func() (*httptest.ResponseRecorder, []Event) {
			var c calls
			opts := testOptions(&c)
			opts.OnComment = c.onComment
			opts.MaxBody = 64 << 10
			rec := serve(newTestReceiver(t, opts), req())
			push, pulls := c.get()
			return rec, append(append(push, pulls...), c.getComments()...)
		}
		rec, events := answer()
		right := rightSignature(testSecret, body, header)
		switch {
		case rec.Code == http.StatusRequestEntityTooLarge:
			if len(body) <= 64<<10 {
				t.Fatalf("413 for a body of %d bytes", len(body))
			}
		case !right && rec.Code != http.StatusUnauthorized:
			t.Fatalf("status %d without the right HMAC (header %q): %s", rec.Code, header, rec.Body)
		case right && rec.Code == http.StatusUnauthorized:
			t.Fatalf("the right HMAC refused: %s", rec.Body)
		}
		if len(events) > 0 && (!right || rec.Code != http.StatusAccepted) {
			t.Fatalf("callback called with status %d, right HMAC %v: %+v", rec.Code, right, events)
		}
		if len(events) > 1 {
			t.Fatalf("one delivery, %d callbacks", len(events))
		}
		// Each callback gets the event as parseEvent reads the payload.
		if len(events) == 1 {
			payload, _, err := payloadOf(contentType, body)
			if err != nil {
				t.Fatalf("callback called for a body without a payload: %v", err)
			}
			want, err := parseEvent(event, testDelivery, payload)
			if err != nil || !cmp.Equal(events[0], want) {
				t.Fatalf("callback event differs from the parsed payload (%v):\n%s", err, cmp.Diff(want, events[0]))
			}
		}
		// The same delivery to a fresh receiver gets the same answer.
		rec2, events2 := answer()
		if rec2.Code != rec.Code || rec2.Body.String() != rec.Body.String() || !cmp.Equal(events, events2) {
			t.Fatalf("answers differ: %d %q, then %d %q", rec.Code, rec.Body, rec2.Code, rec2.Body)
		}
	})
}
