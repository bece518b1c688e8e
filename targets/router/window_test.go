package router

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/molt-dev/molt/targets"
)

// t0 is an instant at the start of a slot (and of a chunk), for tests.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLatencyBuckets(t *testing.T) {
	bounds := LatencyBounds()
	if len(bounds) < 15 || len(bounds) > 19 || !slices.IsSorted(bounds) {
		t.Fatalf("latency bounds %v: want 16 to 20 increasing buckets", bounds)
	}
	if bounds[0] != time.Millisecond || bounds[len(bounds)-1] != 10*time.Second {
		t.Errorf("latency bounds from %v to %v, want 1ms to 10s", bounds[0], bounds[len(bounds)-1])
	}
	bounds[0] = time.Hour // a copy: the router's own are untouched
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{time.Millisecond, 0},
		{time.Millisecond + 1, 1},
		{30 * time.Millisecond, 6},
		{31 * time.Millisecond, 7},
		{10 * time.Second, 16},
		{10*time.Second + 1, 17},
		{time.Hour, 17},
	} {
		if got := latencyBucket(tc.d); got != tc.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestSlotNumbers(t *testing.T) {
	n := slotOf(t0)
	for _, d := range []time.Duration{0, time.Second, 4999 * time.Millisecond} {
		if got := slotOf(t0.Add(d)); got != n {
			t.Errorf("slot of t0+%v = %d, want %d", d, got, n)
		}
	}
	if got := slotOf(t0.Add(slotWidth)); got != n+1 {
		t.Errorf("slot of t0+5s = %d, want %d", got, n+1)
	}
	if got := slotOf(t0.Add(-time.Nanosecond)); got != n-1 {
		t.Errorf("slot of t0-1ns = %d, want %d", got, n-1)
	}
	if !slotStart(n).Equal(t0) {
		t.Errorf("slot %d starts at %v, want %v", n, slotStart(n), t0)
	}
	if got := slotOf(time.Time{}); got >= 0 {
		t.Errorf("slot of the zero time = %d, want a negative number", got)
	}
	if got := slotStart(slotOf(time.Time{})); got.After(time.Time{}) {
		t.Errorf("slot of the zero time starts at %v, after it", got)
	}
	// The history always holds at least an hour of whole slots.
	for cur := n; cur < n+chunkSlots; cur++ {
		if kept := cur - oldestKept(cur); kept < historySlots || kept >= ringChunks*chunkSlots {
			t.Errorf("at slot %d the window keeps %d slots before it, want %d to %d", cur, kept, historySlots, ringChunks*chunkSlots-1)
		}
	}
	if History != time.Hour {
		t.Errorf("History = %v, want 1h", History)
	}
}

// record counts one attempt started at t, answered with status after
// latency (or, for status 0, without an answer).
func record(c *counters, t time.Time, status int, latency time.Duration) {
	s := c.begin(t)
	if status == 0 {
		c.proxyError(s)
		return
	}
	c.response(s, status, latency)
}

func TestWindowSum(t *testing.T) {
	var c counters
	n := slotOf(t0)
	// One attempt per slot over three chunks, the k-th answered 500 when
	// k is a multiple of 3, failed when it is a multiple of 7.
	for k := range int64(3 * chunkSlots) {
		status := 200
		switch {
		case k%7 == 0:
			status = 0
		case k%3 == 0:
			status = 500
		}
		record(&c, slotStart(n+k).Add(time.Duration(k)*time.Millisecond%slotWidth), status, time.Duration(k)*time.Millisecond)
	}
	want := func(first, last int64) targets.Counts {
		w := targets.Counts{Latency: targets.Histogram{Bounds: LatencyBounds(), Counts: make([]int64, latencyBuckets)}}
		for k := max(first-n, 0); k <= min(last-n, 3*chunkSlots-1); k++ {
			w.Requests++
			switch {
			case k%7 == 0:
				w.ProxyErrors++
				continue
			case k%3 == 0:
				w.Status5xx++
			}
			w.Latency.Counts[latencyBucket(time.Duration(k)*time.Millisecond)]++
		}
		return w
	}
	for _, r := range [][2]int64{
		{n, n + 3*chunkSlots - 1},                // all
		{n - 100, n + 1000},                      // more than all
		{n + 5, n + 5},                           // one slot
		{n + chunkSlots - 2, n + chunkSlots + 1}, // across a chunk boundary
		{n + 3, n + 2*chunkSlots + 7},            // across two
		{n + 3*chunkSlots, n + 4*chunkSlots},     // after
	} {
		got := c.window.sum(r[0], r[1])
		if w := want(r[0], r[1]); !equalCounts(got, w) {
			t.Errorf("slots %d to %d: %+v, want %+v", r[0]-n, r[1]-n, got, w)
		}
	}
	if c.requests.Load() != 3*chunkSlots {
		t.Errorf("total requests %d, want %d", c.requests.Load(), 3*chunkSlots)
	}
}

func equalCounts(a, b targets.Counts) bool {
	return a.Requests == b.Requests && a.Status5xx == b.Status5xx && a.ProxyErrors == b.ProxyErrors &&
		slices.Equal(a.Latency.Bounds, b.Latency.Bounds) && slices.Equal(a.Latency.Counts, b.Latency.Counts)
}

// TestWindowMemory checks the memory bound: a generation with traffic in
// every slot for three hours holds at most ringChunks chunks, at most
// 64 KiB with its counters; once idle for the history its chunks go.
func TestWindowMemory(t *testing.T) {
	const limit = 64 << 10
	// 1,408 bytes is the allocation size class a chunk falls in.
	if size := unsafe.Sizeof(chunk{}); size > 1408 {
		t.Fatalf("a chunk is %d bytes, more than its 1408-byte size class", size)
	}
	if bound := ringChunks*1408 + unsafe.Sizeof(counters{}); bound > limit {
		t.Fatalf("a full window takes %d bytes, more than %d", bound, limit)
	}

	var c counters
	n := slotOf(t0)
	for k := range int64(3 * 3600 / slotSeconds) {
		for range 3 {
			record(&c, slotStart(n+k), 200, time.Millisecond)
		}
		if got := c.window.chunks(); got > ringChunks {
			t.Fatalf("after %d slots the window holds %d chunks, more than %d", k+1, got, ringChunks)
		}
	}
	cur := n + 3*3600/slotSeconds - 1
	got := c.window.sum(oldestKept(cur), cur)
	if want := 3 * (cur - oldestKept(cur) + 1); got.Requests != want {
		t.Errorf("the last hour holds %d requests, want %d", got.Requests, want)
	}
	if got := c.window.sum(n, oldestKept(cur)-1); got.Requests != 0 {
		t.Errorf("older than the history: %d requests, want none kept", got.Requests)
	}
	c.window.release(oldestKept(cur + historySlots + chunkSlots))
	if got := c.window.chunks(); got != 0 {
		t.Errorf("idle for over the history, the window still holds %d chunks", got)
	}

	// Measured: many full windows on the heap.
	const gens = 64
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	all := make([]*counters, gens)
	for i := range all {
		all[i] = &counters{}
		for k := range int64(ringChunks * chunkSlots) {
			record(all[i], slotStart(n+k), 200, time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / gens
	runtime.KeepAlive(all)
	t.Logf("a full window: %d bytes on the heap", per)
	if per > limit {
		t.Errorf("a generation with a full window takes %d bytes, more than %d", per, limit)
	}
}

func TestWindowOutOfRing(t *testing.T) {
	var c counters
	n := slotOf(t0)
	record(&c, slotStart(n+ringChunks*chunkSlots), 200, 0)
	// An attempt over the ring's span older than the chunk at its place
	// is counted in the totals only.
	record(&c, slotStart(n), 500, 0)
	if got := c.window.sum(n, n+ringChunks*chunkSlots); got.Requests != 1 || got.Status5xx != 0 {
		t.Errorf("window holds %+v, want the newer attempt only", got)
	}
	if c.requests.Load() != 2 || c.s5xx.Load() != 1 {
		t.Errorf("totals %+v, want both attempts", c.snapshot())
	}
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSweep(t *testing.T) {
	clock := newFakeClock(t0)
	r := newStatsRegistry(clock.Now)
	web := serviceKey{"shop", "web"}
	api := serviceKey{"shop", "api"}
	routedIdle := r.generation(web, "routed-idle")
	record(routedIdle, clock.Now(), 200, 0)
	busy := r.generation(web, "busy")
	r.generation(api, "old")
	record(r.generation(web, "gone"), clock.Now(), 200, 0)

	clock.Advance(30 * time.Minute)
	record(busy, clock.Now(), 200, 0)
	// Over an hour after the last attempt of "gone" (whose chunk ends
	// 80 s after it).
	clock.Advance(30*time.Minute + 100*time.Second)
	routed := map[serviceKey]map[string]bool{web: {"routed-idle": true}}
	late := r.generation(web, "late") // being compiled: not in routed yet
	if n := r.sweep(clock.Now(), routed); n != 2 {
		t.Errorf("sweep forgot %d generations, want 2 (gone and old)", n)
	}
	snap := r.snapshot().Fleets["shop"]
	if _, ok := snap["api"]; ok {
		t.Error("service api, out of the routes and idle, is still counted")
	}
	var gens []string
	for g := range snap["web"].Generations {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	if want := []string{"busy", "late", "routed-idle"}; !slices.Equal(gens, want) {
		t.Errorf("generations kept %v, want %v", gens, want)
	}
	if r.generation(web, "late") != late || r.generation(web, "routed-idle") != routedIdle {
		t.Error("a kept generation lost its counters")
	}
	if n := routedIdle.window.chunks(); n != 0 {
		t.Errorf("routed idle generation holds %d chunks, want 0 (its traffic is out of the history)", n)
	}
	if n := busy.window.chunks(); n != 1 {
		t.Errorf("busy generation holds %d chunks, want 1", n)
	}
	if got := snap["web"].Generations["routed-idle"]; got.Requests != 1 {
		t.Errorf("routed idle generation's totals %+v, want its request", got)
	}

	clock.Advance(2 * time.Hour)
	r.sweep(clock.Now(), routed)
	if got := r.snapshot().Fleets["shop"]["web"].Generations; len(got) != 1 || got["routed-idle"].Requests != 1 {
		t.Errorf("after 3 h the generations are %v, want only the routed one, with its total", got)
	}
}
