package main

import "fmt"

// benchPlan measures the planner on a converged fleet (nothing to do):
// reconciler's BenchmarkPlanNoop, services of 10 instances and one big
// service, against the goals (10,000 instances under 5 ms,
// 100,000 under 50 ms).
func benchPlan(h *H) error {
	res, err := h.GoBench("reconciler", "BenchmarkPlanNoop", "20x", h.Rounds)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		sub, figure, before string
		goal                float64
	}{
		{"services/10000", "no-op plan of 10,000 instances (services of 10)", "16.6 ms", 0.005},
		{"one/10000", "no-op plan of 10,000 instances (one service)", "—", 0.005},
		{"services/100000", "no-op plan of 100,000 instances (services of 10)", "—", 0.050},
		{"one/100000", "no-op plan of 100,000 instances (one service)", "—", 0.050},
	} {
		ns := res[c.sub]["ns/op"]
		if len(ns) == 0 {
			return fmt.Errorf("BenchmarkPlanNoop/%s: no result", c.sub)
		}
		h.Add(Row{Figure: c.figure, Unit: "s", Molt: ns.Scale(1e-9), Comparator: "goal", Goal: c.goal, Before: c.before})
	}
	h.Note("Planner: `go test -bench BenchmarkPlanNoop ./reconciler` (%d runs of 20 plans each): PlanFleet on a converged fleet listed in random order.", h.Rounds)
	return nil
}
