package github

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/github/githubtest"
)

// testKeys are two RSA keys, made once: the app's, and another.
var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
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

const testAppID = 424242

// newAppFixture is a test GitHub with the app installed (edited by
// editApp) and a Client that authenticates as the app with key, on one
// fake clock.
func newAppFixture(t *testing.T, key *rsa.PrivateKey, installation int64, editApp func(*githubtest.App)) *fixture {
	t.Helper()
	clock := newFakeClock()
	app := &githubtest.App{ID: testAppID, PublicKey: &testKeys()[0].PublicKey, InstallationID: 7}
	if editApp != nil {
		editApp(app)
	}
	srv := githubtest.Start(t, githubtest.Options{Now: clock.Now, App: app})
	c, err := NewClient(ClientOptions{
		App:    &AppAuth{ID: testAppID, Key: key, InstallationID: installation},
		APIURL: srv.URL, Owner: srv.Owner(), Repo: srv.Repo(), Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{clock: clock, srv: srv, client: c}
}

// requestLines are the requests the server saw, as "METHOD PATH STATUS
// CREDENTIAL".
func requestLines(srv *githubtest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		out = append(out, strings.Join([]string{r.Method, r.Path, http.StatusText(r.Status), r.Credential}, " "))
	}
	return out
}

func exchanges(srv *githubtest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/access_tokens") {
			n++
		}
	}
	return n
}

func TestSignJWT(t *testing.T) {
	key := testKeys()[0]
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	jwt, err := signJWT(testAppID, key, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q: want three parts", jwt)
	}
	var head map[string]string
	var claims map[string]any
	for i, v := range []any{&head, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if head["alg"] != "RS256" || head["typ"] != "JWT" {
		t.Errorf("header %v", head)
	}
	if claims["iat"] != float64(now.Unix()-60) || claims["exp"] != float64(now.Add(9*time.Minute).Unix()) || claims["iss"] != "424242" {
		t.Errorf("claims %v: want iat now-60s, exp now+9m, iss the app id", claims)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature does not verify with the app's public key: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(&testKeys()[1].PublicKey, crypto.SHA256, digest[:], sig); err == nil {
		t.Error("signature verifies with another key")
	}
}

func TestParseAppKey(t *testing.T) {
	key := testKeys()[0]
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(typ string, der []byte, headers map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers})
	}
	tests := []struct {
		name string
		pem  []byte
		want string // "" for the key
	}{
		{"PKCS#1, as GitHub downloads it", encode("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), nil), ""},
		{"PKCS#8", encode("PRIVATE KEY", pkcs8, nil), ""},
		{"with text around it", append([]byte("key for molt\n"), encode("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), nil)...), ""},
		{"not PEM", []byte("ghs_0123456789"), "not PEM"},
		{"a public key", encode("PUBLIC KEY", []byte{1, 2, 3}, nil), `"PUBLIC KEY" block`},
		{"an EC key", encode("PRIVATE KEY", ecDER, nil), "not an RSA key"},
		{"encrypted", encode("RSA PRIVATE KEY", []byte{1, 2, 3}, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}), "encrypted"},
		{"damaged", encode("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)[:100], nil), "PKCS#1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAppKey(tt.pem)
			if tt.want == "" {
				if err != nil || !got.Equal(key) {
					t.Fatalf("ParseAppKey = %v, want the key", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseAppKey = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestAppInstallationToken: the app finds its installation from the
// repository and exchanges a JWT (that the server verified) for an
// installation token, which then carries a status and a comment, and is
// exchanged only once for both.
func TestAppInstallationToken(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 0, nil)
	_, c1 := f.history()
	pr := f.srv.AddPull(githubtest.PullSeed{Title: "web", Head: "web", Base: "main", HeadSHA: c1})
	ctx := context.Background()
	if err := f.client.Deliver(ctx, Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateSuccess}}); err != nil {
		t.Fatal(err)
	}
	if err := f.client.Deliver(ctx, Report{Plan: &PlanInput{PR: pr, SHA: c1}}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /repos/octo-org/fleet/installation OK jwt",
		"POST /app/installations/7/access_tokens Created jwt",
		"POST /repos/octo-org/fleet/statuses/" + c1 + " Created installation",
		"GET /repos/octo-org/fleet/issues/1/comments OK installation",
		"POST /repos/octo-org/fleet/issues/1/comments Created installation",
	}
	if got := requestLines(f.srv); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := f.srv.Statuses(c1); len(st) != 1 || st[0].Creator != "molt[bot]" {
		t.Errorf("statuses %+v: want one, by molt[bot]", st)
	}
	if cs := f.srv.Comments(pr); len(cs) != 1 || cs[0].User != "molt[bot]" {
		t.Errorf("comments %+v: want one, by molt[bot]", cs)
	}
}

// TestAppTokenRenewedBeforeExpiry: five minutes before the installation
// token expires (by the clock the client and the server share), the next
// request gets a fresh one; the old one would have been refused soon.
func TestAppTokenRenewedBeforeExpiry(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 7, nil)
	_, c1 := f.history()
	ctx := context.Background()
	set := func() {
		t.Helper()
		if err := f.client.SetStatus(ctx, c1, ContextDeploy, StatePending, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	set()
	first := f.srv.InstallationTokens()
	if len(first) != 1 {
		t.Fatalf("tokens %v, want one", first)
	}
	f.clock.Advance(50 * time.Minute)
	set()
	if n := exchanges(f.srv); n != 1 {
		t.Fatalf("%d exchanges 50 minutes into an hour-long token, want 1", n)
	}
	f.clock.Advance(first[0].Expires.Sub(f.clock.Now()) - 4*time.Minute) // 4 minutes before expiry
	set()
	if n := exchanges(f.srv); n != 2 {
		t.Fatalf("%d exchanges 4 minutes before expiry, want 2", n)
	}
	f.clock.Advance(2 * time.Hour) // long past both
	set()
	if n := exchanges(f.srv); n != 3 {
		t.Fatalf("%d exchanges after expiry, want 3", n)
	}
	for _, r := range f.srv.Requests() {
		if r.Status == http.StatusUnauthorized {
			t.Errorf("refused: %s %s", r.Method, r.Path)
		}
	}
	if n := len(f.srv.Statuses(c1)); n != 4 {
		t.Errorf("%d statuses, want 4", n)
	}
}

// TestAppTokenRenewedAfter401: a token revoked on GitHub's side is
// answered 401; the client exchanges the JWT again and sends the request
// once more, so the status is set, once.
func TestAppTokenRenewedAfter401(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 7, nil)
	_, c1 := f.history()
	ctx := context.Background()
	rep := Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StatePending}}
	if err := f.client.Deliver(ctx, rep); err != nil {
		t.Fatal(err)
	}
	f.srv.RevokeInstallationTokens()
	rep.Status.State = StateSuccess
	if err := f.client.Deliver(ctx, rep); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /app/installations/7/access_tokens Created jwt",
		"POST /repos/octo-org/fleet/statuses/" + c1 + " Created installation",
		"POST /repos/octo-org/fleet/statuses/" + c1 + " Unauthorized ",
		"POST /app/installations/7/access_tokens Created jwt",
		"POST /repos/octo-org/fleet/statuses/" + c1 + " Created installation",
	}
	if got := requestLines(f.srv); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := f.srv.Statuses(c1); len(st) != 2 || st[1].State != StateSuccess {
		t.Errorf("statuses %+v", st)
	}

	// Refused again with the fresh token: sent twice, not in a loop, and
	// a permanent 401 for the queue.
	before := len(f.srv.Requests())
	f.srv.Inject(2, githubtest.Fault{Status: http.StatusUnauthorized, Path: "/repos/octo-org/fleet/statuses/"})
	err := f.client.Deliver(ctx, rep)
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized || !Permanent(err) {
		t.Fatalf("err = %v, want a permanent 401", err)
	}
	want = []string{
		"POST /repos/octo-org/fleet/statuses/" + c1 + " Unauthorized installation",
		"POST /app/installations/7/access_tokens Created jwt",
		"POST /repos/octo-org/fleet/statuses/" + c1 + " Unauthorized installation",
	}
	if got := requestLines(f.srv)[before:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAppWrongKey: a JWT signed with a key that is not the app's is
// refused by GitHub; the error says what to check, is permanent, and
// the exchange is not tried again by every report for a while.
func TestAppWrongKey(t *testing.T) {
	f := newAppFixture(t, testKeys()[1], 7, nil)
	_, c1 := f.history()
	ctx := context.Background()
	err := f.client.Deliver(ctx, Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateSuccess}})
	var ae *AppError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Message != "A JSON web token could not be decoded" {
		t.Fatalf("err = %v, want the app's JWT refused", err)
	}
	for _, w := range []string{"github app 424242", "JWT was not accepted", "is the key one of app 424242's private keys"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if !Permanent(err) {
		t.Errorf("a refused JWT is not permanent: %v", err)
	}
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized || re.Permission != PermStatuses {
		t.Errorf("err = %v, want it counted as a 401 for statuses", err)
	}
	if n := len(f.srv.Statuses(c1)); n != 0 {
		t.Errorf("%d statuses set", n)
	}
	_ = f.client.Deliver(ctx, Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateFailure}})
	if n := exchanges(f.srv); n != 1 {
		t.Errorf("%d exchanges within a minute of a refusal, want 1", n)
	}
	f.clock.Advance(appRetryAfter)
	_ = f.client.Deliver(ctx, Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateFailure}})
	if n := exchanges(f.srv); n != 2 {
		t.Errorf("%d exchanges a minute after a refusal, want 2", n)
	}
}

func TestAppNotInstalled(t *testing.T) {
	tests := []struct {
		name         string
		installation int64
		editApp      func(*githubtest.App)
		want         string
	}{
		{"another installation", 99, nil, "installation 99 is not one of app 424242's"},
		{"another app", 0, func(a *githubtest.App) { a.ID = 1 }, "JWT was not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAppFixture(t, testKeys()[0], tt.installation, tt.editApp)
			_, c1 := f.history()
			err := f.client.Deliver(context.Background(), Report{Status: &Status{SHA: c1, Context: ContextPlan, State: StateSuccess}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !Permanent(err) {
				t.Fatalf("err = %v, want a permanent error with %q", err, tt.want)
			}
		})
	}
}

// TestAppRenewalFailsWhileTokenLasts: when renewing fails (GitHub down),
// the current token goes on being used until it expires.
func TestAppRenewalFailsWhileTokenLasts(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 7, nil)
	_, c1 := f.history()
	ctx := context.Background()
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StatePending, "", ""); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(57 * time.Minute)
	f.srv.Inject(1, githubtest.ServerError(http.StatusBadGateway)) // the exchange
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); err != nil {
		t.Fatalf("with 3 minutes left on the token: %v", err)
	}
	if n := len(f.srv.Statuses(c1)); n != 2 {
		t.Errorf("%d statuses, want 2", n)
	}
	f.clock.Advance(5 * time.Minute) // expired; GitHub is back
	if err := f.client.SetStatus(ctx, c1, ContextPlan, StateSuccess, "", ""); err != nil {
		t.Fatal(err)
	}
	if n := exchanges(f.srv); n != 3 {
		t.Errorf("%d exchanges, want 3 (one failed)", n)
	}
}

// TestAppConcurrentRequestsShareOneExchange: requests that all need a
// token at once wait for one exchange.
func TestAppConcurrentRequestsShareOneExchange(t *testing.T) {
	f := newAppFixture(t, testKeys()[0], 7, nil)
	_, c1 := f.history()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.client.PullsOf(context.Background(), c1); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := exchanges(f.srv); n != 1 {
		t.Errorf("%d exchanges for 8 concurrent requests, want 1", n)
	}
}
