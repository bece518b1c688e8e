package router

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Files under STATE/router.
const (
	socketName = "admin.sock"
	tableName  = "routes.json"
	pidName    = "router.pid"
	lockName   = "lock"
	logName    = "router.log"
)

// maxSocketPath is the longest path a unix socket address holds on Linux
// (108 bytes of sun_path, one of them the terminating NUL).
const maxSocketPath = 107

func routerDir(stateDir string) string { return filepath.Join(stateDir, "router") }

// socketPath returns the admin socket's path, or an error if it is too long
// for a unix socket address.
func socketPath(stateDir string) (string, error) {
	p := filepath.Join(routerDir(stateDir), socketName)
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("router socket path %s is %d bytes, over the %d-byte limit of unix sockets: use a shorter state directory", p, len(p), maxSocketPath)
	}
	return p, nil
}

// makeDir creates STATE/router, readable by its owner only: the socket in it
// accepts commands from anyone who can reach it.
func makeDir(stateDir string) (string, error) {
	dir := routerDir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create router directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("create router directory: %w", err)
	}
	return dir, nil
}

// errLocked says that another process holds a lock file.
var errLocked = errors.New("locked")

// tryLock opens path (with the extra open flag, such as os.O_CREATE) and
// takes an exclusive flock on it without waiting. The returned file holds
// the lock until it is closed.
func tryLock(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|flag, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// pidFile is router.pid, locked for as long as a router runs on the
// directory: the lock (not the file's existence) says a router is running.
type pidFile struct{ f *os.File }

func lockPID(dir string) (*pidFile, error) {
	path := filepath.Join(dir, pidName)
	f, err := tryLock(path, os.O_CREATE)
	if errors.Is(err, errLocked) {
		pid := readPID(path)
		return nil, fmt.Errorf("a router is already running on %s (pid %s)", dir, pid)
	}
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write pid: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write pid: %w", err)
	}
	return &pidFile{f: f}, nil
}

// release empties the file and drops the lock. The file is kept: removing
// it would let two later routers lock two different files.
func (p *pidFile) release() {
	_ = p.f.Truncate(0)
	_ = p.f.Close()
}

func readPID(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(bytes.TrimSpace(data)))
	if s == "" {
		return "unknown"
	}
	return s
}

// routerGone reports whether no router holds the pid lock of the directory.
func routerGone(dir string) bool {
	f, err := tryLock(filepath.Join(dir, pidName), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	f.Close()
	return true
}
