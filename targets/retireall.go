package targets

import (
	"context"
	"strings"
	"sync"
)

// BatchRetirer is implemented by targets that retire many instances at
// once for less than one Retire each (the process target reads /proc once
// per batch instead of once per instance).
type BatchRetirer interface {
	// RetireAll retires ids, at most bound at once, and returns the
	// error of each, as Retire's.
	RetireAll(ctx context.Context, ids []string, bound int) []error
}

// RetireAll retires ids on t, at most bound at once: by t's own RetireAll
// when it has one, else by Retire in parallel. It returns the error of
// each id; one that fails does not stop the others, and when ctx ends the
// retires not yet started fail with its error.
func RetireAll(ctx context.Context, t Target, ids []string, bound int) []error {
	if b, ok := t.(BatchRetirer); ok {
		return b.RetireAll(ctx, ids, bound)
	}
	errs := make([]error, len(ids))
	sem := make(chan struct{}, max(bound, 1))
	var wg sync.WaitGroup
	for i, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = t.Retire(ctx, id)
		})
	}
	wg.Wait()
	return errs
}

// RetireAll retires the process instances and the docker ones side by
// side, each on its target's own terms.
func (k ByKind) RetireAll(ctx context.Context, ids []string, bound int) []error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for _, docker := range []bool{false, true} {
		var idx []int
		var mine []string
		for i, id := range ids {
			if strings.Contains(id, "/") == docker {
				idx, mine = append(idx, i), append(mine, id)
			}
		}
		if len(mine) == 0 {
			continue
		}
		t, err := k.pick(docker)
		if err != nil {
			for _, i := range idx {
				errs[i] = err
			}
			continue
		}
		wg.Go(func() {
			for j, err := range RetireAll(ctx, t, mine, bound) {
				errs[idx[j]] = err
			}
		})
	}
	wg.Wait()
	return errs
}

var _ BatchRetirer = ByKind{}
