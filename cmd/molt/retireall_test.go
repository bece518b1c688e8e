package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/molt-dev/molt/targets"
)

// gatedTarget is a target whose retires wait at a gate until the test
// opens it, recording how many ran at once and which were retired.
type gatedTarget struct {
	targets.Target // nil: only Retire is called
	entered        chan string
	gate           chan struct{}
	fail           string // the id whose retire fails

	mu           sync.Mutex
	active, peak int
	retired      []string
}

func (g *gatedTarget) Retire(ctx context.Context, id string) error {
	g.mu.Lock()
	g.active++
	g.peak = max(g.peak, g.active)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.active--
		g.mu.Unlock()
	}()
	g.entered <- id
	<-g.gate
	if id == g.fail {
		return errors.New("engine said no")
	}
	g.mu.Lock()
	g.retired = append(g.retired, id)
	g.mu.Unlock()
	return nil
}

// down retires its instances concurrently, never more than retireBound at
// once, and a retire that fails is reported by name while the others
// still go.
func TestRetireAllBoundedAndCollectsErrors(t *testing.T) {
	const n = 3*retireBound + 5
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("web-%03d", i))
	}
	tgt := &gatedTarget{entered: make(chan string, n), gate: make(chan struct{}), fail: ids[7]}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := retireAll(t.Context(), tgt, ids, retireBound)
		done <- result{n, err}
	}()
	// The first retireBound retires all start before any ends.
	for range retireBound {
		<-tgt.entered
	}
	close(tgt.gate)
	r := <-done

	if tgt.peak <= 1 || tgt.peak > retireBound {
		t.Errorf("peak concurrency %d, want more than 1 and at most %d", tgt.peak, retireBound)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), ids[7]) || !strings.Contains(r.err.Error(), "engine said no") {
		t.Errorf("retireAll error = %v, want it to name %s and its cause", r.err, ids[7])
	}
	if r.n != n-1 || len(tgt.retired) != n-1 {
		t.Errorf("retired %d (target saw %d), want %d: the failure stops nothing else", r.n, len(tgt.retired), n-1)
	}
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == ids[7] })
	slices.Sort(tgt.retired)
	if !slices.Equal(tgt.retired, want) {
		t.Errorf("retired %v, want every instance but %s", tgt.retired, ids[7])
	}
}
