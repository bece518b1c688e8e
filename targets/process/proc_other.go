//go:build !linux

package process

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// The process target reads /proc and relies on Linux process semantics;
// elsewhere New fails (bootID) and nothing below is reached.

var errUnsupported = errors.New("the process target needs Linux")

func bootID() (string, error) { return "", errUnsupported }

type procStat struct {
	state     byte
	pgrp      int
	session   int
	startTime uint64
}

func (s procStat) exited() bool { return true }

func readStat(int) (procStat, error) { return procStat{}, errUnsupported }

func groupAlive(int) bool { return false }

func signalGroup(int, syscall.Signal) error { return errUnsupported }

func sysProcAttr() *syscall.SysProcAttr { return nil }

func openPidfd(int) *os.File { return nil }

func pidfdExited(uintptr) bool { return false }

func inodeOf(os.FileInfo) (uint64, uint64, time.Time, bool) { return 0, 0, time.Time{}, false }

func flock(*os.File) error { return errUnsupported }

type pidRef struct {
	pid   int
	start uint64
	pgrp  int
}

func holdPid(int, uint64) *pidRef { return nil }

func (r *pidRef) release() {}

func (r *pidRef) alive() bool { return false }

func (r *pidRef) signal(syscall.Signal) {}
