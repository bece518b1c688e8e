package main

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/molt-dev/molt/targets/router"
)

// A router that dies while it answers a call (its connection reset, or
// closed before the answer) is a lost router, as one that is not there:
// the pass checks it, starts it again and calls once more, rather than
// failing (TestApplyRestartsADeadRouter met the reset in CI).
func TestRouterLostMidCall(t *testing.T) {
	for _, c := range []struct {
		name string
		die  func(conn net.Conn)
	}{
		// The request unread: the kernel resets the connection.
		{"reset", func(conn net.Conn) { conn.Close() }},
		// The request read, no answer: the client sees the end of it.
		{"closed", func(conn net.Conn) {
			http.ReadRequest(bufio.NewReader(conn))
			conn.Close()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			state, err := os.MkdirTemp("", "rl")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(state)
			if err := os.MkdirAll(filepath.Join(state, "router"), 0o700); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("unix", filepath.Join(state, "router", "admin.sock"))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					c.die(conn)
				}
			}()
			_, err = router.NewClient(state).Routes(t.Context(), "default")
			if err == nil {
				t.Fatal("Routes answered from a router that died")
			}
			if !routerLost(err) {
				t.Errorf("routerLost(%v) = false, want true", err)
			}
		})
	}
	if routerLost(&os.PathError{Op: "open", Path: "x", Err: os.ErrPermission}) {
		t.Error("a permission error is a lost router")
	}
}
