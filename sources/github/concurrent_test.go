package github

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// post sends a delivery to a real server and returns the status.
func post(client *http.Client, url string, d delivery) (int, error) {
	src := d.request()
	req, err := http.NewRequest(http.MethodPost, url+"/hooks/github", bytes.NewReader(d.body))
	if err != nil {
		return 0, err
	}
	req.Header = src.Header
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

func TestReceiverConcurrentDeliveries(t *testing.T) {
	var c calls
	r := newTestReceiver(t, testOptions(&c))
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/github", r)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	pushBody := payload(t, "push.with-new-branch.json")
	pullBody := payload(t, "pull_request.synchronize.json")
	const n = 200
	statuses := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d := delivery{event: "push", id: fmt.Sprintf("push-%d", i), body: pushBody}
			if i%2 == 1 {
				d = delivery{event: "pull_request", id: fmt.Sprintf("pull-%d", i), body: pullBody}
			}
			statuses[i], errs[i] = post(srv.Client(), srv.URL, d)
		})
	}
	wg.Wait()

	for i := range n {
		if errs[i] != nil || statuses[i] != http.StatusAccepted {
			t.Errorf("delivery %d: status %d, error %v; want 202", i, statuses[i], errs[i])
		}
	}
	push, pulls := c.get()
	seen := map[string]int{}
	for _, ev := range append(push, pulls...) {
		seen[ev.Delivery]++
	}
	for i := range n {
		id := fmt.Sprintf("push-%d", i)
		if i%2 == 1 {
			id = fmt.Sprintf("pull-%d", i)
		}
		if seen[id] != 1 {
			t.Errorf("delivery %s: %d callbacks, want 1", id, seen[id])
		}
	}
	if len(push) != n/2 || len(pulls) != n/2 {
		t.Errorf("%d pushes and %d pull requests, want %d of each", len(push), len(pulls), n/2)
	}
	if want := (Counts{Accepted: n}); r.Counts() != want {
		t.Errorf("counts = %+v, want %+v", r.Counts(), want)
	}
}

func TestReceiverConcurrentRedeliveries(t *testing.T) {
	var c calls
	r := newTestReceiver(t, testOptions(&c))
	body := payload(t, "push.with-new-branch.json")
	const n = 50
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = serve(r, delivery{event: "push", body: body}.request()).Code })
	}
	wg.Wait()

	accepted := 0
	for _, code := range codes {
		if code == http.StatusAccepted {
			accepted++
		}
	}
	push, _ := c.get()
	if accepted != 1 || len(push) != 1 {
		t.Errorf("%d answered 202 and %d callbacks, want 1 and 1 (codes %v)", accepted, len(push), codes)
	}
	if want := (Counts{Accepted: 1, Duplicate: n - 1}); r.Counts() != want {
		t.Errorf("counts = %+v, want %+v", r.Counts(), want)
	}
}
