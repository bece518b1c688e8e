package github

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// queueFile is the JSON of Dir/github-queue.json.
type queueFile struct {
	Version   int         `json:"version"`
	Pending   []*entry    `json:"pending"`
	Delivered []delivered `json:"delivered,omitempty"`
}

const queueVersion = 1

// load reads the queue file, if any.
func (q *Queue) load() error {
	b, err := os.ReadFile(q.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("github queue: %w", err)
	}
	var f queueFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != queueVersion {
		bad := q.path + ".bad"
		q.log.Error("github queue file unreadable: moved aside, starting empty", "file", q.path, "to", bad, "err", err, "version", f.Version)
		if err := os.Rename(q.path, bad); err != nil {
			return fmt.Errorf("github queue: %w", err)
		}
		return nil
	}
	for _, e := range f.Pending {
		if e == nil || e.Report.Validate() != nil {
			continue
		}
		q.pending[e.Report.Slot()] = e
		q.seq = max(q.seq, e.Seq)
	}
	q.delivered = f.Delivered
	if len(q.pending) > 0 {
		q.log.Info("github reports pending from before", "count", len(q.pending))
	}
	return nil
}

// sorted returns the pending entries, oldest first; q.mu is held.
func (q *Queue) sorted() []*entry {
	out := make([]*entry, 0, len(q.pending))
	for _, e := range q.pending {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// snapshotLocked encodes the state to save, with its generation; q.mu is
// held.
func (q *Queue) snapshotLocked() (int64, []byte) {
	q.gen++
	data, err := json.MarshalIndent(queueFile{Version: queueVersion, Pending: q.sorted(), Delivered: q.delivered}, "", "  ")
	if err != nil { // plain data: cannot happen
		q.log.Error("github queue: encode", "err", err)
		return q.gen, nil
	}
	return q.gen, data
}

// save writes a snapshot atomically (temporary file, sync, rename),
// unless a newer one was written already. A failure is logged and
// counted: the queue goes on in memory.
func (q *Queue) save(gen int64, data []byte) {
	if data == nil {
		return
	}
	q.fileMu.Lock()
	defer q.fileMu.Unlock()
	if gen <= q.written {
		return
	}
	err := writeAtomic(q.path, data)
	if report := q.onWrite.Load(); report != nil {
		(*report)(q.path, err) // says it once, not at every save
	}
	if err != nil {
		q.mu.Lock()
		q.counts.SaveErrors++
		q.mu.Unlock()
		if q.onWrite.Load() == nil {
			q.log.Error("github queue: save", "file", q.path, "err", err)
		}
		return
	}
	q.written = gen
}

// ReportWrites tells fn the outcome of every save of the queue file (its
// path, and nil when it was written) instead of logging each failure: a
// read-only or full state directory is said once by fn's owner. The
// queue goes on in memory either way, and saves at its next change.
func (q *Queue) ReportWrites(fn func(path string, err error)) { q.onWrite.Store(&fn) }

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// digestOf fingerprints a report's content.
func digestOf(r Report) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
