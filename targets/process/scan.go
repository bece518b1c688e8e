package process

import (
	"bytes"
	"os"
	"strconv"
	"sync/atomic"
)

// The live fleet, read from /proc.
//
// A scan reads /proc/PID/stat of every process (one small read each) and
// the environment of as few as it can: List reads /proc/PID/environ only
// of session leaders that no record already names with the same pid and
// start time, and of processes whose session leader is gone (what is left
// of an instance whose leader died); Retire and the sweep, which must find
// every process of one instance, read the environment of all.

// snapshot is one scan of /proc: every process by pid.
type snapshot map[int]procStat

// scans counts the scans of /proc (for tests: a batch of retires shares
// one).
var scans atomic.Int64

// scanProcs reads the stat of every process of the machine. Processes
// that end while it reads are left out.
func scanProcs() (snapshot, error) {
	scans.Add(1)
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	snap := make(snapshot, len(names))
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			snap[pid] = st
		}
	}
	return snap, nil
}

// leaderGone reports whether st belongs to a session whose leader has
// exited: the session of an instance whose leader died, or of some
// unrelated daemon. Kernel threads and processes whose session is outside
// the pid namespace (session 0) are never such members.
func (s snapshot) leaderGone(st procStat) bool {
	if st.session <= 0 {
		return false
	}
	l, ok := s[st.session]
	return !ok || l.exited()
}

// readEnviron reads the environment pid was started with. A process of
// another user, a zombie or a kernel thread has none that can be read.
func readEnviron(pid int) []byte {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return b
}

// readArgv reads the argv of pid (nil when it cannot be read).
func readArgv(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	var argv []string
	for a := range bytes.SplitSeq(bytes.TrimSuffix(b, []byte{0}), []byte{0}) {
		argv = append(argv, string(a))
	}
	return argv
}

// member is a live process that carries an instance's MOLT_INSTANCE and
// this Target's Dir in its environment.
type member struct {
	pid int
	procStat
	vars map[string]string
}

// leader reports whether m leads its own session, as an instance does.
func (m member) leader() bool { return m.pid == m.session }

// byInstance returns the live processes of every instance of Dir, by
// instance id, reading the environment of every live process (the
// expensive scan: for Retire and the sweep, not for List). Only the ids
// want names are kept; nil keeps all.
func (t *Target) byInstance(snap snapshot, want func(id string) bool) map[string][]member {
	out := make(map[string][]member)
	for pid, st := range snap {
		if st.exited() || st.session == 0 {
			continue
		}
		vars := molts(readEnviron(pid), t.dir)
		if vars == nil {
			continue
		}
		id := vars[envInstance]
		if want != nil && !want(id) {
			continue
		}
		out[id] = append(out[id], member{pid: pid, procStat: st, vars: vars})
	}
	return out
}

// oldestLeader returns the session leader among ms that started first
// (the instance's own; a child that made a session of its own started
// later), or false when none of them leads a session.
func oldestLeader(ms []member) (member, bool) {
	var best member
	ok := false
	for _, m := range ms {
		if m.leader() && (!ok || m.startTime < best.startTime) {
			best, ok = m, true
		}
	}
	return best, ok
}
