package targets

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHistogramQuantile(t *testing.T) {
	ms := time.Millisecond
	bounds := []time.Duration{10 * ms, 20 * ms, 50 * ms}
	tests := []struct {
		name   string
		h      Histogram
		q      float64
		want   time.Duration
		events int64
	}{
		{"zero histogram", Histogram{}, 0.5, 0, 0},
		{"empty", Histogram{Bounds: bounds, Counts: []int64{0, 0, 0, 0}}, 0.99, 0, 0},
		{"one bucket, median", Histogram{Bounds: bounds, Counts: []int64{0, 10, 0, 0}}, 0.5, 15 * ms, 10},
		{"one bucket, top", Histogram{Bounds: bounds, Counts: []int64{0, 10, 0, 0}}, 1, 20 * ms, 10},
		{"one bucket, bottom", Histogram{Bounds: bounds, Counts: []int64{0, 10, 0, 0}}, 0, 10 * ms, 10},
		{"first bucket starts at 0", Histogram{Bounds: bounds, Counts: []int64{4, 0, 0, 0}}, 0.25, 2500 * time.Microsecond, 4},
		{"spread, median", Histogram{Bounds: bounds, Counts: []int64{50, 30, 20, 0}}, 0.5, 10 * ms, 100},
		{"spread, p90", Histogram{Bounds: bounds, Counts: []int64{50, 30, 20, 0}}, 0.9, 35 * ms, 100},
		{"spread, p60", Histogram{Bounds: bounds, Counts: []int64{50, 30, 20, 0}}, 0.6, 10*ms + 10*ms/3, 100},
		{"skips empty buckets", Histogram{Bounds: bounds, Counts: []int64{1, 0, 1, 0}}, 0.75, 35 * ms, 2},
		{"+Inf bucket gives the last bound", Histogram{Bounds: bounds, Counts: []int64{90, 0, 0, 10}}, 0.99, 50 * ms, 100},
		{"below the +Inf bucket", Histogram{Bounds: bounds, Counts: []int64{90, 0, 0, 10}}, 0.9, 10 * ms, 100},
		{"only +Inf, no bound", Histogram{Counts: []int64{3}}, 0.5, 0, 3},
		{"q above 1 is 1", Histogram{Bounds: bounds, Counts: []int64{0, 0, 2, 0}}, 7, 50 * ms, 2},
		{"q below 0 is 0", Histogram{Bounds: bounds, Counts: []int64{0, 0, 2, 0}}, -1, 20 * ms, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.Quantile(tc.q); got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
			if got := tc.h.Total(); got != tc.events {
				t.Errorf("Total = %d, want %d", got, tc.events)
			}
		})
	}
}

func TestCountsErrorRate(t *testing.T) {
	tests := []struct {
		c        Counts
		failures int64
		rate     float64
	}{
		{Counts{}, 0, 0},
		{Counts{Requests: 0, Status5xx: 1}, 1, 0}, // no request: 0, not +Inf
		{Counts{Requests: 10}, 0, 0},
		{Counts{Requests: 10, Status5xx: 2, ProxyErrors: 3}, 5, 0.5},
		{Counts{Requests: 4, ProxyErrors: 4}, 4, 1},
	}
	for _, tc := range tests {
		if f, r := tc.c.Failures(), tc.c.ErrorRate(); f != tc.failures || r != tc.rate {
			t.Errorf("%+v: Failures, ErrorRate = %d, %v; want %d, %v", tc.c, f, r, tc.failures, tc.rate)
		}
	}
}

func TestCountsJSON(t *testing.T) {
	c := Counts{Requests: 9, Status5xx: 2, ProxyErrors: 1, Latency: Histogram{
		Bounds: []time.Duration{time.Millisecond, time.Second}, Counts: []int64{5, 2, 1},
	}}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Counts
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("counts through JSON %s (-want +got):\n%s", data, diff)
	}
}
