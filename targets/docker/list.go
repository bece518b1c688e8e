package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets"
)

// List returns every container carrying molt's labels on every engine
// that answers, stopped ones included (as Dead), found by label filter
// only. It has no side effects. A container is listed once, under the
// engine it was created through (LabelEngine), or under the first engine
// that sees it when that engine is no longer configured. An engine that
// does not answer within the timeout is logged and skipped: its instances
// are simply not listed (lost, not dead), so that molt replaces them on the
// other engines; Engines then reports it down until a List sees it again. List fails when no engine
// answers, or when an engine answers with an error.
func (t *Target) List(ctx context.Context) ([]targets.Instance, error) {
	type result struct {
		insts []targets.Instance
		err   error
	}
	results := make([]result, len(t.engines))
	var wg sync.WaitGroup
	for i, e := range t.engines {
		wg.Go(func() {
			results[i].insts, results[i].err = t.listEngine(ctx, e)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		all  []targets.Instance
		down []error
		ids  = map[string]bool{} // container ids: one daemon may be configured twice
	)
	now := make(map[string]seen, len(t.engines))
	for i, r := range results {
		e := t.engines[i]
		switch {
		case unreachable(ctx, r.err):
			t.log.Warn("docker engine does not answer; its instances are not listed", "engine", e.Name, "host", e.Host, "error", r.err)
			down = append(down, r.err)
			now[e.Name] = seen{}
		case r.err != nil:
			return nil, r.err
		default:
			st := seen{up: true}
			for _, in := range r.insts {
				if in.State == targets.Running {
					st.running++
				}
			}
			now[e.Name] = st
			for _, in := range r.insts {
				_, cid, _, _ := parseID(in.ID)
				if !ids[cid] {
					ids[cid] = true
					all = append(all, in)
				}
			}
		}
	}
	t.mu.Lock()
	t.seen = now
	t.mu.Unlock()
	if len(down) == len(t.engines) {
		return nil, fmt.Errorf("no docker engine answers: %w", errors.Join(down...))
	}
	return all, nil
}

// listEngine lists the molt containers of engine e, oldest first.
func (t *Target) listEngine(ctx context.Context, e *engine) ([]targets.Instance, error) {
	sctx, cancel := t.short(ctx)
	defer cancel()
	res, err := e.api.ContainerList(sctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelFleet, LabelService, LabelSpecHash),
	})
	if err != nil {
		if unreachable(ctx, err) {
			return nil, fmt.Errorf("engine %s (%s): %w", e.Name, e.Host, err)
		}
		return nil, fmt.Errorf("list containers on engine %s: %w", e.Name, err)
	}
	items := res.Items
	slices.SortFunc(items, func(a, b container.Summary) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.ID, b.ID))
	})
	out := make([]targets.Instance, 0, len(items))
	for _, c := range items {
		if _, ok := labelsOf(c.Labels); !ok {
			continue // the filter should have left it out: not molt's
		}
		if other := c.Labels[LabelEngine]; other != e.Name && t.byName[other] != nil {
			continue // listed by the engine that created it
		}
		published := map[uint16]uint16{}
		for _, p := range c.Ports {
			if p.Type == "tcp" && p.PublicPort != 0 {
				published[p.PrivatePort] = p.PublicPort
			}
		}
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0][min(1, len(c.Names[0])):] // names start with "/"
		}
		detail := fmt.Sprintf("engine %s, container %s: %s", e.Name, name, c.Status)
		out = append(out, t.instance(e, c.ID, c.Labels, c.State == container.StateRunning, published, detail))
	}
	return out, nil
}
