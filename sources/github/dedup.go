package github

import "sync"

// deliveries remembers the ids of the last deliveries, to answer a
// redelivery (which reuses the id) without acting twice. When full, the
// oldest id is forgotten first. Safe for concurrent use.
type deliveries struct {
	mu   sync.Mutex
	max  int
	ids  map[string]struct{}
	ring []string // ids in arrival order once full; next is the oldest
	next int
}

func newDeliveries(max int) *deliveries {
	return &deliveries{max: max, ids: make(map[string]struct{})}
}

// add records id and reports whether it was new. Of concurrent calls
// with the same id, exactly one sees true.
func (d *deliveries) add(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, seen := d.ids[id]; seen {
		return false
	}
	if len(d.ring) < d.max {
		d.ring = append(d.ring, id)
	} else {
		delete(d.ids, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.max
	}
	d.ids[id] = struct{}{}
	return true
}
