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

	path  string   // "" without a file
	f     *os.File // appended to
	lines int      // ids in the file
	log   *slog.Logger
}

func newDeliveries(max int) *deliveries {
	return &deliveries{max: max, ids: make(map[string]struct{})}
}

// persist reads the ids kept in path (a torn or garbled line is skipped)
// and appends new ones there from now on.
func (d *deliveries) persist(path string, log *slog.Logger) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.path, d.log = path, log
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
	return d.compact()
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
	if d.f != nil && validDeliveryID(id) {
		if _, err := d.f.WriteString(id + "\n"); err != nil {
			d.log.Warn("cannot keep a webhook delivery id", "file", d.path, "err", err)
		}
		d.lines++
		if d.lines > 2*d.max {
			if err := d.compact(); err != nil {
				d.log.Warn("cannot compact the webhook delivery ids", "file", d.path, "err", err)
			}
		}
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
