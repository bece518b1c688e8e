package github

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestGeneric(t *testing.T) {
	const token = "s3cr3t-t0ken"
	tests := []struct {
		name        string
		method      string // "" means POST
		auth        string
		body        io.Reader
		knownLength bool // Content-Length set (else chunked)
		wantStatus  int
	}{
		{name: "right token", auth: "Bearer " + token, wantStatus: http.StatusAccepted},
		{name: "scheme in lower case", auth: "bearer " + token, wantStatus: http.StatusAccepted},
		{name: "with a body", auth: "Bearer " + token, body: strings.NewReader(`{"ref":"main"}`), knownLength: true, wantStatus: http.StatusAccepted},
		{name: "body of exactly 64 KiB", auth: "Bearer " + token, body: bytes.NewReader(make([]byte, 64<<10)), wantStatus: http.StatusAccepted},
		{name: "no header", wantStatus: http.StatusUnauthorized},
		{name: "wrong token", auth: "Bearer s3cr3t-t0kem", wantStatus: http.StatusUnauthorized},
		{name: "token prefix", auth: "Bearer " + token[:len(token)-1], wantStatus: http.StatusUnauthorized},
		{name: "token and more", auth: "Bearer " + token + "x", wantStatus: http.StatusUnauthorized},
		{name: "empty token", auth: "Bearer ", wantStatus: http.StatusUnauthorized},
		{name: "scheme only", auth: "Bearer", wantStatus: http.StatusUnauthorized},
		{name: "token without scheme", auth: token, wantStatus: http.StatusUnauthorized},
		{name: "basic scheme", auth: "Basic " + token, wantStatus: http.StatusUnauthorized},
		{name: "GET", method: http.MethodGet, auth: "Bearer " + token, wantStatus: http.StatusMethodNotAllowed},
		{name: "body over 64 KiB, length known", auth: "Bearer " + token, body: bytes.NewReader(make([]byte, 64<<10+1)), knownLength: true, wantStatus: http.StatusRequestEntityTooLarge},
		{name: "body over 64 KiB, streamed", auth: "Bearer " + token, body: io.LimitReader(zeros{}, 1<<20), wantStatus: http.StatusRequestEntityTooLarge},
		{name: "body over 64 KiB, no token", body: io.LimitReader(zeros{}, 1<<20), wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var triggered atomic.Int64
			g, err := NewGeneric(GenericOptions{Token: []byte(token), OnTrigger: func() { triggered.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			body := &countingReader{r: strings.NewReader("")}
			if tt.body != nil {
				body.r = tt.body
			}
			req := httptest.NewRequest(method, "/hooks/generic", body)
			if !tt.knownLength {
				req.ContentLength = -1
			} else if b, ok := tt.body.(interface{ Len() int }); ok {
				req.ContentLength = int64(b.Len())
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := serve(g, req)

			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d (%q), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			wantTriggers := int64(0)
			if tt.wantStatus == http.StatusAccepted {
				wantTriggers = 1
			}
			if got := triggered.Load(); got != wantTriggers {
				t.Errorf("OnTrigger called %d times, want %d", got, wantTriggers)
			}
			if body.n > 64<<10+1 {
				t.Errorf("read %d bytes of the body, want at most 64 KiB + 1", body.n)
			}
			if tt.wantStatus == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestGenericOptions(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		wantErr string
	}{
		{"token", "abc", ""},
		{"token with inner space", "a b", ""},
		{"empty", "", "token is required"},
		{"trailing newline", "abc\n", "white space"},
		{"leading space", " abc", "white space"},
		{"control character", "a\x00b", "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGeneric(GenericOptions{Token: []byte(tt.token)})
			if tt.wantErr == "" {
				if err != nil || g == nil {
					t.Fatalf("NewGeneric = %v, %v; want a hook", g, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || g != nil {
				t.Fatalf("NewGeneric = %v, %v; want error containing %q", g, err, tt.wantErr)
			}
		})
	}
	if _, err := NewGeneric(GenericOptions{}); err == nil {
		t.Error("NewGeneric accepted the zero options")
	}
}

func TestGenericTokenWithInnerSpace(t *testing.T) {
	var triggered atomic.Int64
	g, err := NewGeneric(GenericOptions{Token: []byte("a b"), OnTrigger: func() { triggered.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/hooks/generic", nil)
	req.Header.Set("Authorization", "Bearer a b")
	if rec := serve(g, req); rec.Code != http.StatusAccepted || triggered.Load() != 1 {
		t.Fatalf("status %d, %d triggers; want 202 and 1", rec.Code, triggered.Load())
	}
}
