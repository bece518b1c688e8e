package process

import (
	"os"
	"os/exec"
	"sync"
	"time"
)

// reapPoll is how often a reaper without a pidfd looks at /proc.
const reapPoll = time.Second

// A reaper waits for one child to exit and collects it, so that no zombie
// stays while molt runs. It can be halted, leaving the child running: that
// is how Close stops tracking children without waiting for them.
type reaper struct {
	stop  chan struct{}
	once  sync.Once
	pidfd *os.File // nil: poll /proc instead
	// forgotten (guarded by Target.mu) is set when the instance is retired:
	// the reaper still collects the child but records nothing.
	forgotten bool
	// adopted: the process is not molt's child but an instance found
	// running (see adopt); nothing is left to collect once it is retired.
	adopted bool
	// start is the process's start time, when known: with /proc polled,
	// another process with the pid is an exit too.
	start uint64
}

func (r *reaper) halt() {
	r.once.Do(func() {
		close(r.stop)
		if r.pidfd != nil {
			r.pidfd.Close() // wakes a waitExit blocked on it
		}
	})
}

// track starts a reaper for cmd, the child of instance id, unless the
// Target is closed. The reaper records how the child ended.
func (t *Target) track(id string, cmd *exec.Cmd) {
	r := &reaper{stop: make(chan struct{}), pidfd: openPidfd(cmd.Process.Pid)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		r.halt()
		return
	}
	if old := t.reapers[id]; old != nil {
		// A List between the provision's rename and this call adopted
		// the new instance (exits.go): the child's own reaper replaces
		// that watcher, which must stop, or Close would wait for it.
		old.halt()
	}
	t.reapers[id] = r
	t.wg.Go(func() {
		defer r.halt()
		if !r.waitExit(cmd.Process.Pid) {
			return
		}
		cmd.Wait() // returns at once: the child has exited
		how := "exited"
		if cmd.ProcessState != nil {
			how = cmd.ProcessState.String() // "exit status 1", "signal: killed"
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.reapers[id] == r {
			delete(t.reapers, id)
		}
		if !r.forgotten {
			t.exits[id] = how
			t.noted(id)
		}
	})
}

// expectExit says that instance id is about to be ended on purpose (a
// retire): its exit is not reported to WatchExits, and it is not watched
// from now on. forget ends that.
func (t *Target) expectExit(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.notes.retiring == nil {
		t.notes.retiring = make(map[string]bool)
	}
	t.notes.retiring[id] = true
}

// forget drops what the Target knows of instance id, once it is retired.
// A reaper still running is left to collect the child (which has exited
// or is about to), so that no zombie stays.
func (t *Target) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.exits, id)
	delete(t.notes.retiring, id)
	if r := t.reapers[id]; r != nil {
		r.forgotten = true
		if r.adopted { // no child to collect: stop watching
			delete(t.reapers, id)
			r.halt()
		}
	}
}

// exitOf returns how the child of instance id ended, if this Target reaped it.
func (t *Target) exitOf(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exits[id]
}

// waitExit blocks until child pid has exited (true) or the reaper is halted
// (false). It never reaps.
func (r *reaper) waitExit(pid int) bool {
	if r.pidfd != nil {
		if rc, err := r.pidfd.SyscallConn(); err == nil {
			// Read calls the function, and waits for the pidfd to poll
			// readable (the child exited) whenever it returns false.
			if rc.Read(pidfdExited) == nil {
				return true
			}
		}
		select {
		case <-r.stop:
			return false
		default: // the pidfd cannot be polled: fall back to /proc
		}
	}
	tick := time.NewTicker(reapPoll)
	defer tick.Stop()
	for {
		st, err := readStat(pid)
		if err == nil && (st.exited() || (r.start != 0 && st.startTime != r.start)) {
			return true
		}
		if r.adopted && err != nil {
			return true // not a child: gone without a zombie
		}
		select {
		case <-r.stop:
			return false
		case <-tick.C:
		}
	}
}
