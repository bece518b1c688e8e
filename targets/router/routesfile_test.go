package router

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestUnreadableRoutesFileMovedAside starts a router on a routes file it
// cannot use: the file is moved aside with a warning naming both paths,
// and the router starts with no routes and serves the routes it is given.
func TestUnreadableRoutesFileMovedAside(t *testing.T) {
	tests := []struct{ name, content string }{
		{"corrupt", `{"format": 2, "fleets": {"alpha": [`},
		{"empty", ""},
		{"old format", `{"version": 7, "services": {"web": {"listen": "127.0.0.1:1", "backends": [], "active": "gena"}}}`},
		{"newer format", `{"format": 3, "version": 1, "fleets": {}}`},
		{"invalid table", `{"format": 2, "version": 3, "fleets": {
			"alpha": [{"service": "web", "listen": "127.0.0.1:7001", "backends": []}],
			"beta": [{"service": "web", "listen": "127.0.0.1:7001", "backends": []}]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			rdir, err := makeDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(rdir, "routes.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			r := startRouter(t, dir, func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), nil))
			})

			aside, err := filepath.Glob(path + ".unreadable-*")
			if err != nil || len(aside) != 1 {
				t.Fatalf("files moved aside: %v, %v; want one", aside, err)
			}
			if data, err := os.ReadFile(aside[0]); err != nil || string(data) != tc.content {
				t.Errorf("moved-aside file holds %q, %v; want the original", data, err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("routes.json still there after moving it aside: %v", err)
			}
			log := logs.String()
			if !strings.Contains(log, "level=WARN") || !strings.Contains(log, path+" ") || !strings.Contains(log, aside[0]) {
				t.Errorf("log does not warn with both paths (%s, %s):\n%s", path, aside[0], log)
			}
			if tbl := tableOf(t, r.Client); tbl.Version != 0 || len(tbl.Fleets) != 0 {
				t.Errorf("table after start = %+v, want an empty one", tbl)
			}

			a := newBackend(t, "a1", "g1", nil)
			listen := freeAddr(t)
			mustSetWeb(t, r.Client, listen, a.backend(0))
			if got := mustGet(t, newHTTPClient(t), "http://"+listen); got.body != "a1" {
				t.Errorf("after setting routes: %+v, want a1", got)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var saved struct{ Format int }
			if err := json.Unmarshal(data, &saved); err != nil || saved.Format != 2 {
				t.Errorf("routes.json after setting routes has format %d (%v), want 2", saved.Format, err)
			}

			// The new file is read back on the next start.
			r.stop()
			r = startRouter(t, dir)
			if got := mustRoutes(t, r.Client, testFleet); len(got) != 1 || got[0].Listen != listen {
				t.Errorf("routes after a restart = %+v, want web on %s", got, listen)
			}
			if again, _ := filepath.Glob(path + ".unreadable-*"); len(again) != 1 {
				t.Errorf("files moved aside after a clean restart: %v, want the first only", again)
			}
		})
	}
}
