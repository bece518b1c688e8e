package github

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// deliveries remembers the ids of the last deliveries, to answer a
// redelivery (which reuses the id) without acting twice. When full, the
// oldest id is forgotten first. With a file (persist), the ids are kept
// across restarts: each new one is appended, and the file is rewritten
// with only the remembered ones when it holds twice as many. Safe for
// concurrent use.
type deliveries struct {
	mu   sync.Mutex
	max  int
	ids  map[string]struct{}
	ring []string // ids in arrival order once full; next is the oldest
	next int

	path    string   // "" without a file
	f       *os.File // appended to; nil while the file cannot be written
	lines   int      // ids in the file
	log     *slog.Logger
	onWrite func(path string, err error) // nil: failures are logged
}

func newDeliveries(max int) *deliveries {
	return &deliveries{max: max, ids: make(map[string]struct{})}
}

// persist reads the ids kept in path (a torn or garbled line is skipped)
// and appends new ones there from now on. A file that cannot be written
// is reported to onWrite (when set) and the ids are kept in memory,
// written whole at the next delivery that can write them; only a file
// that cannot be read is an error.
func (d *deliveries) persist(path string, log *slog.Logger, onWrite func(string, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.path, d.log, d.onWrite = path, log, onWrite
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	lines := strings.Split(string(b), "\n")
	// The last piece is "" after a complete line, or a torn write.
	for _, id := range lines[:len(lines)-1] {
		if validDeliveryID(id) {
			d.remember(id)
		}
	}
	err = d.compact()
	if onWrite == nil {
		return err
	}
	onWrite(path, err)
	return nil
}

// validDeliveryID reports whether id can be kept one a line.
func validDeliveryID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "\r\n\x00")
}

// add records id and reports whether it was new. Of concurrent calls
// with the same id, exactly one sees true.
func (d *deliveries) add(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, seen := d.ids[id]; seen {
		return false
	}
	d.remember(id)
	if d.path == "" || !validDeliveryID(id) {
		return true
	}
	var err error
	switch {
	case d.f == nil || d.lines > 2*d.max:
		// The file could not be written before, or holds twice what is
		// remembered: written whole.
		err = d.compact()
	default:
		if _, err = d.f.WriteString(id + "\n"); err != nil {
			d.f.Close()
			d.f = nil // written whole next time
		}
		d.lines++
	}
	switch {
	case d.onWrite != nil:
		d.onWrite(d.path, err)
	case err != nil:
		d.log.Warn("cannot keep a webhook delivery id", "file", d.path, "err", err)
	}
	return true
}

func (d *deliveries) remember(id string) {
	if _, seen := d.ids[id]; seen {
		return
	}
	if len(d.ring) < d.max {
		d.ring = append(d.ring, id)
	} else {
		delete(d.ids, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.max
	}
	d.ids[id] = struct{}{}
}

// compact rewrites the file with the remembered ids, oldest first, and
// opens it for appending; d.mu is held.
func (d *deliveries) compact() error {
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
	var b strings.Builder
	order := append(append([]string(nil), d.ring[d.next:]...), d.ring[:d.next]...)
	for _, id := range order {
		b.WriteString(id + "\n")
	}
	tmp := d.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return err
	}
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	d.f, d.lines = f, len(order)
	return nil
}
