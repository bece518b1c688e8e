package git

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// maxPacks is how many pack files a cache may hold before Fetch repacks
// it: every fetch that brings objects adds a pack, and every object lookup
// searches the index of every pack.
var maxPacks = 32

// packWindow is how many objects the repack compares for deltas (git's
// default).
const packWindow = 10

// noTime tells DeleteOldObjectPackAndIndex to delete whatever the age.
var noTime time.Time

// compact repacks the cache into one pack when it holds more than
// maxPacks. It keeps every object, including history that a force-push
// left behind: instances may still carry a revision from it, and reading
// that commit again is how a rollback finds the old spec. The caller holds
// the lock.
//
// go-git's Repository.RepackObjects is not used: it keeps only what refs
// reach, and its object walk fails on symbolic links and submodules.
func (r *Repo) compact() error {
	old, err := r.store.ObjectPacks()
	if err != nil || len(old) <= maxPacks {
		return err
	}
	hashes, err := r.packedObjects(old)
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

// packedObjects lists the objects of the given packs, from their indexes.
func (r *Repo) packedObjects(packs []plumbing.Hash) ([]plumbing.Hash, error) {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	for _, p := range packs {
		f, err := os.Open(filepath.Join(r.dir, "objects", "pack", "pack-"+p.String()+".idx"))
		if err != nil {
			return nil, err
		}
		idx := idxfile.NewMemoryIndex()
		err = idxfile.NewDecoder(f).Decode(idx)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", p, err)
		}
		entries, err := idx.Entries()
		if err != nil {
			return nil, err
		}
		for {
			e, err := entries.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				entries.Close()
				return nil, fmt.Errorf("pack %s: %w", p, err)
			}
			if !seen[e.Hash] {
				seen[e.Hash] = true
				out = append(out, e.Hash)
			}
		}
		entries.Close()
	}
	return out, nil
}
