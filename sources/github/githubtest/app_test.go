package githubtest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v60/github"
	"github.com/molt-dev/molt/sources/github/githubtest"
)

var keys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

// jwt makes a JWT with the given header and claims, signed RS256 by key.
func jwt(t *testing.T, key *rsa.PrivateKey, header string, claims map[string]any) string {
	t.Helper()
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

const rs256 = `{"alg":"RS256","typ":"JWT"}`

// clock is a settable time line for the server.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func startApp(t *testing.T, edit func(*githubtest.App)) (*githubtest.Server, *clock) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	app := &githubtest.App{ID: 99, PublicKey: &keys()[0].PublicKey}
	if edit != nil {
		edit(app)
	}
	return githubtest.Start(t, githubtest.Options{Now: clk.Now, App: app}), clk
}

// call sends a request with an Authorization header and returns the
// status and the decoded JSON body.
func call(t *testing.T, method, url, auth, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(bytes.TrimSpace(b)) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode, out
}

// TestAppJWT: the app's endpoints take only a JWT that the app's key
// signed, with its id as iss, iat not in the future and exp within ten
// minutes; anything else is GitHub's 401.
func TestAppJWT(t *testing.T) {
	s, clk := startApp(t, nil)
	now := clk.Now().Unix()
	good := map[string]any{"iat": now - 60, "exp": now + 540, "iss": "99"}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name    string
		auth    string
		status  int
		message string
	}{
		{"valid, iss a string", "Bearer " + jwt(t, keys()[0], rs256, good), 201, ""},
		{"valid, iss a number", "Bearer " + jwt(t, keys()[0], rs256, with("iss", 99)), 201, ""},
		{"signed by another key", "Bearer " + jwt(t, keys()[1], rs256, good), 401, "A JSON web token could not be decoded"},
		{"another alg", "Bearer " + jwt(t, keys()[0], `{"alg":"HS256","typ":"JWT"}`, good), 401, "A JSON web token could not be decoded"},
		{"another app", "Bearer " + jwt(t, keys()[0], rs256, with("iss", "98")), 401, "A JSON web token could not be decoded"},
		{"no iss", "Bearer " + jwt(t, keys()[0], rs256, with("iss", nil)), 401, "'Issuer' claim ('iss') must be an Integer"},
		{"issued in the future", "Bearer " + jwt(t, keys()[0], rs256, with("iat", now+30)), 401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"},
		{"expired", "Bearer " + jwt(t, keys()[0], rs256, with("exp", now)), 401, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"},
		{"too long", "Bearer " + jwt(t, keys()[0], rs256, with("exp", now+660)), 401, "'Expiration time' claim ('exp') is too far in the future"},
		{"not a JWT", "Bearer " + s.Token(), 401, "A JSON web token could not be decoded"},
		{"none", "", 401, "Requires authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, "POST", s.URL+"app/installations/1/access_tokens", tt.auth, "")
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.status != 201 {
				if body["message"] != tt.message || body["documentation_url"] == nil || body["status"] != "401" {
					t.Errorf("body %v, want message %q", body, tt.message)
				}
				return
			}
			tok, _ := body["token"].(string)
			if !strings.HasPrefix(tok, "ghs_") || body["expires_at"] != "2026-03-01T13:00:00Z" {
				t.Errorf("body %v: want a ghs_ token expiring in an hour", body)
			}
		})
	}
}

// TestInstallationTokenLifetime: an installation token works on the
// repository until it expires (by the server's clock) or is revoked;
// then it is answered 401 "Bad credentials".
func TestInstallationTokenLifetime(t *testing.T) {
	s, clk := startApp(t, func(a *githubtest.App) { a.TokenTTL = 10 * time.Minute })
	seed(s)
	now := clk.Now().Unix()
	appJWT := "Bearer " + jwt(t, keys()[0], rs256, map[string]any{"iat": now - 60, "exp": now + 540, "iss": 99})
	exchange := func() string {
		t.Helper()
		status, body := call(t, "POST", s.URL+"app/installations/1/access_tokens", appJWT, `{"repositories":["fleet"]}`)
		if status != 201 {
			t.Fatalf("exchange: %d %v", status, body)
		}
		return body["token"].(string)
	}
	comments := s.URL + "repos/octo-org/fleet/issues/1/comments"
	tok := exchange()
	if status, _ := call(t, "GET", comments, "token "+tok, ""); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	clk.advance(10 * time.Minute)
	status, body := call(t, "GET", comments, "token "+tok, "")
	if status != 401 || body["message"] != "Bad credentials" || body["documentation_url"] == nil {
		t.Errorf("expired token: %d %v, want 401 Bad credentials", status, body)
	}
	if ts := s.InstallationTokens(); len(ts) != 1 || ts[0].Token != tok || !ts[0].Expires.Equal(clk.Now()) {
		t.Errorf("issued %+v", ts)
	}

	clk.advance(-5 * time.Minute) // valid again, until revoked
	if status, _ := call(t, "GET", comments, "Bearer "+tok, ""); status != 200 {
		t.Fatalf("token within its time: %d", status)
	}
	s.RevokeInstallationTokens()
	if status, _ := call(t, "GET", comments, "Bearer "+tok, ""); status != 401 {
		t.Errorf("revoked token: %d, want 401", status)
	}

	// Scoped to another repository: GitHub's 422.
	if status, body := call(t, "POST", s.URL+"app/installations/1/access_tokens", appJWT, `{"repositories":["other"]}`); status != 422 {
		t.Errorf("token for another repository: %d %v", status, body)
	}
	// Another installation: 404.
	if status, _ := call(t, "POST", s.URL+"app/installations/2/access_tokens", appJWT, ""); status != 404 {
		t.Errorf("another installation: %d", status)
	}
	// The app's endpoints do not take an installation token.
	if status, _ := call(t, "POST", s.URL+"app/installations/1/access_tokens", "Bearer "+exchange(), ""); status != 401 {
		t.Errorf("exchange with an installation token: %d", status)
	}
}

// TestRepositoryInstallation: GET /repos/{o}/{r}/installation answers the
// installation to the app's JWT, as go-github reads it.
func TestRepositoryInstallation(t *testing.T) {
	s, clk := startApp(t, func(a *githubtest.App) { a.InstallationID = 4242 })
	now := clk.Now().Unix()
	c := client(t, s, jwt(t, keys()[0], rs256, map[string]any{"iat": now - 60, "exp": now + 540, "iss": "99"}))
	ctx := context.Background()
	inst, _, err := c.Apps.FindRepositoryInstallation(ctx, "Octo-Org", "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if inst.GetID() != 4242 || inst.GetAppID() != 99 || inst.GetAccount().GetLogin() != "octo-org" || inst.GetAppSlug() != "molt" {
		t.Errorf("installation %+v", inst)
	}
	if _, _, err := c.Apps.FindRepositoryInstallation(ctx, "octo-org", "other"); !isStatus(err, 404) {
		t.Errorf("another repository: %v, want 404", err)
	}
	it, _, err := c.Apps.CreateInstallationToken(ctx, 4242, &gh.InstallationTokenOptions{Repositories: []string{"fleet"}})
	if err != nil {
		t.Fatal(err)
	}
	if it.GetExpiresAt().Time != clk.Now().Add(time.Hour) || len(it.Repositories) != 1 || it.GetPermissions().GetStatuses() != "write" {
		t.Errorf("token %+v", it)
	}
	if _, _, err := client(t, s, it.GetToken()).Apps.FindRepositoryInstallation(ctx, "octo-org", "fleet"); !isStatus(err, 401) {
		t.Errorf("with the installation token: %v, want 401", err)
	}
}

// TestInstallationPermissions: what an installation token creates is
// the app's bot's; what its permissions do not cover is GitHub's 403.
func TestInstallationPermissions(t *testing.T) {
	s, clk := startApp(t, func(a *githubtest.App) {
		a.Permissions = map[string]string{"pull_requests": "write", "contents": "read"}
	})
	_, c1, pr := seed(s)
	now := clk.Now().Unix()
	app := client(t, s, jwt(t, keys()[0], rs256, map[string]any{"iat": now - 60, "exp": now + 540, "iss": "99"}))
	ctx := context.Background()
	it, _, err := app.Apps.CreateInstallationToken(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, s, it.GetToken())
	made, _, err := c.Issues.CreateComment(ctx, "octo-org", "fleet", pr, &gh.IssueComment{Body: gh.String("plan")})
	if err != nil || made.GetUser().GetLogin() != "molt[bot]" || made.GetUser().GetType() != "Bot" {
		t.Fatalf("comment %+v, %v: want it by molt[bot]", made, err)
	}
	_, _, err = c.Repositories.CreateStatus(ctx, "octo-org", "fleet", c1, &gh.RepoStatus{State: gh.String("success")})
	var er *gh.ErrorResponse
	if !isStatus(err, 403) || !asError(err, &er) || er.Message != "Resource not accessible by integration" {
		t.Errorf("status without statuses permission: %v, want 403 Resource not accessible by integration", err)
	}
	if _, _, err := c.Git.GetRef(ctx, "octo-org", "fleet", "heads/main"); err != nil {
		t.Errorf("read with contents: read: %v", err)
	}
	if _, _, err := c.Git.CreateRef(ctx, "octo-org", "fleet", &gh.Reference{Ref: gh.String("refs/heads/x"), Object: &gh.GitObject{SHA: gh.String(c1)}}); !isStatus(err, 403) {
		t.Errorf("write with contents: read: %v, want 403", err)
	}
	// The token of Options still works, as its own user.
	st, _, err := client(t, s, s.Token()).Repositories.CreateStatus(ctx, "octo-org", "fleet", c1, &gh.RepoStatus{State: gh.String("success"), TargetURL: gh.String("https://molt.example/")})
	if err != nil || st.GetCreator().GetLogin() != "molt-bot" || st.GetTargetURL() != "https://molt.example/" {
		t.Errorf("status with the token: %+v, %v", st, err)
	}
	creds := map[string]int{}
	for _, r := range s.Requests() {
		creds[r.Credential]++
	}
	if want := map[string]int{"jwt": 1, "installation": 4, "token": 1}; fmt.Sprint(creds) != fmt.Sprint(want) {
		t.Errorf("credentials %v, want %v", creds, want)
	}
}

func isStatus(err error, code int) bool {
	var er *gh.ErrorResponse
	return asError(err, &er) && er.Response.StatusCode == code
}

func asError(err error, er **gh.ErrorResponse) bool {
	return errors.As(err, er) && (*er).Response != nil
}
