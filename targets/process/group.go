package process

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// group is every process of one instance that a retire must end: its
// leader's process group, while it is known to be the instance's, and
// each live process carrying the instance's MOLT_INSTANCE (children that
// left the group, or what is left of the group once its leader is gone).
type group struct {
	// pgid is the process group to signal, 0 for none. It is the
	// instance's when its leader is the recorded process, or when a
	// process carrying the instance's id is in it: the kernel does not
	// reuse a group's id while one member lives, and while the retire
	// waits the group is looked at on every exit, and every retirePoll
	// whenever its live leader does not pin the id (see wait).
	pgid int
	// leader is the recorded leader (nil when it is gone).
	leader *record
	// members are the processes that carry the instance's id, each held
	// by a pidfd where the kernel has them.
	members []*pidRef
	// leaderLive says whether the leader ran at the last look (live).
	leaderLive bool
	// looks and ticks count the looks at the group (live) and the waits
	// bounded by retirePoll rather than by an exit: what tests read.
	looks, ticks int
}

// groupOf finds the processes of instance id; rec is its record (nil
// when there is none). It opens a pidfd on every member: close the group
// when done.
func (t *Target) groupOf(id string, rec *record) (*group, error) {
	snap, err := scanProcs()
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	return t.groupFrom(rec, t.byInstance(snap, func(got string) bool { return got == id })[id]), nil
}

// groupFrom is the group of an instance whose record is rec (nil: none)
// and whose live processes a scan found to be ms.
func (t *Target) groupFrom(rec *record, ms []member) *group {
	g := &group{}
	if rec != nil && t.same(rec) {
		g.leader = rec
		g.pgid = rec.PID // a session leader leads its own group
	}
	candidate := 0
	if rec != nil {
		candidate = rec.PID
	} else if l, ok := oldestLeader(ms); ok {
		candidate = l.pid
	} else if len(ms) > 0 {
		candidate = ms[0].session
	}
	for _, m := range ms {
		if g.pgid == 0 && m.pgrp == candidate && candidate > 1 {
			g.pgid = candidate
		}
		if r := holdPid(m.pid, m.startTime); r != nil {
			r.pgrp = m.pgrp
			g.members = append(g.members, r)
		}
	}
	return g
}

// empty reports a group with nothing to stop.
func (g *group) empty() bool { return g.pgid == 0 && len(g.members) == 0 }

func (g *group) close() {
	for _, m := range g.members {
		m.release()
	}
}

// signal sends sig to the group and to every member outside it.
func (g *group) signal(sig syscall.Signal) error {
	if g.pgid > 0 {
		if err := signalGroup(g.pgid, sig); err != nil {
			return err
		}
	}
	for _, m := range g.members {
		if g.pgid == 0 || m.pgrp != g.pgid {
			m.signal(sig)
		}
	}
	return nil
}

// live reports whether any process of the group is alive. Once the group
// is seen empty it stays so: its id may be reused after that.
func (g *group) live() bool {
	g.looks++
	alive := g.leaderAlive()
	g.leaderLive = alive
	// A live leader is in its own group (a session leader cannot leave
	// it) and pins its id: no scan of /proc is needed to know it lives.
	// A group with no process at all is told by one kill(2), not a scan.
	if g.pgid > 0 && !(alive && g.leader.PID == g.pgid) {
		if !groupGone(g.pgid) && groupAlive(g.pgid) {
			alive = true
		} else if !alive {
			g.pgid = 0
		}
	}
	for _, m := range g.members {
		if m.alive() {
			alive = true
		}
	}
	return alive
}

// leaderAlive reports whether the recorded leader still runs.
func (g *group) leaderAlive() bool {
	if g.leader == nil {
		return false
	}
	st, err := readStat(g.leader.PID)
	return err == nil && st.startTime == g.leader.StartTime && !st.exited()
}

// wait waits up to d for every process of the group to end. It returns
// true as soon as they have, false when d has passed, and ctx's error if
// ctx ends first.
//
// It waits on the kernel's word where it can: while every live process
// of the group is held by a pidfd, and the group's id (if any) is pinned
// by its live leader (no other group can take that id while the leader's
// pid is in use), it sleeps until one of them exits and then looks again.
// Otherwise (no pidfds, a process of the group no pidfd holds, a group
// outliving its leader) it also looks every retirePoll, as the group must
// be seen alive at every look for its id to stay the instance's.
func (g *group) wait(ctx context.Context, d time.Duration) (bool, error) {
	end := time.Now().Add(d)
	w := newExitWaiter(ctx)
	defer w.close()
	for {
		if !g.live() {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		left := time.Until(end)
		if left <= 0 {
			return false, nil
		}
		fds, held := g.watch()
		if !held {
			left = min(left, retirePoll)
			g.ticks++
		}
		if err := w.await(ctx, fds, left); err != nil {
			return false, err
		}
	}
}

// watch returns the pidfds of the group's live members, and whether they
// alone tell when the group has ended: every live process known is held
// by one, and the group's id, if any, is its live leader's.
func (g *group) watch() (fds []int, held bool) {
	held = true
	pinned := g.pgid == 0
	leaderHeld := g.leader == nil
	for _, m := range g.members {
		isLeader := g.leader != nil && m.pid == g.leader.PID && m.start == g.leader.StartTime
		// A leader that ended since the look still pinned the group's id
		// then: its pidfd, readable already, has the wait look again at
		// once rather than after a tick.
		if !m.alive() && !(isLeader && g.leaderLive) {
			continue
		}
		fd := pidfdOf(m)
		if fd < 0 {
			held = false
			continue
		}
		fds = append(fds, fd)
		if m.pid == g.pgid {
			pinned = true
		}
		if isLeader {
			leaderHeld = true
		}
	}
	if !leaderHeld && g.leaderAlive() {
		held = false
	}
	return fds, held && pinned
}

// killAll sends SIGKILL to the processes ms (what is left of an instance
// that never served) and waits a little for them to go.
func killAll(ms []member) {
	var refs []*pidRef
	for _, m := range ms {
		if r := holdPid(m.pid, m.startTime); r != nil {
			refs = append(refs, r)
		}
	}
	g := &group{members: refs}
	defer g.close()
	g.signal(syscall.SIGKILL)
	g.wait(context.Background(), killWait)
}
