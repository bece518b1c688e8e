package router

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// slowBackend answers once release is closed, after telling entered.
func slowBackend(t *testing.T, name, gen string) (b *testBackend, entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 16)
	rel := make(chan struct{})
	b = newBackend(t, name, gen, func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-rel
		w.Write([]byte(name))
	})
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(rel)
		}
	}
	t.Cleanup(release) // before the backend closes (cleanups run last-in first-out)
	return b, in, release
}

func TestDrainWaitsForInFlightRequest(t *testing.T) {
	r := startRouter(t, shortDir(t))
	slow, entered, release := slowBackend(t, "slow", "gena")
	fast := newBackend(t, "fast", "genb", nil)
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, slow.backend(0))

	hc := newHTTPClient(t)
	result := make(chan reply, 1)
	go func() {
		got, err := get(hc, "http://"+listen)
		if err != nil {
			t.Error(err)
		}
		result <- got
	}()
	<-entered
	mustSetWeb(t, r.Client, listen, fast.backend(0))
	if got := mustGet(t, hc, "http://"+listen); got.body != "fast" {
		t.Errorf("new request after the switch answered by %q, want fast", got.body)
	}

	var released atomic.Bool
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(t.Context(), []string{slow.addr}) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned while a request was in flight: %v", err)
	default:
	}
	released.Store(true)
	release()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if !released.Load() {
		t.Error("Drain returned before the in-flight request could finish")
	}
	if got := <-result; got.status != http.StatusOK || got.body != "slow" {
		t.Errorf("in-flight request to the removed backend: %+v, want 200 slow", got)
	}

	// Nothing in flight: Drain returns at once.
	if err := r.Drain(t.Context(), []string{slow.addr, "127.0.0.1:9"}); err != nil {
		t.Errorf("Drain of idle addresses: %v", err)
	}
}

func TestDrainTimeout(t *testing.T) {
	r := startRouter(t, shortDir(t), func(o *Options) { o.DrainTimeout = 100 * time.Millisecond })
	slow, entered, release := slowBackend(t, "slow", "gena")
	listen := freeAddr(t)
	mustSetWeb(t, r.Client, listen, slow.backend(0))
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(newHTTPClient(t), "http://"+listen)
	}()
	<-entered
	mustSetWeb(t, r.Client, listen)
	err := r.Drain(t.Context(), []string{slow.addr})
	if !errors.Is(err, ErrDrainTimeout) {
		t.Errorf("Drain with a request stuck in flight = %v, want ErrDrainTimeout", err)
	}
	release()
	<-done
}

func TestDrainRefusesRoutedBackend(t *testing.T) {
	r := startRouter(t, shortDir(t))
	a := newBackend(t, "a1", "gena", nil)
	mustSetWeb(t, r.Client, freeAddr(t), a.backend(0))
	err := r.Drain(t.Context(), []string{a.addr})
	if err == nil || errors.Is(err, ErrDrainTimeout) {
		t.Errorf("Drain of a backend still in the table = %v, want a refusal", err)
	}
}
