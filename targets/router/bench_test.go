package router

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/targets/router/routertest"
)

// BenchmarkProxy compares a small GET on loopback sent directly to a
// backend, through the router, and through nginx as a reverse proxy (if an
// nginx binary is installed), all in the same run. Clients keep
// connections alive. Compare ns/op (or req/s) between the sub-benchmarks:
// the backend and the client share the machine with the proxy, so the
// absolute figures say little.
func BenchmarkProxy(b *testing.B) {
	backend := newBackend(b, "bench", "genbench", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the backend\n")
	})

	b.Run("direct", func(b *testing.B) {
		benchGet(b, "http://"+backend.addr+"/")
	})

	b.Run("router", func(b *testing.B) {
		r := startRouter(b, shortDir(b), func(o *Options) { o.Logger = nil })
		listen := freeAddr(b)
		mustSetWeb(b, r.Client, listen, backend.backend(0))
		benchGet(b, "http://"+listen+"/")
	})

	b.Run("nginx", func(b *testing.B) {
		listen := startNginx(b, backend.addr)
		benchGet(b, "http://"+listen+"/")
	})
}

func benchGet(b *testing.B, url string) {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	if resp, err := hc.Get(url); err != nil {
		b.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.SetParallelism(8) // 8 client goroutines per core
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := hc.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// startNginx runs nginx in the foreground as a keep-alive reverse proxy to
// backend and returns its listen address; it skips if nginx is absent.
func startNginx(b *testing.B, backend string) string {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			b.Skip("nginx not installed")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := b.TempDir()
	listen := freeAddr(b)
	cmd, err := routertest.Nginx{Dir: dir, Listen: listen, Backends: []string{backend}, Keepalive: 256}.Command(bin)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout = b.Output()
	cmd.Stderr = b.Output()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", listen)
		if err == nil {
			conn.Close()
			return listen
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			b.Fatalf("nginx does not listen on %s: %v\n%s", listen, err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkCount is the counting that each attempt costs on the request
// path, from all cores on one generation: the clock readings, the slot
// lookup and the atomic additions.
func BenchmarkCount(b *testing.B) {
	st := newStatsRegistry(nil)
	c := st.generation(serviceKey{"bench", "web"}, "genbench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			s := c.begin(st.slotTime(start))
			c.response(s, http.StatusOK, time.Since(start))
		}
	})
}
