package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// bootID identifies the running kernel boot: a pid and start time recorded
// during another boot name nothing.
func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", errors.New("read boot id: empty")
	}
	return id, nil
}

// procStat is what the target needs of /proc/<pid>/stat.
type procStat struct {
	state     byte   // field 3: R, S, D, Z, X, ...
	pgrp      int    // field 5
	session   int    // field 6
	startTime uint64 // field 22, clock ticks after boot
}

// exited reports a process that has ended but not been reaped.
func (s procStat) exited() bool { return s.state == 'Z' || s.state == 'X' }

// statFault, when set (by tests), makes readStat fail for the pids it
// returns an error for, as a /proc that cannot be read would.
var statFault func(pid int) error

// readStat reads /proc/<pid>/stat. A process that does not exist is an
// error matching fs.ErrNotExist.
func readStat(pid int) (procStat, error) {
	if statFault != nil {
		if err := statFault(pid); err != nil {
			return procStat{}, err
		}
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the content of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may itself hold spaces and parentheses,
// so fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("parse /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3.
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("parse /proc stat: too few fields")
	}
	pgrp, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: pgrp: %w", err)
	}
	session, err := strconv.Atoi(f[6-3])
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: session: %w", err)
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: start time: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, session: session, startTime: start}, nil
}

// groupAlive reports whether a live (not zombie) process is in process
// group pgid.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pgid && !st.exited() {
			return true
		}
	}
	return false
}

// signalGroup sends sig to process group pgid. A group that no longer
// exists is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// sysProcAttr starts a child in a session (and process group) of its own,
// so that it survives molt and a retire can signal all it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// openPidfd returns a non-blocking pidfd for child pid, or nil when the
// kernel has none (before Linux 5.3); the reaper then polls /proc.
func openPidfd(pid int) *os.File {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd")
}

// pidfdExited reports whether the process of pidfd fd has exited (the
// pidfd polls readable), without waiting.
func pidfdExited(fd uintptr) bool {
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// inodeOf returns the device, inode and change time of fi.
func inodeOf(fi os.FileInfo) (dev, ino uint64, ctime time.Time, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, time.Time{}, false
	}
	return uint64(st.Dev), st.Ino, time.Unix(st.Ctim.Unix()), true
}

// flock takes an exclusive lock on f without waiting (EWOULDBLOCK when
// another open file holds it).
func flock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// pidRef holds one process found by a scan, by pidfd where the kernel has
// them, so that it is signalled and watched without a race against the
// reuse of its pid.
type pidRef struct {
	pid   int
	start uint64
	pgrp  int
	fd    *os.File // nil: no pidfd, check the start time each time
}

// holdPid returns a pidRef on pid if it is still the live process that
// started at start, else nil.
func holdPid(pid int, start uint64) *pidRef {
	r := &pidRef{pid: pid, start: start}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		r.fd = os.NewFile(uintptr(fd), "pidfd")
	}
	// The pidfd names whatever had pid when it was opened: the process
	// scanned only if that one still runs now.
	if st, err := readStat(pid); err != nil || st.startTime != start || st.exited() {
		r.release()
		return nil
	}
	return r
}

func (r *pidRef) release() {
	if r.fd != nil {
		r.fd.Close()
	}
}

// alive reports whether the process has not exited.
func (r *pidRef) alive() bool {
	if r.fd != nil {
		return !pidfdExited(r.fd.Fd())
	}
	st, err := readStat(r.pid)
	return err == nil && st.startTime == r.start && !st.exited()
}

// signal sends sig to the process, if it is still alive.
func (r *pidRef) signal(sig syscall.Signal) {
	if r.fd != nil {
		_ = unix.PidfdSendSignal(int(r.fd.Fd()), sig, nil, 0)
		return
	}
	if r.alive() {
		_ = syscall.Kill(r.pid, sig)
	}
}
