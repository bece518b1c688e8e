package targetstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets"
)

// pollEvery is how often the suite looks again while it waits.
const pollEvery = 50 * time.Millisecond

var client = &http.Client{Timeout: 2 * time.Second}

// get fetches path from endpoint (host:port) and returns status and body.
func get(ctx context.Context, endpoint, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// poll calls cond every pollEvery until it returns true or the harness's
// timeout passes; it returns the last note cond gave.
func poll(t *testing.T, h *Harness, cond func(ctx context.Context) (bool, string)) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), h.timeout())
	defer cancel()
	for {
		ok, note := cond(ctx)
		if ok {
			return true, note
		}
		select {
		case <-ctx.Done():
			return false, note
		case <-time.After(pollEvery):
		}
	}
}

// greeting is what the hello app answers on GET / when VERSION is v.
func greeting(v string) string { return "hello from " + v + "\n" }

// waitAnswer waits until the "http" endpoint of inst answers GET / with
// the greeting of version.
func waitAnswer(t *testing.T, h *Harness, inst targets.Instance, version string) {
	t.Helper()
	ep := httpEndpoint(t, inst)
	ok, note := poll(t, h, func(ctx context.Context) (bool, string) {
		code, body, err := get(ctx, ep, "/")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK && body == greeting(version), fmt.Sprintf("%d %q", code, body)
	})
	if !ok {
		t.Fatalf("instance %s at %s never answered GET / with %q; last: %s", inst.ID, ep, greeting(version), note)
	}
}

// waitSilent waits until endpoint no longer answers GET / with the
// greeting of version (it refuses, or something else answers).
func waitSilent(t *testing.T, h *Harness, endpoint, version string) {
	t.Helper()
	ok, note := poll(t, h, func(ctx context.Context) (bool, string) {
		code, body, err := get(ctx, endpoint, "/")
		if err != nil {
			return true, err.Error()
		}
		return body != greeting(version), fmt.Sprintf("%d %q", code, body)
	})
	if !ok {
		t.Fatalf("%s still answers %q after retire; last: %s", endpoint, greeting(version), note)
	}
}

// getEnv asks the hello app of inst for the value of variable name.
func getEnv(t *testing.T, inst targets.Instance, name string) (string, bool) {
	t.Helper()
	code, body, err := get(t.Context(), httpEndpoint(t, inst), "/env?name="+url.QueryEscape(name))
	if err != nil {
		t.Fatalf("GET /env?name=%s: %v", name, err)
	}
	switch code {
	case http.StatusOK:
		return body, true
	case http.StatusNotFound:
		return "", false
	}
	t.Fatalf("GET /env?name=%s: status %d, body %q", name, code, body)
	return "", false
}

func httpEndpoint(t *testing.T, inst targets.Instance) string {
	t.Helper()
	ep, ok := inst.Endpoints["http"]
	if !ok || ep == "" {
		t.Fatalf("instance %s has no http endpoint: %v", inst.ID, inst.Endpoints)
	}
	return ep
}

// token returns n random bytes in hex: unique names for fleets, versions.
func token(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
