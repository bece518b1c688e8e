package targetstest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load sends GET / to an address (through the router, usually) from a few
// workers until stopped, counting the answers by body and every failure.
// The number of requests is bounded, and so is each request's time.
type Load struct {
	stop   chan struct{}
	done   chan struct{}
	total  atomic.Int64
	mu     sync.Mutex
	bodies map[string]int
	fails  []string
}

// StartLoad starts workers that each send a request every pause.
func StartLoad(addr string, workers int, pause time.Duration) *Load {
	l := &Load{stop: make(chan struct{}), done: make(chan struct{}), bodies: map[string]int{}}
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range 200000 { // bounded
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				l.total.Add(1)
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					l.fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.fail(fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				l.mu.Lock()
				l.bodies[strings.TrimSpace(string(b))]++
				l.mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *Load) fail(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, s)
}

// Total is the number of requests sent so far.
func (l *Load) Total() int64 { return l.total.Load() }

// Failures returns how many requests failed so far, and the first failure.
func (l *Load) Failures() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) == 0 {
		return 0, ""
	}
	return len(l.fails), l.fails[0]
}

// Finish keeps the load on for a few more requests (so that what follows
// a change is seen), stops it, fails tb if any request failed, and returns
// the answers counted by body.
func (l *Load) Finish(tb testing.TB) map[string]int {
	tb.Helper()
	more := l.total.Load() + 40
	Eventually(tb, 10*time.Second, "more requests", func() bool { return l.total.Load() >= more })
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 0 {
		tb.Errorf("%d of %d requests failed, first: %s", len(l.fails), l.total.Load(), l.fails[0])
	}
	tb.Logf("%d requests: %v", l.total.Load(), l.bodies)
	return l.bodies
}
