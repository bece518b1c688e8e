package git

import (
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// maxPacks is how many pack files a cache may hold before Fetch repacks
// it: every fetch that brings objects adds a pack, and every object lookup
// searches the index of every pack.
var maxPacks = 32

// noTime tells DeleteOldObjectPackAndIndex to delete whatever the age.
var noTime time.Time

// packWindow is how many objects the repack compares for deltas (git's
// default).
const packWindow = 10

// compact repacks the cache into one pack when it holds more than
// maxPacks, dropping the objects that no branch or tag reaches any more
// (those of force-pushed-away history). The caller holds the lock.
//
// go-git's Repository.RepackObjects is not used: its object walk fails on
// symbolic links and submodules.
func (r *Repo) compact() error {
	old, err := r.store.ObjectPacks()
	if err != nil || len(old) <= maxPacks {
		return err
	}
	hashes, err := reachable(r.store)
	if err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	w, err := r.store.PackfileWriter()
	if err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	packHash, err := packfile.NewEncoder(w, r.store, false).Encode(hashes, packWindow)
	if cerr := w.Close(); err == nil {
		err = cerr // Close writes the index and moves the pack in place
	}
	if err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	for _, h := range old {
		if h == packHash {
			continue
		}
		if err := r.store.DeleteOldObjectPackAndIndex(h, noTime); err != nil {
			return fmt.Errorf("repack: delete pack %s: %w", h, err)
		}
	}
	// The storage remembers the packs it had: open it afresh.
	_ = r.store.Close()
	r.store = newStorage(r.dir)
	r.log.Info("git cache repacked", "packs", len(old), "objects", len(hashes))
	return nil
}

// reachable lists every object that a branch or tag of the cache reaches,
// leaving out submodule commits, which live in other repositories.
func reachable(st *filesystem.Storage) ([]plumbing.Hash, error) {
	seen := map[plumbing.Hash]bool{}
	var out, stack []plumbing.Hash
	push := func(h plumbing.Hash) {
		if !seen[h] {
			seen[h] = true
			stack = append(stack, h)
		}
	}
	refs, err := st.IterReferences()
	if err != nil {
		return nil, err
	}
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference {
			push(ref.Hash())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, h)
		obj, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", h, err)
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			c, err := object.DecodeCommit(st, obj)
			if err != nil {
				return nil, err
			}
			push(c.TreeHash)
			for _, p := range c.ParentHashes {
				push(p)
			}
		case plumbing.TreeObject:
			t, err := object.DecodeTree(st, obj)
			if err != nil {
				return nil, err
			}
			for _, e := range t.Entries {
				if e.Mode != filemode.Submodule {
					push(e.Hash)
				}
			}
		case plumbing.TagObject:
			t, err := object.DecodeTag(st, obj)
			if err != nil {
				return nil, err
			}
			push(t.Target)
		}
	}
	return out, nil
}
