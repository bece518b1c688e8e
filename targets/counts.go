package targets

import (
	"math"
	"time"
)

// Counts are one generation's traffic over a window, as a front reports it
// (the built-in router does; see router.Client.Counts). An attempt is one
// request sent to one backend: a request that a front retries on another
// backend counts once per attempt, in the generation of each backend.
type Counts struct {
	// Requests counts the attempts sent to the generation's backends.
	Requests int64 `json:"requests"`
	// Status5xx counts the attempts answered with a 5xx status.
	Status5xx int64 `json:"5xx"`
	// ProxyErrors counts the attempts that got no response: the connection
	// was refused, reset, or timed out. Attempts that the client gave up
	// on are neither proxy errors nor responses.
	ProxyErrors int64 `json:"proxyErrors"`
	// Latency holds the latency of the attempts that got a response (the
	// front says what it measures; the router measures up to the response
	// headers).
	Latency Histogram `json:"latency"`
}

// Failures is the number of attempts that failed on the backend's side:
// 5xx responses plus proxy errors.
func (c Counts) Failures() int64 { return c.Status5xx + c.ProxyErrors }

// ErrorRate is Failures / Requests, and 0 when there was no request.
func (c Counts) ErrorRate() float64 {
	if c.Requests <= 0 {
		return 0
	}
	return float64(c.Failures()) / float64(c.Requests)
}

// Histogram counts observations in fixed buckets: Counts[i] is the number
// of observations in (Bounds[i-1], Bounds[i]] (from 0 for i == 0), and the
// last count, Counts[len(Bounds)], those above the last bound (the +Inf
// bucket). Bounds are increasing; len(Counts) == len(Bounds)+1, except in
// the zero Histogram, which has no observation.
type Histogram struct {
	Bounds []time.Duration `json:"bounds"`
	Counts []int64         `json:"counts"`
}

// Total is the number of observations.
func (h Histogram) Total() int64 {
	var n int64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (q in [0, 1], clamped) of the
// observations: it finds the bucket that holds it and interpolates
// linearly between the bucket's bounds, as Prometheus's
// histogram_quantile does. A quantile that falls in the +Inf bucket is
// the last bound (the truth is at least that). It is 0 when there is no
// observation.
func (h Histogram) Quantile(q float64) time.Duration {
	total := h.Total()
	if total <= 0 || math.IsNaN(q) {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(total)
	var below int64 // observations in the buckets before i
	for i, c := range h.Counts {
		if c <= 0 {
			continue
		}
		if float64(below+c) < rank {
			below += c
			continue
		}
		if i >= len(h.Bounds) { // +Inf
			if len(h.Bounds) == 0 {
				return 0
			}
			return h.Bounds[len(h.Bounds)-1]
		}
		var lower time.Duration
		if i > 0 {
			lower = h.Bounds[i-1]
		}
		upper := h.Bounds[i]
		frac := (rank - float64(below)) / float64(c)
		return lower + time.Duration(frac*float64(upper-lower))
	}
	return 0 // only negative counts get here
}
