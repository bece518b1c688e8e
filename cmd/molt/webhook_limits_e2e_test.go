package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/targetstest"
)

// vmRSS reads a process's resident set size, in bytes, from
// /proc/PID/status (VmRSS, in kB).
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// TestServeBoundsSlowWebhooks: 200 connections each send a push delivery
// that claims a body of 1,000,000 bytes (inside --webhook-max-body) one
// byte every 100 ms. serve's memory stays within 40 MB of its idle size,
// a normal signed delivery and /healthz are answered meanwhile, and the
// slow bodies are cut off at the body timeout (10 s). (Was: serve
// allocated each claimed body up front, 200 × 1 MB, and kept reading for
// 30 s: 33 MB to 280 MB.)
//
// The bound: the bodies may hold at most --webhook-max-inflight (16 MiB)
// together, here one 32 KiB step each (6.4 MB), plus a goroutine and the
// connection's buffers per request (some 30 KiB: 6 MB for 200); 40 MB
// leaves room for the garbage collector's slack. Under the race detector
// (serve is this test binary), whose shadow memory multiplies every
// allocation, the bound is three times that: still well below what the
// old code took without it.
func TestServeBoundsSlowWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const (
		conns   = 200
		claimed = 1_000_000
	)
	bound := int64(40 << 20)
	if raceEnabled {
		bound *= 3
	}
	repo := newFleetRepo(t)
	s := startServe(t, repo.Root+"/fleet.git", stateDir(t), "@every 1h")
	pid := s.cmd.Process.Pid
	targetstest.Eventually(t, 30*time.Second, "serve ready", func() bool {
		resp, err := http.Get("http://" + s.listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	idle, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}

	var peak atomic.Int64
	peak.Store(idle)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, err := vmRSS(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	// Each slow delivery: valid-looking headers, then the body one byte
	// at a time; its answer, if any, is read on the side.
	body := `{"ref":"refs/heads/main","before":"` + strings.Repeat("0", 40) + `","after":"` + strings.Repeat("1", 40) + `","commits":[` + strings.Repeat(" ", 200)
	var (
		wg                          sync.WaitGroup
		mu                          sync.Mutex
		answers                     = map[int]int{} // by status
		closed, dialFailed, written atomic.Int64
	)
	stop := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.listen)
			if err != nil {
				dialFailed.Add(1)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /hooks/github HTTP/1.1\r\nHost: %s\r\nUser-Agent: GitHub-Hookshot/slow\r\nContent-Type: application/json\r\n"+
				"X-GitHub-Event: push\r\nX-GitHub-Delivery: slow-%d\r\nX-Hub-Signature-256: sha256=%s\r\nContent-Length: %d\r\n\r\n",
				s.listen, i, strings.Repeat("ab", 32), claimed)
			answered := make(chan struct{})
			go func() {
				defer close(answered)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					closed.Add(1)
					return
				}
				resp.Body.Close()
				answers[resp.StatusCode]++
			}()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				case <-answered:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{body[j%len(body)]}); err != nil {
					return
				}
				written.Add(1)
			}
		}()
	}

	// Meanwhile, GitHub's own delivery and the health check are answered.
	time.Sleep(3 * time.Second) // the slow requests are all in
	if code := s.deliver(repo.First); code != http.StatusAccepted {
		t.Errorf("a signed delivery among the slow ones answered %d, want 202", code)
	}
	resp, err := http.Get("http://" + s.listen + "/healthz")
	if err != nil {
		t.Errorf("/healthz among the slow deliveries: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("/healthz among the slow deliveries answered %d", resp.StatusCode)
		}
	}
	// Past the body timeout (10 s), every slow request has been answered.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := 0
		for _, v := range answers {
			n += v
		}
		mu.Unlock()
		if n+int(closed.Load())+int(dialFailed.Load()) == conns {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(stopSampling)
	<-sampled

	mu.Lock()
	defer mu.Unlock()
	growth := peak.Load() - idle
	t.Logf("figures: %d slow connections, %d body bytes sent; serve RSS idle %.1f MB, peak %.1f MB (+%.1f MB, bound +%d MB); answered %v (503 refused, 408 timed out), %d closed without an answer, %d dials failed",
		conns, written.Load(), float64(idle)/1e6, float64(peak.Load())/1e6, float64(growth)/1e6, bound>>20, answers, closed.Load(), dialFailed.Load())
	if growth > bound {
		t.Errorf("serve's RSS grew by %.1f MB under %d slow webhook bodies, bound %d MB", float64(growth)/1e6, conns, bound>>20)
	}
	if answers[http.StatusRequestTimeout]+answers[http.StatusServiceUnavailable] != conns {
		t.Errorf("of %d slow requests, %v were answered 408 or 503 (and %d closed): want all cut off or refused", conns, answers, closed.Load())
	}
	if n := s.metric("molt_webhook_limited_total"); n < float64(answers[http.StatusRequestTimeout]) {
		t.Errorf("molt_webhook_limited_total = %v, want at least the %d timed out", n, answers[http.StatusRequestTimeout])
	}
}
