//go:build unix

package process

import (
	"os"
	"syscall"
	"time"
)

// A follower of a log and the rotation of that log take turns on an
// flock of the log file (an advisory lock on its inode, across
// processes): a reader holds it shared while it reads one step (log.1 and
// log, or log from where it was), rotate holds it exclusive from the copy
// to the truncate. So a step never sees a rotation half done, and a
// reader knows that a rotation came between two of its steps.

// lockShared takes a shared lock on f, waiting for a rotation under way.
// It returns the function that releases it. A file that cannot be locked
// (a file system without flock) is read unlocked.
func lockShared(f *os.File) (unlock func()) {
	unlock, err := flockFile(f, syscall.LOCK_SH)
	if err != nil {
		return func() {}
	}
	return unlock
}

// lockExclusive takes the exclusive lock on f, waiting at most wait for
// the readers to finish their step. ok is false when it did not get it
// (a reader that holds its step longer, such as one whose client is slow
// to take the lines, or a file that cannot be locked): the caller goes on
// unlocked, and a reader may then miss what the rotation moved.
func lockExclusive(f *os.File, wait time.Duration) (unlock func(), ok bool) {
	deadline := time.Now().Add(wait)
	for {
		unlock, err := flockFile(f, syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return unlock, true
		case err != syscall.EWOULDBLOCK || time.Now().After(deadline):
			return func() {}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flockFile applies how to f and returns its release.
func flockFile(f *os.File, how int) (func(), error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = syscall.Flock(int(fd), how); ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	return func() {
		_ = rc.Control(func(fd uintptr) { _ = syscall.Flock(int(fd), syscall.LOCK_UN) })
	}, nil
}
