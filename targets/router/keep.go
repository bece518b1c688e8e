package router

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// externalName is the file a router not started by EnsureRunning keeps in
// STATE/router: while it is there, EnsureRunning starts no router of its
// own, also while that router is stopped (a supervisor such as systemd
// restarts it). A person who hands the router back to molt removes it.
const externalName = "external"

// DefaultKeepInterval is how often a running router checks its files.
const DefaultKeepInterval = time.Second

// ownFiles are the files under STATE/router that Run holds and keeps.
type ownFiles struct {
	mu   sync.Mutex
	pid  *pidFile
	ln   net.Listener // the admin listener on sock
	sock os.FileInfo  // the socket file this router listens on
}

// keepFiles checks the router's files every keep interval until the router
// stops.
func (s *Server) keepFiles(admin *http.Server) {
	tick := time.NewTicker(s.opts.keepInterval())
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.checkFiles(admin)
		case <-s.stop:
			return
		}
	}
}

// checkFiles makes again whatever of STATE/router was removed (the state
// directory itself may be gone): the directory, the pid file and its lock,
// the admin socket (a new one at the path, served by admin; the old one is
// closed), routes.json (written from the table in effect) and, for a router
// not started by molt, its external file, each with a warning. The data
// listeners are not touched. A pid file that another router has locked
// meanwhile is left to it, and so is the socket.
func (s *Server) checkFiles(admin *http.Server) {
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	select {
	case <-s.stop:
		return // Run removes the socket; do not make a new one
	default:
	}
	if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := makeDir(s.opts.StateDir); err != nil {
			s.log.Error("the router's directory was removed and cannot be made again", "dir", s.dir, "err", err)
			return
		}
		s.log.Warn("the router's directory was removed: making it and the router's files again", "dir", s.dir)
	}

	pidPath := filepath.Join(s.dir, pidName)
	if !s.own.pid.is(pidPath) {
		p, err := lockPID(s.dir)
		if err != nil {
			s.log.Error("the router's pid file was removed and cannot be locked again", "path", pidPath, "err", err)
			return
		}
		_ = s.own.pid.f.Close() // its file is gone or replaced: not truncated
		s.own.pid = p
		s.log.Warn("the router's pid file was removed: wrote and locked it again", "path", pidPath, "pid", os.Getpid())
	}

	if path, err := socketPath(s.opts.StateDir); err == nil {
		if fi, err := os.Stat(path); err != nil || !os.SameFile(fi, s.own.sock) {
			ln, info, err := s.listenAdmin()
			if err != nil {
				s.log.Error("the router's socket was removed and cannot be made again", "socket", path, "err", err)
			} else {
				old := s.own.ln
				s.own.ln, s.own.sock = ln, info
				s.serveAdmin(admin, ln)
				_ = old.Close() // its file is gone: nobody can reach it
				s.log.Warn("the router's socket was removed: listening on a new one", "socket", path)
			}
		}
	}

	tablePath := filepath.Join(s.dir, tableName)
	if _, err := os.Stat(tablePath); errors.Is(err, fs.ErrNotExist) {
		s.applyMu.Lock()
		t := s.current.Load().table
		err := saveTable(tablePath, t)
		s.applyMu.Unlock()
		switch {
		case err != nil:
			s.log.Error("the routes file was removed and cannot be written again", "path", tablePath, "err", err)
		case len(t.Fleets) > 0:
			s.log.Warn("the routes file was removed: wrote the routes in effect again", "path", tablePath, "version", t.Version)
		}
	}

	if !s.managed {
		if _, err := os.Stat(filepath.Join(s.dir, externalName)); errors.Is(err, fs.ErrNotExist) {
			s.markExternalLocked()
		}
	}
}

// markExternal writes STATE/router/external for a router not started by
// EnsureRunning, and removes it for one that was.
func (s *Server) markExternal() {
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	if s.managed {
		_ = os.Remove(filepath.Join(s.dir, externalName))
		return
	}
	s.markExternalLocked()
}

func (s *Server) markExternalLocked() {
	body := "pid " + strconv.Itoa(os.Getpid()) + "\n"
	if id := os.Getenv("INVOCATION_ID"); id != "" {
		body += "systemd invocation " + id + "\n"
	}
	if err := os.WriteFile(filepath.Join(s.dir, externalName), []byte(body), 0o600); err != nil {
		s.log.Warn("cannot write the router's external file", "err", err)
	}
}

// removeSocket removes the admin socket's file if it is still this
// router's (not one that a later router made at the path).
func (s *Server) removeSocket() {
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	path, err := socketPath(s.opts.StateDir)
	if err != nil || s.own.sock == nil {
		return
	}
	if fi, err := os.Stat(path); err == nil && os.SameFile(fi, s.own.sock) {
		_ = os.Remove(path)
	}
}

// is reports whether path is still this pid file (and so its lock).
func (p *pidFile) is(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	mine, err := p.f.Stat()
	return err == nil && os.SameFile(fi, mine)
}

// external reports whether dir holds the external file of a router not
// started by molt, and what it says.
func external(dir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, externalName))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}
