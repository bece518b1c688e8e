package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var testSecret = []byte("It's a Secret to Everybody")

// The ids of the commits in the payloads of testdata (octokit/webhooks).
const (
	newBranchAfter = "6113728f27ae82c7b1a177c8d03f9e96e0adf246" // push.with-new-branch.json
	prHeadSHA      = "ec26c3e57ca3a959ca5aad62de7213c562f8c821" // pull_request.*.json
	zeroSHA        = "0000000000000000000000000000000000000000"
)

// payload reads a delivery body from testdata.
func payload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edited returns a testdata payload with some fields changed by edit.
func edited(t testing.TB, name string, edit func(p map[string]any)) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(payload(t, name), &p); err != nil {
		t.Fatal(err)
	}
	edit(p)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign computes X-Hub-Signature-256 as GitHub does.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// delivery is a request as GitHub sends it; the zero values of the
// fields give GitHub's headers, signed with testSecret.
type delivery struct {
	event       string // X-GitHub-Event
	id          string // X-GitHub-Delivery; "" means a fixed GUID
	body        []byte
	contentType string            // "" means application/json
	header      map[string]string // set after the defaults; "" deletes
}

func (d delivery) request() *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(d.body))
	id := d.id
	if id == "" {
		id = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	}
	ct := d.contentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("X-GitHub-Event", d.event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", sign(testSecret, d.body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	for k, v := range d.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return req
}

// calls records the callbacks of a Receiver.
type calls struct {
	mu       sync.Mutex
	push     []Event
	pulls    []Event
	comments []Event
}

func (c *calls) onPush(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.push = append(c.push, ev)
}

func (c *calls) onPullRequest(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pulls = append(c.pulls, ev)
}

func (c *calls) onComment(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.comments = append(c.comments, ev)
}

func (c *calls) getComments() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.comments...)
}

func (c *calls) get() (push, pulls []Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.push...), append([]Event(nil), c.pulls...)
}

// testOptions serves Codertocat/Hello-World's master, the repository of
// the payloads.
func testOptions(c *calls) ReceiverOptions {
	return ReceiverOptions{
		Secret:        testSecret,
		Repo:          "Codertocat/Hello-World",
		Branch:        "master",
		OnPush:        c.onPush,
		OnPullRequest: c.onPullRequest,
	}
}

func newTestReceiver(t testing.TB, opts ReceiverOptions) *Receiver {
	t.Helper()
	r, err := NewReceiver(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// serve answers one request and returns the recorded answer.
func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// only returns Counts with one outcome counted n times.
func only(o outcome, n int64) Counts {
	var c counters
	c[o].Add(n)
	return c.snapshot()
}
