package docker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
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
