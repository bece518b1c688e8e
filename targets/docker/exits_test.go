package docker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/targetstest"
)

// A molt container killed behind molt's back is reported once by
// WatchExits; one that Retire stops is not.
func TestWatchExits(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	fleet := fleetName()
	a := provision(t, tgt, spec(t, tgt, fleet, service("web", e.ref, nil), false))
	b := provision(t, tgt, spec(t, tgt, fleet, service("api", e.ref, nil), false))
	c := provision(t, tgt, spec(t, tgt, fleet, service("job", e.ref, nil), false))
	got := targetstest.WatchExits(t, tgt)
	kill := func(id string) {
		t.Helper()
		_, cid, _ := strings.Cut(id, "/")
		if _, err := e.api.ContainerKill(t.Context(), cid, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			t.Fatal(err)
		}
	}
	next := func() []string {
		t.Helper()
		return targetstest.NextExit(t, got, 20*time.Second)
	}

	// Nothing tells when the stream is open: c is killed until its death
	// is reported.
	var first []string
	for range 10 {
		kill(c.ID)
		select {
		case first = <-got:
		case <-time.After(2 * time.Second):
			if _, err := e.api.ContainerStart(t.Context(), strings.SplitN(c.ID, "/", 2)[1], client.ContainerStartOptions{}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	if !slices.Equal(first, []string{c.ID}) {
		t.Fatalf("reported %v, want [%s]", first, c.ID)
	}

	if err := tgt.Retire(t.Context(), b.ID); err != nil {
		t.Fatal(err)
	}
	kill(a.ID)
	if ids := next(); !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("reported %v, want [%s] (the retired %s is not an exit to report)", ids, a.ID, b.ID)
	}
	select {
	case ids := <-got:
		t.Fatalf("reported again: %v", ids)
	case <-time.After(200 * time.Millisecond):
	}
}

// WatchExitsOf reports only the containers its filter keeps: serve keeps
// its own fleet's, so that the deaths of other fleets' containers on the
// same engine (other molts, other tests) wake no reconcile of its own.
func TestWatchExitsOfFleet(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	mine, other := fleetName(), fleetName()
	a := provision(t, tgt, spec(t, tgt, mine, service("web", e.ref, nil), false))
	b := provision(t, tgt, spec(t, tgt, other, service("web", e.ref, nil), false))
	got := make(chan []string, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- tgt.WatchExitsOf(ctx, func(l targets.Labels) bool { return l.Fleet == mine }, func(ids []string) { got <- ids })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	cid := func(id string) string { _, c, _ := strings.Cut(id, "/"); return c }
	// Nothing tells when the stream is open: both are killed, the other
	// fleet's first, until a death is reported; it must be a's alone.
	for range 10 {
		for _, id := range []string{b.ID, a.ID} {
			if _, err := e.api.ContainerKill(t.Context(), cid(id), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case ids := <-got:
			if !slices.Equal(ids, []string{a.ID}) {
				t.Fatalf("reported %v, want [%s] only (%s is another fleet's)", ids, a.ID, b.ID)
			}
			select {
			case ids := <-got:
				t.Fatalf("reported again: %v (another fleet's death)", ids)
			case <-time.After(300 * time.Millisecond):
			}
			return
		case <-time.After(2 * time.Second):
			for _, id := range []string{b.ID, a.ID} {
				if _, err := e.api.ContainerStart(t.Context(), cid(id), client.ContainerStartOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Fatal("no death reported")
}
