package haproxy

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/targets"
)

// HAProxy's counters are cumulative from a server's creation; the front
// turns them into counts over a window by keeping, per server, samples of
// its counters taken whenever it reads them (every Routes, SetRoutes,
// Counts: each pass of the reconciler), at most one every sampleEvery,
// for keepSamples. A window's counts are the counters now minus those of
// the last sample at or before the window's start, or minus zero for a
// server molt added after the start.
const (
	sampleEvery = 5 * time.Second
	keepSamples = 2 * time.Hour
)

// latencyBounds are the latency histogram's bucket bounds (the router's:
// 1, 2, 3, 5 times the powers of ten from 1 ms to 10 s).
var latencyBounds = []time.Duration{
	1 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond,
	1 * time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second,
	10 * time.Second,
}

type sample struct {
	at time.Time
	c  counters
}

// series is the sampled counters of one server of one fleet's service.
type series struct {
	fleet, service, generation string
	// added is when molt added the server (zero: before the front saw it).
	added   time.Time
	samples []sample // oldest first, spaced by sampleEvery
	last    sample   // the newest reading
	gone    bool     // deleted (or lost with a restart of HAProxy): last is final
}

// history holds the series of every server the front saw, by
// "backend/server", and those of deleted servers until keepSamples.
type history struct {
	mu   sync.Mutex
	live map[string]*series
	gone []*series
}

func newHistory() *history { return &history{live: map[string]*series{}} }

// observe records a reading of the servers of fleet's routes (ff).
func (h *history) observe(fleet string, ff fleetFile, servers []server, now time.Time) {
	type owner struct{ service, generation string }
	owners := map[string]owner{} // by server key
	backends := map[string]bool{}
	for _, r := range ff.Routes {
		if r.HAProxy == "" {
			continue
		}
		backends[r.HAProxy] = true
		for _, b := range r.Backends {
			owners[r.HAProxy+"/"+serverName(b.Instance)] = owner{r.Service, b.Generation}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range servers {
		if !backends[s.backend] || !strings.HasPrefix(s.name, ServerPrefix) {
			continue
		}
		k := s.key()
		seen[k] = true
		sr := h.live[k]
		if sr == nil || sr.fleet != fleet {
			o, ok := owners[k]
			if !ok {
				continue // not in the routes, and not seen while it was
			}
			sr = &series{fleet: fleet, service: o.service, generation: o.generation, added: ff.Added[k]}
			h.live[k] = sr
		}
		if s.counters.Requests < sr.last.c.Requests {
			// The counters went back: HAProxy lost the server and it was
			// added again after the last reading.
			h.retire(k, sr)
			sr = &series{fleet: fleet, service: sr.service, generation: sr.generation, added: sr.last.at}
			h.live[k] = sr
		}
		sr.last = sample{now, s.counters}
		if n := len(sr.samples); n == 0 || now.Sub(sr.samples[n-1].at) >= sampleEvery {
			sr.samples = append(sr.samples, sr.last)
		}
		sr.prune(now)
	}
	for k, sr := range h.live {
		if sr.fleet == fleet && backends[k[:strings.Index(k, "/")]] && !seen[k] {
			h.retire(k, sr) // gone from HAProxy
		}
	}
	kept := h.gone[:0]
	for _, sr := range h.gone {
		if now.Sub(sr.last.at) < keepSamples {
			kept = append(kept, sr)
		}
	}
	h.gone = kept
}

// prune drops samples older than keepSamples, but for the newest of them
// (the start of a window that long ago).
func (sr *series) prune(now time.Time) {
	i := 0
	for i+1 < len(sr.samples) && now.Sub(sr.samples[i+1].at) > keepSamples {
		i++
	}
	sr.samples = sr.samples[i:]
}

// retire moves a series to the deleted ones. The caller holds h.mu.
func (h *history) retire(k string, sr *series) {
	delete(h.live, k)
	if !sr.last.at.IsZero() {
		sr.gone = true
		h.gone = append(h.gone, sr)
	}
}

// reset forgets a server's series before molt adds it again: its
// counters start from zero.
func (h *history) reset(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sr, ok := h.live[key]; ok {
		h.retire(key, sr)
	}
}

// final records a server's last reading just before molt deletes it.
func (h *history) final(s server, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sr, ok := h.live[s.key()]; ok {
		if s.counters.Requests >= sr.last.c.Requests {
			sr.last = sample{now, s.counters}
		}
		h.retire(s.key(), sr)
	}
}

// counts sums fleet's counts from since, by service and generation, and
// says from when they actually count: later than since when the front
// holds no reading of some server from before since (molt restarted).
func (h *history) counts(fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]map[string]targets.Counts{}
	from := since
	all := make([]*series, 0, len(h.live)+len(h.gone))
	for _, sr := range h.live {
		all = append(all, sr)
	}
	all = append(all, h.gone...)
	for _, sr := range all {
		if sr.fleet != fleet || (sr.gone && sr.last.at.Before(since)) {
			continue
		}
		var base counters
		switch {
		case !sr.added.IsZero() && !sr.added.Before(since):
			// added inside the window: everything counts
		default:
			i := len(sr.samples) - 1
			for i >= 0 && sr.samples[i].at.After(since) {
				i--
			}
			switch {
			case i >= 0:
				base = sr.samples[i].c
			case len(sr.samples) > 0:
				base = sr.samples[0].c
				from = later(from, sr.samples[0].at)
			default:
				continue
			}
		}
		d := sr.last.c.minus(base)
		if out[sr.service] == nil {
			out[sr.service] = map[string]targets.Counts{}
		}
		c := out[sr.service][sr.generation]
		c.Requests += d.Requests
		c.Status5xx += d.Status5xx
		c.ProxyErrors += d.Errors
		c.Latency = addLatency(c.Latency, time.Duration(sr.last.c.RTimeMS)*time.Millisecond, d.Responses)
		out[sr.service][sr.generation] = c
	}
	return out, from
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (c counters) minus(b counters) counters {
	return counters{
		Requests:  max(0, c.Requests-b.Requests),
		Status5xx: max(0, c.Status5xx-b.Status5xx),
		Errors:    max(0, c.Errors-b.Errors),
		Responses: max(0, c.Responses-b.Responses),
		RTimeMS:   c.RTimeMS,
	}
}

// addLatency counts n responses at latency d. HAProxy reports a server's
// average response time over its last 1024 requests (rtime), not a
// distribution: each server's responses of the window are counted in the
// bucket of its average, so the p99 of a generation is the slowest of its
// servers' averages, bucketed.
func addLatency(h targets.Histogram, d time.Duration, n int64) targets.Histogram {
	if n <= 0 {
		return h
	}
	if h.Counts == nil {
		h.Bounds = latencyBounds
		h.Counts = make([]int64, len(latencyBounds)+1)
	}
	i := len(latencyBounds)
	for j, b := range latencyBounds {
		if d <= b {
			i = j
			break
		}
	}
	h.Counts[i] += n
	return h
}

// Counts returns the fleet's HAProxy traffic from since until now, by
// service and generation (reconciler.Counter), and the start of the window
// the counts actually cover: since, or later when the front has no
// reading of a server from before since (molt restarted). Requests are
// the sessions HAProxy sent to the generation's servers (stot: one per
// HTTP request), Status5xx their 5xx responses (hrsp_5xx), ProxyErrors
// the connection and response errors (econ + eresp), and Latency each
// server's average response time (rtime) over its responses. A fleet with
// no HAProxy route does not contact HAProxy.
func (f *Front) Counts(ctx context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error) {
	f.mu.Lock()
	ff, err := f.load(fleet)
	f.mu.Unlock()
	if err != nil {
		return nil, since, err
	}
	if len(ff.Routes) == 0 {
		return map[string]map[string]targets.Counts{}, since, nil
	}
	servers, err := f.sock.showStat(ctx)
	if err != nil {
		return nil, since, err
	}
	f.hist.observe(fleet, ff, servers, f.now())
	m, from := f.hist.counts(fleet, since)
	return m, from, nil
}
