package router

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets"
)

func TestSchedule(t *testing.T) {
	tests := []struct {
		weights []int
		want    []int // exact order, when given
		counts  []int // occurrences per index over one cycle
	}{
		{weights: nil, counts: []int{}},
		{weights: []int{0}, want: []int{0}},
		{weights: []int{0, 0, 0}, want: []int{0, 1, 2}},
		{weights: []int{1, 1}, want: []int{0, 1}},
		{weights: []int{90, 10}, counts: []int{9, 1}},
		{weights: []int{5, 1, 1}, want: []int{0, 0, 1, 0, 2, 0, 0}}, // nginx's example: spread, not in a run
		{weights: []int{2, 0, 4}, counts: []int{2, 1, 4}},
		{weights: []int{1_000_000, 1}, counts: []int{1000, 1}},
		{weights: []int{999, 1, 1}, counts: []int{998, 1, 1}},
	}
	for _, tc := range tests {
		order := schedule(tc.weights)
		if tc.want != nil {
			if diff := cmp.Diff(tc.want, order); diff != "" {
				t.Errorf("schedule(%v) (-want +got):\n%s", tc.weights, diff)
			}
			continue
		}
		counts := make([]int, len(tc.weights))
		for _, i := range order {
			counts[i]++
		}
		if diff := cmp.Diff(tc.counts, counts); diff != "" {
			t.Errorf("schedule(%v) counts (-want +got):\n%s", tc.weights, diff)
		}
	}
}

func TestPickExcludes(t *testing.T) {
	rt := &route{
		backends: []*backend{{Backend: targets.Backend{Addr: "a"}}, {Backend: targets.Backend{Addr: "b"}}},
		order:    schedule([]int{5, 1}),
	}
	for range 20 {
		if b := rt.pick("a"); b == nil || b.Addr != "b" {
			t.Fatalf("pick excluding a = %v, want b", b)
		}
	}
	one := &route{backends: []*backend{{Backend: targets.Backend{Addr: "a"}}}, order: []int{0}}
	if b := one.pick("a"); b != nil {
		t.Errorf("pick excluding the only backend = %v, want nil", b)
	}
	if b := (&route{}).pick(""); b != nil {
		t.Errorf("pick on an empty route = %v, want nil", b)
	}
}
