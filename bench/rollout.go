package main

import "fmt"

// benchRollouts measures rollouts of 20 instances over the in-memory
// target on the real clock (reconciler's BenchmarkRollingRollout20 and
// BenchmarkBlueGreenRollout20: each instance listens 12 ms after it
// starts), against the ideal: every batch as fast as its instances turn
// healthy (rolling, maxSurge 5: 4 batches; blue-green: 1).
func benchRollouts(h *H) error {
	const startToHealthy = 0.012 // s: reconciler's startToHealthy
	for _, c := range []struct {
		bench, figure, before string
		batches               float64
	}{
		{"BenchmarkRollingRollout20", "rolling rollout of 20 instances, maxSurge 5", "1.31 s", 4},
		{"BenchmarkBlueGreenRollout20", "blue-green rollout of 20 instances", "0.23 s", 1},
	} {
		res, err := h.GoBench("reconciler", c.bench, "5x", h.Rounds)
		if err != nil {
			return err
		}
		ms := res[""]["ms/rollout"]
		if len(ms) == 0 {
			return fmt.Errorf("%s reported no ms/rollout", c.bench)
		}
		ideal := c.batches * startToHealthy
		h.Add(Row{Figure: c.figure, Unit: "s", Molt: ms.Scale(1e-3),
			Comparator: fmt.Sprintf("ideal: %.0f batch(es) × 12 ms start-to-healthy", c.batches),
			Comp:       Samples{ideal}, Goal: 2, Before: c.before})
		if passes := res[""]["passes/op"]; len(passes) > 0 {
			h.Add(Row{Figure: c.figure + ": passes", Unit: "passes", Molt: passes})
		}
	}
	h.Note("Rollouts: `go test -bench 'Rollout20' ./reconciler` (%d runs of 5 rollouts each), the executor over the in-memory target and front, "+
		"instances listening 12 ms after they start, health probed from 2 ms doubling, the real clock; the figure is the wall time from v1 to v2 "+
		"(v1's own rollout not counted). The goal (the issue's) is 2× the ideal.", h.Rounds)
	return nil
}
