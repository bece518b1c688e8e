package main

import "fmt"

// benchDown retires 200 serving hello processes as `molt down` does, 16
// at a time, against one after another (as it did before), both in the
// same go test run (cmd/molt's BenchmarkDown).
func benchDown(h *H) error {
	rounds := min(h.Rounds, 3) // 200 processes started per run and side
	res, err := h.GoBench("cmd/molt", "BenchmarkDown", "1x", rounds)
	if err != nil {
		return err
	}
	par, seq := res["bound=16"]["ns/op"], res["bound=1"]["ns/op"]
	if len(par) == 0 || len(seq) == 0 {
		return fmt.Errorf("BenchmarkDown: want bound=16 and bound=1, got %v", res)
	}
	h.Add(Row{Figure: "`molt down` of 200 instances", Unit: "s", Molt: par.Scale(1e-9),
		Comparator: "one after another (as before)", Comp: seq.Scale(1e-9), Goal: 0.5, Before: "5.8 s"})
	h.Note("Down: `go test -bench BenchmarkDown ./cmd/molt` (%d runs): 200 hello processes, each answering before the retire starts, retired 16 at a time "+
		"and one after another in the same run (sub-benchmarks bound=16, bound=1). The goal, half the sequential time, is ours: the issue asks for a bounded parallel retire.", rounds)
	return nil
}
