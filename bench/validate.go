package main

import (
	"fmt"
	"github.com/molt-dev/molt/schema/schematest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// benchValidate compares `molt validate DIR` with `cue vet -c` run with the
// printed schema on the same fleet (what a user would run instead), at
// 1,000 and 5,000 services: wall time and the peak memory of the whole
// process tree (molt and its evaluation child together).
func benchValidate(h *H) error {
	cue, err := h.Tool("cue")
	if err != nil {
		return err
	}
	schema := filepath.Join(h.Tmp, "molt_schema.cue")
	out, err := exec.Command(h.Molt, "schema").Output()
	if err != nil {
		return fmt.Errorf("molt schema: %w", err)
	}
	if err := os.WriteFile(schema, out, 0o644); err != nil {
		return err
	}
	// Runs of under a second are moved most by the machine's noise: they
	// get more rounds; the slowest fewer.
	small, large := 3*h.Rounds, min(h.Rounds, 3)
	for _, size := range []struct {
		services, rounds int
		time, memory     string // the figures when the issue was filed
	}{
		{1000, small, "0.72 s", "248 MiB"},
		{5000, large, "3.77 s", "1,051 MiB"},
	} {
		dir := filepath.Join(h.Tmp, fmt.Sprintf("fleet%d", size.services))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fleet := filepath.Join(dir, "fleet.cue")
		if err := os.WriteFile(fleet, schematest.GeneratedFleet(size.services), 0o644); err != nil {
			return err
		}
		h.Logf("validate: %d services, %d rounds", size.services, size.rounds)
		molt, vet, err := h.Alternate(size.rounds, func() (Metrics, error) {
			return measureTree(h.Tmp, h.Molt, "validate", dir)
		}, func() (Metrics, error) {
			return measureTree(h.Tmp, cue, "vet", "-c", schema, fleet)
		})
		if err != nil {
			return err
		}
		n := fmtCount(size.services)
		h.Add(Row{
			Figure: fmt.Sprintf("`molt validate`, %s services", n), Unit: "s",
			Molt: molt["s"], Comparator: "`cue vet -c` with `molt schema`", Comp: vet["s"],
			Goal: 1.0, Before: size.time,
		})
		h.Add(Row{
			Figure: fmt.Sprintf("`molt validate`, %s services, peak memory", n), Unit: "MiB",
			Molt: molt["MiB"], Comparator: "`cue vet -c` with `molt schema`", Comp: vet["MiB"],
			Goal: 1.2, Before: size.memory,
		})
	}
	h.Note("validate: the fleet is one file of generated services (each with a process, env, two ports, an HTTP health check, a blue-green rollout and an exposed address: schematest.GeneratedFleet), in a directory that `molt validate DIR` loads; `cue vet -c molt_schema.cue fleet.cue` checks the same file against the output of `molt schema`. Both start as fresh processes each round, alternating. Time is wall-clock from start to exit. Memory is the peak of the sum of VmRSS over the process tree (molt and the evaluation child it starts; cue vet alone), sampled from /proc every %s, and never below the largest single-process peak the kernel reports (ru_maxrss). Resident pages of the molt executable shared by parent and child count twice. 1,000 services run %d rounds (a run of under a second moves most with this VM's noise: up to 100 %% from one to the next), 5,000 services %d.", treeSampleEvery, small, large)
	return nil
}

// measureTree runs a command to its end and returns its wall time ("s")
// and the peak resident memory of it and its descendants ("MiB").
func measureTree(dir, name string, args ...string) (Metrics, error) {
	m, err := RunTree(dir, nil, name, args...)
	if err != nil {
		return nil, err
	}
	return Metrics{"s": m.Wall.Seconds(), "MiB": m.TreeRSS}, nil
}

// fmtCount prints 1000 as "1,000".
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
