package process

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// found is an instance of Dir that /proc holds and no record names.
type found struct {
	// rec is rebuilt from the environment of its leader; its PID is 0
	// when the leader is gone and only other members of its group live.
	rec *record
	// members counts the live processes of a leaderless one.
	members int
}

// discover returns the instances of Dir that scan snap holds and no
// record names, by id. pids are the leaders the records name (pid to
// start time) and recorded their ids. It reads the environment of the
// session leaders not in pids, and of the processes whose session leader
// is gone and is not a recorded leader; nothing else.
func (t *Target) discover(snap snapshot, pids map[int]uint64, recorded map[string]bool) map[string]found {
	leaders := make(map[string]member)
	orphans := make(map[string][]member)
	for pid, st := range snap {
		if st.exited() || st.session <= 0 {
			continue
		}
		if pid == st.session {
			if start, ok := pids[pid]; ok && start == st.startTime {
				continue // recorded
			}
		} else {
			if !snap.leaderGone(st) {
				continue // a child: its leader is what counts
			}
			if _, ok := pids[st.session]; ok {
				continue // of a recorded instance, listed dead from its record
			}
		}
		vars := molts(readEnviron(pid), t.dir)
		if vars == nil || recorded[vars[envInstance]] {
			continue
		}
		m := member{pid: pid, procStat: st, vars: vars}
		id := vars[envInstance]
		if m.leader() {
			if l, ok := leaders[id]; !ok || m.startTime < l.startTime {
				leaders[id] = m
			}
		} else {
			orphans[id] = append(orphans[id], m)
		}
	}
	out := make(map[string]found)
	for id, l := range leaders {
		rec, err := t.envRecord(l.vars, l.pid, l.startTime, readArgv(l.pid))
		if err != nil {
			t.log.Warn("skipping a process whose molt variables are invalid", "pid", l.pid, "instance", id, "err", err)
			continue
		}
		out[id] = found{rec: rec}
	}
	for id, ms := range orphans {
		if _, ok := out[id]; ok {
			continue
		}
		rec, err := t.envRecord(ms[0].vars, 0, 0, nil)
		if err != nil {
			t.log.Warn("skipping a process whose molt variables are invalid", "pid", ms[0].pid, "instance", id, "err", err)
			continue
		}
		out[id] = found{rec: rec, members: len(ms)}
	}
	return out
}

// leftInGroup counts the live processes of rec's instance other than its
// leader, once the leader is gone: members of its session or process
// group that carry its id (a process that merely took over the number of
// the group is not counted).
func (t *Target) leftInGroup(snap snapshot, rec *record) int {
	n := 0
	for pid, st := range snap {
		if pid == rec.PID || st.exited() || (st.session != rec.PID && st.pgrp != rec.PID) {
			continue
		}
		if vars := molts(readEnviron(pid), t.dir); vars != nil && vars[envInstance] == rec.ID {
			n++
		}
	}
	return n
}

// cache writes rec, rebuilt from a live process, as the instance's record,
// unless a provision or a retire of the instance is under way (its staged
// or retired directory exists: the sweep or the retire owns it). A failure
// is logged once per Target: the instance is listed all the same.
func (t *Target) cache(rec *record) {
	for _, other := range []string{stagePrefix + rec.ID, retiredPrefix + rec.ID} {
		if _, err := os.Lstat(filepath.Join(t.dir, other)); !errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
	dir := filepath.Join(t.dir, rec.ID)
	err := os.MkdirAll(dir, 0o750)
	if err == nil {
		err = writeRecord(dir, rec)
	}
	if err != nil {
		t.mu.Lock()
		warned := t.cacheWarned
		t.cacheWarned = true
		t.mu.Unlock()
		if !warned {
			t.log.Warn("cannot write back the record of an instance found in /proc (it is listed all the same; further failures are not logged)",
				"instance", rec.ID, "err", err)
		}
		return
	}
	t.log.Info("rebuilt the record of an instance from its process", "instance", rec.ID, "service", rec.Labels.Service, "pid", rec.PID)
}
