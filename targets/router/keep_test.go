package router

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/targets/targetstest"
)

// A running router whose directory (here the whole state directory) is
// removed makes it again within its keep interval: a new admin socket at
// the path that answers, its pid file written and locked again (a second
// router cannot start on the directory), and routes.json written from the
// table in effect. Its data listener serves throughout: no request fails.
func TestRouterKeepsItsFiles(t *testing.T) {
	for _, gone := range []string{"state directory", "router directory", "socket", "pid file", "routes file"} {
		t.Run(gone, func(t *testing.T) {
			dir := shortDir(t)
			r := startRouter(t, dir, func(o *Options) { o.keepEvery = 50 * time.Millisecond })
			a := newBackend(t, "a1", "gena", nil)
			listen := freeAddr(t)
			mustSetWeb(t, r.Client, listen, a.backend(1))
			want := mustRoutes(t, r.Client, testFleet)
			sock := filepath.Join(dir, "router", socketName)
			before, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}

			hc := newHTTPClient(t)
			var failed, total atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					total.Add(1)
					if r, err := get(hc, "http://"+listen); err != nil || r.body != "a1" {
						failed.Add(1)
					}
					time.Sleep(5 * time.Millisecond)
				}
			})

			switch gone {
			case "state directory":
				err = os.RemoveAll(dir)
			case "router directory":
				err = os.RemoveAll(filepath.Join(dir, "router"))
			case "socket":
				err = os.Remove(sock)
			case "pid file":
				err = os.Remove(filepath.Join(dir, "router", pidName))
			case "routes file":
				err = os.Remove(filepath.Join(dir, "router", tableName))
			}
			if err != nil {
				t.Fatal(err)
			}
			c := NewClient(dir)
			targetstest.Eventually(t, 10*time.Second, "the router's files made again", func() bool {
				_, e1 := os.Stat(filepath.Join(dir, "router", tableName))
				b, e2 := os.ReadFile(filepath.Join(dir, "router", pidName))
				return c.Ping(t.Context()) == nil && e1 == nil && e2 == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid())
			})
			close(stop)
			wg.Wait()

			if routerGone(filepath.Join(dir, "router")) {
				t.Error("the pid file is not locked again")
			}
			if s, err := NewServer(Options{StateDir: dir}); err != nil {
				t.Fatal(err)
			} else if err := s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "already running") {
				t.Errorf("a second router on the directory: Run = %v, want already running", err)
			}
			tbl, err := readTable(filepath.Join(dir, "router", tableName))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, tbl.Fleets[testFleet]); diff != "" {
				t.Errorf("routes.json written again (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, mustRoutes(t, c, testFleet)); diff != "" {
				t.Errorf("routes over the new socket (-want +got):\n%s", diff)
			}
			if gone != "pid file" && gone != "routes file" {
				if after, err := os.Stat(sock); err != nil || os.SameFile(before, after) {
					t.Errorf("the socket was not made again (%v)", err)
				}
			}
			if failed.Load() > 0 || total.Load() == 0 {
				t.Errorf("%d of %d requests failed while the files were made again", failed.Load(), total.Load())
			}
			t.Logf("%s removed: %d requests, %d failed", gone, total.Load(), failed.Load())
		})
	}
}

// A router stopping removes its socket only while the file at the path is
// still its own.
func TestRouterLeavesAnotherSocket(t *testing.T) {
	dir := shortDir(t)
	r := startRouter(t, dir)
	sock := filepath.Join(dir, "router", socketName)
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, []byte("not the router's"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.stop()
	if b, err := os.ReadFile(sock); err != nil || string(b) != "not the router's" {
		t.Errorf("the file at the socket path = %q, %v; want it left alone", b, err)
	}
}
