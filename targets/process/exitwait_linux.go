package process

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// exitWaiter blocks until one of a set of pidfds polls readable (its
// process has exited), a timeout passes, or a context ends: the wait of a
// retire on the kernel's word rather than on a look every retirePoll. An
// eventfd, written when the context ends, wakes the poll. Close it when
// done; it is for one goroutine.
type exitWaiter struct {
	efd  int // -1: no eventfd, ctx is looked at between bounded polls
	stop func() bool
	done chan struct{}
}

// ctxSlice bounds one poll when no eventfd could be made: how long a
// cancelled retire may go unnoticed.
const ctxSlice = 100 * time.Millisecond

func newExitWaiter(ctx context.Context) *exitWaiter {
	w := &exitWaiter{efd: -1}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return w
	}
	w.efd, w.done = efd, make(chan struct{})
	w.stop = context.AfterFunc(ctx, func() {
		defer close(w.done)
		one := [8]byte{1}
		_, _ = unix.Write(efd, one[:])
	})
	return w
}

// close releases the eventfd, once the write that ctx's end may have
// started is over (the fd's number is not reused under it).
func (w *exitWaiter) close() {
	if w.efd < 0 {
		return
	}
	if !w.stop() {
		<-w.done
	}
	unix.Close(w.efd)
}

// await blocks until one of fds polls readable, d has passed, or ctx
// ends (its error). fds may be empty: it then waits for d or ctx.
func (w *exitWaiter) await(ctx context.Context, fds []int, d time.Duration) error {
	end := time.Now().Add(d)
	pfds := make([]unix.PollFd, 0, len(fds)+1)
	for _, fd := range fds {
		pfds = append(pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	if w.efd >= 0 {
		pfds = append(pfds, unix.PollFd{Fd: int32(w.efd), Events: unix.POLLIN})
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if w.efd < 0 {
			left = min(left, ctxSlice)
		}
		// Round up: a poll that returns before the timeout only spins.
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		n, err := unix.Poll(pfds, ms)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// A poll the kernel refuses: sleep the rest as the ticker did.
			return sleepCtx(ctx, min(left, retirePoll))
		case n == 0:
			continue // timed out: the loop looks at the clock and ctx
		}
		for _, p := range pfds[:len(fds)] {
			if p.Revents != 0 {
				return nil
			}
		}
		// Only the eventfd: ctx has ended (the loop returns its error).
	}
}

// pidfdOf returns the number of r's pidfd, or -1 when it has none.
func pidfdOf(r *pidRef) int {
	if r.fd == nil {
		return -1
	}
	return int(r.fd.Fd())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// groupGone reports, with one syscall, a process group that has no
// process left, not even one exited and not yet reaped. false says
// nothing: look in /proc (groupAlive).
func groupGone(pgid int) bool {
	return pgid > 1 && errors.Is(unix.Kill(-pgid, 0), unix.ESRCH)
}
