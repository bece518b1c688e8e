// Package crash holds molt's crash points: named places in provision,
// retire, route switches, drains, failure records, the GitHub queue and
// fetches where a test can make molt die as abruptly as a SIGKILL, to
// prove that a restart converges from any of them.
//
// A point is inert unless the variable MOLT_CRASH_AT names it when the
// process starts:
//
//	MOLT_CRASH_AT=provision.after-start        die the first time it is reached
//	MOLT_CRASH_AT=provision.after-start:3      die the third time
//
// Before it dies, molt writes one line to stderr, "molt: crash point NAME
// reached", so that a test can tell a crash at the point from a failure.
// The process then sends itself SIGKILL: no deferred function runs, no
// file is closed or flushed, exactly as when the machine kills it.
//
// Every point molt has is listed in Points; a test checks that each is
// called somewhere and that no call names a point not listed.
package crash

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Points are every crash point molt has, in the order a rollout meets them.
var Points = []string{
	"fetch.before-update",    // the fetched objects are in the cache, its ref not yet moved
	"fetch.after-update",     // the cache's ref moved, nothing planned from it yet
	"provision.before-start", // the instance's intent is written, its process (container) not started
	"provision.after-start",  // the process (container) runs, its record is not yet in place
	"provision.after-record", // the instance is recorded, the executor not yet told
	"route.before-switch",    // new routes computed, not yet given to the front
	"route.after-switch",     // the front has the new routes, the traffic record not yet written
	"drain.before",           // retiring instances are about to be drained
	"retire.before-stop",     // the instance is about to be signalled
	"retire.after-stop",      // the instance's process (container) is gone, its record not yet removed
	"failure.before-record",  // a rollout failed, the failure not yet recorded
	"failure.after-record",   // the failure is recorded, the rollback not yet planned
	"github.before-queue",    // a report is about to be queued
	"github.after-queue",     // a report is queued on disk, not yet sent
}

// Env is the variable that arms a point.
const Env = "MOLT_CRASH_AT"

var (
	once   sync.Once
	armed  string
	nth    int
	mu     sync.Mutex
	passes int
)

func load() {
	v := strings.TrimSpace(os.Getenv(Env))
	if v == "" {
		return
	}
	name, count, ok := strings.Cut(v, ":")
	n := 1
	if ok {
		if c, err := strconv.Atoi(count); err == nil && c > 0 {
			n = c
		}
	}
	armed, nth = name, n
}

// At dies when point is the armed one and has been reached as many times
// as asked; otherwise it does nothing (and costs one comparison).
func At(point string) {
	once.Do(load)
	if armed == "" || point != armed {
		return
	}
	mu.Lock()
	passes++
	hit := passes == nth
	mu.Unlock()
	if !hit {
		return
	}
	fmt.Fprintf(os.Stderr, "molt: crash point %s reached\n", point)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	for { // SIGKILL is not delivered synchronously
		time.Sleep(time.Second)
	}
}
