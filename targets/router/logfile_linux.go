package router

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLogMax is the size past which KeepLog moves router.log to
// router.log.1.
const DefaultLogMax = 10 << 20

// KeepLog keeps a router that EnsureRunning started writing to
// STATE/router/router.log, as its stdout and stderr: every interval
// until ctx ends, it reopens the file when it is gone (and its directory
// is there) or another file now has its name (the state directory
// deleted and made again, a log rotated by hand), and moves it to
// router.log.1 when it is over max (the previous router.log.1 goes). The router writes on into the new
// file: its output descriptors are made to point at it. A router not
// started by EnsureRunning for stateDir (no EnvManaged naming it: its
// output is its supervisor's) is left alone.
func KeepLog(ctx context.Context, stateDir string, interval time.Duration, max int64) {
	managed := os.Getenv(EnvManaged)
	abs, err := filepath.Abs(stateDir)
	if managed == "" || err != nil || !sameDir(managed, abs) {
		return
	}
	path := filepath.Join(routerDir(abs), logName)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_ = keepLog(path, []int{1, 2}, max)
	}
}

// keepLog is one look of KeepLog at the log path that fds write to.
func keepLog(path string, fds []int, max int64) error {
	var cur unix.Stat_t
	if err := unix.Fstat(fds[0], &cur); err != nil {
		return err
	}
	named, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Gone. If its directory is gone too, the router writes on where
		// it was: a state directory someone deleted is not made again
		// for a log (molt makes it again, and then the log follows).
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return err
		}
	case err != nil:
		return err
	case !sameInode(named, &cur):
		// Another file has the name: write to it.
	case named.Size() > max:
		if err := os.Rename(path, path+".1"); err != nil {
			return err
		}
	default:
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range fds {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return err
		}
	}
	return nil
}

func sameInode(fi os.FileInfo, st *unix.Stat_t) bool {
	s, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(s.Dev) == uint64(st.Dev) && s.Ino == st.Ino
}
