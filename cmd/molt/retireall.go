package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/molt-dev/molt/targets"
)

// retireBound is how many instances `molt down` retires at once: enough
// that a stop grace is waited out by many instances together, few enough
// that an engine or the machine is not flooded.
const retireBound = 16

// retireAll retires the instances ids on t, at most bound at once. A
// retire that fails does not stop the others: it returns how many were
// retired and, when any failed, an error naming each that did. If ctx
// ends, the retires not yet started fail with its error.
func retireAll(ctx context.Context, t targets.Target, ids []string, bound int) (int, error) {
	errs := targets.RetireAll(ctx, t, ids, bound)
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", ids[i], err))
		}
	}
	if len(failed) > 0 {
		return len(ids) - len(failed), fmt.Errorf("%d of %d instance(s) not retired: %s",
			len(failed), len(ids), strings.Join(failed, "; "))
	}
	return len(ids), nil
}
