package schema

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"
)

// childAttr puts the child in a process group of its own (a terminal's
// Ctrl-C reaches only the parent, which decides) and has the kernel kill
// it when the parent dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// residentSet returns the resident set of process pid and its peak so
// far, in bytes (VmRSS and VmHWM in /proc/PID/status), or zeros when they
// cannot be read.
func residentSet(pid int) (rss, peak int64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || (string(key) != "VmRSS" && string(key) != "VmHWM") {
			continue
		}
		f := bytes.Fields(rest) // "12345", "kB"
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			continue
		}
		if string(key) == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak
}

// processUsage returns the CPU time and the peak resident set (bytes) of
// a process that has exited. The kernel's peak counts the memory of the
// parent at the fork too: it is only used when no sample was taken.
func processUsage(ps *os.ProcessState) (time.Duration, int64) {
	if ps == nil {
		return 0, 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return ps.UserTime() + ps.SystemTime(), 0
	}
	return ps.UserTime() + ps.SystemTime(), ru.Maxrss << 10
}

// LimitSelf bounds the calling process: its data segment (RLIMIT_DATA:
// Go's heap and the threads' stacks, not the address space it merely
// reserves) to l.Memory plus DataHeadroom, with a Go soft memory limit
// below l.Memory so that the collector works harder before allocation
// fails; its CPU time (RLIMIT_CPU) to
// l.CPU, whole seconds rounded up (SIGXCPU ends the process with status
// 3, and the kernel's SIGKILL follows a second later); and its wall
// clock to l.Wall plus a second (status 4), in case the parent is gone.
//
// A race-detector build sets no RLIMIT_DATA: ThreadSanitizer's own
// allocations count against it and fail in ways the Go runtime cannot
// report (a bare SIGSEGV, 1 child in 10 in a test), so there the parent's
// resident-set sampling alone enforces l.Memory.
func LimitSelf(l Limits) error {
	l = l.withDefaults()
	if !raceEnabled {
		mem := uint64(l.Memory + DataHeadroom)
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: mem, Max: mem}); err != nil {
			return fmt.Errorf("setrlimit RLIMIT_DATA: %w", err)
		}
	}
	debug.SetMemoryLimit(l.Memory / 10 * 9)
	cpu := uint64(math.Ceil(l.CPU.Seconds()))
	if err := syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpu, Max: cpu + 1}); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_CPU: %w", err)
	}
	xcpu := make(chan os.Signal, 1)
	signal.Notify(xcpu, syscall.SIGXCPU)
	go func() {
		<-xcpu
		fmt.Fprintln(os.Stderr, "evaluation stopped: CPU time limit")
		os.Exit(exitCPU)
	}()
	time.AfterFunc(l.Wall+time.Second, func() {
		fmt.Fprintln(os.Stderr, "evaluation stopped: wall-clock limit")
		os.Exit(exitWall)
	})
	return nil
}
