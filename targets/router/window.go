package router

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/molt-dev/molt/targets"
)

// A generation's windowed counts live in a ring of time slots of
// slotSeconds each, aligned on the Unix epoch (a slot starts at a multiple
// of 5 s of wall-clock time). Slots are allocated lazily, chunkSlots at a
// time, when an attempt first falls in them; the ring holds ringChunks
// chunks, so it keeps at least historySlots whole slots before the current
// one (one hour) and at most ringChunks*chunkSlots slots in all.
//
// Memory: a slot is 21 uint32 counters (84 bytes), a chunk 16 of them plus
// its number (1,352 bytes, a 1,408-byte allocation), and a full ring 46
// chunks: 64,768 bytes, plus 368 bytes of chunk pointers in the window
// itself. A generation that stops getting traffic frees its chunks as they
// fall out of the history (see release).
const (
	slotSeconds  = 5
	slotWidth    = slotSeconds * time.Second
	chunkSlots   = 16
	ringChunks   = 46
	historySlots = (ringChunks - 1) * chunkSlots // 720 slots: 1 h
)

// History is how far back the router's windowed counts always reach
// (Client.Counts): one hour, in slots of SlotWidth.
const History = historySlots * slotWidth

// SlotWidth is the resolution of the router's windowed counts: a window
// starts at a multiple of it (of wall-clock time since the Unix epoch).
const SlotWidth = slotWidth

// latencyBounds are the upper bounds of the latency buckets: 1, 2, 3 and 5
// times the powers of ten from 1 ms to 10 s (17 bounds, so 18 buckets with
// the one above 10 s).
var latencyBounds = [...]time.Duration{
	1 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond,
	1 * time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second,
	10 * time.Second,
}

const latencyBuckets = len(latencyBounds) + 1

// LatencyBounds returns the upper bounds of the buckets of the router's
// latency histograms (targets.Histogram.Bounds): 1, 2, 3, 5, 10, 20, 30,
// 50, 100, 200, 300, 500 ms, 1, 2, 3, 5 and 10 s.
func LatencyBounds() []time.Duration { return slices.Clone(latencyBounds[:]) }

// latencyBucket returns the index of the bucket that counts d.
func latencyBucket(d time.Duration) int {
	// Most attempts are fast: a linear scan from the bottom beats a
	// binary search for them.
	for i, b := range latencyBounds {
		if d <= b {
			return i
		}
	}
	return len(latencyBounds)
}

// slot holds the counts of the attempts that started in one time slot. A
// uint32 is enough: it would take 850 million attempts a second to a
// generation to overflow one in 5 s.
type slot struct {
	requests, s5xx, proxyErrors atomic.Uint32
	latency                     [latencyBuckets]atomic.Uint32
}

// chunk is chunkSlots consecutive slots, allocated together.
type chunk struct {
	n     int64 // chunk number: the slot number of its first slot / chunkSlots
	slots [chunkSlots]slot
}

// window is the ring of chunks of one generation. Its zero value is an
// empty window. Writers and readers use atomics only; a writer that finds
// at its place in the ring a chunk of another time replaces it with a new
// chunk (the old one, an hour or more older, is dropped).
type window struct {
	ring [ringChunks]atomic.Pointer[chunk]
}

// slotOf returns the number of the slot that holds t.
func slotOf(t time.Time) int64 { return floorDiv(t.Unix(), slotSeconds) }

// slotStart returns the time slot n starts at, in UTC.
func slotStart(n int64) time.Time { return time.Unix(n*slotSeconds, 0).UTC() }

// oldestKept returns the number of the oldest slot that a window is sure
// to keep while cur is the current slot.
func oldestKept(cur int64) int64 {
	return (floorDiv(cur, chunkSlots) - (ringChunks - 1)) * chunkSlots
}

// at returns slot n for counting, allocating its chunk if it has none. It
// returns nil if n is older than what the ring holds at its place (the
// clock went back over an hour, or an attempt lasted that long).
func (w *window) at(n int64) *slot {
	cn := floorDiv(n, chunkSlots)
	p := &w.ring[floorMod(cn, ringChunks)]
	for {
		c := p.Load()
		switch {
		case c != nil && c.n == cn:
			return &c.slots[floorMod(n, chunkSlots)]
		case c != nil && c.n > cn:
			return nil
		}
		fresh := &chunk{n: cn}
		if p.CompareAndSwap(c, fresh) {
			return &fresh.slots[floorMod(n, chunkSlots)]
		}
	}
}

// sum returns the counts of slots first to last, both included.
func (w *window) sum(first, last int64) targets.Counts {
	var lat [latencyBuckets]int64
	var c targets.Counts
	for cn := floorDiv(first, chunkSlots); cn <= floorDiv(last, chunkSlots); cn++ {
		ch := w.ring[floorMod(cn, ringChunks)].Load()
		if ch == nil || ch.n != cn {
			continue
		}
		lo, hi := max(first, cn*chunkSlots), min(last, cn*chunkSlots+chunkSlots-1)
		for n := lo; n <= hi; n++ {
			s := &ch.slots[n-cn*chunkSlots]
			c.Requests += int64(s.requests.Load())
			c.Status5xx += int64(s.s5xx.Load())
			c.ProxyErrors += int64(s.proxyErrors.Load())
			for i := range s.latency {
				lat[i] += int64(s.latency[i].Load())
			}
		}
	}
	c.Latency = targets.Histogram{Bounds: LatencyBounds(), Counts: lat[:]}
	return c
}

// newest returns the number of the newest chunk in the ring, and false if
// there is none.
func (w *window) newest() (int64, bool) {
	n, ok := int64(0), false
	for i := range w.ring {
		if c := w.ring[i].Load(); c != nil && (!ok || c.n > n) {
			n, ok = c.n, true
		}
	}
	return n, ok
}

// release drops the chunks that hold only slots older than oldest, so that
// an idle generation holds no memory for them.
func (w *window) release(oldest int64) {
	for i := range w.ring {
		if c := w.ring[i].Load(); c != nil && (c.n+1)*chunkSlots <= oldest {
			w.ring[i].CompareAndSwap(c, nil)
		}
	}
}

// chunks returns the number of chunks allocated.
func (w *window) chunks() int {
	n := 0
	for i := range w.ring {
		if w.ring[i].Load() != nil {
			n++
		}
	}
	return n
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }
