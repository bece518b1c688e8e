package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxPacks is how many pack files a cache may hold before Fetch repacks
// it: every fetch that brings objects adds a pack, and every object lookup
// searches the index of every pack.
var maxPacks = 32

// packWindow is how many objects the repack compares for deltas (git's
// default).
const packWindow = 10

// repackTimeout bounds a repack. One cut off leaves the cache as it was,
// and a later fetch tries again.
var repackTimeout = 10 * time.Minute

// repackWritten, when set by a test, is called by the repack after it has
// moved its new pack in place and before it deletes the old ones; the
// repack goes on when it returns nil.
var repackWritten func(ctx context.Context) error

// tmpRepackPrefix starts the names of the files a repack writes before it
// moves them in place.
const tmpRepackPrefix = "tmp_repack_"

// startCompact starts a repack of the cache into one pack, in the
// background, when it holds more than maxPacks and no repack is running.
// It keeps every object, including history that a force-push left behind:
// instances may still carry a revision from it, and reading that commit
// again is how a rollback finds the old spec. The caller holds the lock,
// which the repack takes only at the end, to swap the packs; Close cancels
// it and waits for it. A repack that fails is logged, and the next fetch
// that brings objects starts another.
//
// go-git's Repository.RepackObjects is not used: it keeps only what refs
// reach, and its object walk fails on symbolic links and submodules.
func (r *Repo) startCompact(ctx context.Context) {
	if r.repackDone != nil {
		return // one at a time
	}
	old, err := r.store.ObjectPacks()
	if err != nil {
		r.log.Warn("git cache compaction failed", "err", err)
		return
	}
	if len(old) <= maxPacks {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), repackTimeout)
	done := make(chan struct{})
	r.repackDone, r.cancelRepack = done, cancel
	hook := repackWritten
	go func() {
		defer close(done)
		defer cancel()
		err := r.repack(ctx, old, hook)
		r.mu.Lock()
		r.repackDone, r.cancelRepack = nil, nil
		r.mu.Unlock()
		if err != nil {
			// The fetch itself worked; the next one tries again.
			r.log.Warn("git cache compaction failed", "err", err)
		}
	}()
}

// repack writes the objects of the packs old into one new pack beside
// them, without the lock: the packs are immutable, and it reads them
// through a storage of its own, so that Fetch, Resolve and Snapshot go on
// meanwhile. Then it takes the lock to delete the old packs and open the
// storage afresh (go-git's storage remembers the packs it has indexed). A
// repack cut off before that leaves the new pack beside the old ones: the
// objects are in both, and the next repack takes it in.
func (r *Repo) repack(ctx context.Context, old []plumbing.Hash, hook func(context.Context) error) error {
	packDir := filepath.Join(r.dir, "objects", "pack")
	removeStale(packDir)
	hashes, err := packedObjects(packDir, old)
	if err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	st := newStorage(r.dir)
	packHash, err := writePack(ctx, packDir, ctxStorer{ctx: ctx, s: st}, hashes)
	_ = st.Close()
	if err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	if hook != nil {
		if err := hook(ctx); err != nil {
			return fmt.Errorf("repack: %w", err)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	if r.store == nil {
		return errClosed
	}
	_ = r.store.Close()
	var errs []error
	for _, h := range old {
		if h == packHash {
			continue
		}
		// The pack first: go-git finds packs by their .pack file, and
		// an index without its pack is ignored.
		base := filepath.Join(packDir, "pack-"+h.String())
		for _, ext := range []string{".pack", ".idx"} {
			if err := os.Remove(base + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	r.store = newStorage(r.dir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("repack: delete old packs: %w", err)
	}
	r.log.Info("git cache repacked", "packs", len(old), "objects", len(hashes))
	return nil
}

// writePack encodes the objects into a new pack in dir, with its index,
// and returns its hash. It writes both under temporary names, then moves
// the index in place and the pack last. On error it removes what it wrote.
func writePack(ctx context.Context, dir string, s ctxStorer, hashes []plumbing.Hash) (hash plumbing.Hash, err error) {
	pack, err := os.CreateTemp(dir, tmpRepackPrefix)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	idxName := pack.Name() + ".idx"
	defer func() {
		if err != nil {
			_ = pack.Close()
			_ = os.Remove(pack.Name())
			_ = os.Remove(idxName)
		}
	}()
	hash, err = packfile.NewEncoder(ctxWriter{ctx, pack}, s, false).Encode(hashes, packWindow)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := pack.Seek(0, io.SeekStart); err != nil {
		return plumbing.ZeroHash, err
	}
	// The index, from the pack as written: go-git's own pack writer does
	// the same.
	w := new(idxfile.Writer)
	p, err := packfile.NewParser(packfile.NewScanner(ctxReadSeeker{ctx, pack}), w)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sum, err := p.Parse()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("index the new pack: %w", err)
	}
	if sum != hash {
		return plumbing.ZeroHash, fmt.Errorf("index the new pack: checksum %s, written %s", sum, hash)
	}
	idx, err := w.Index()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if err := writeIndex(idxName, idx); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := pack.Sync(); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := pack.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	// Read-only, as git and go-git leave packs.
	if err := errors.Join(os.Chmod(idxName, 0o444), os.Chmod(pack.Name(), 0o444)); err != nil {
		return plumbing.ZeroHash, err
	}
	base := filepath.Join(dir, "pack-"+hash.String())
	if err := os.Rename(idxName, base+".idx"); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := os.Rename(pack.Name(), base+".pack"); err != nil {
		return plumbing.ZeroHash, err
	}
	return hash, nil
}

func writeIndex(name string, idx *idxfile.MemoryIndex) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = idxfile.NewEncoder(f).Encode(idx)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeStale removes the temporary files of a repack that did not finish
// (the process died): only one repack runs on a cache at a time.
func removeStale(dir string) {
	m, _ := filepath.Glob(filepath.Join(dir, tmpRepackPrefix+"*"))
	for _, name := range m {
		_ = os.Remove(name)
	}
}

// packedObjects lists the objects of the given packs in dir, from their
// indexes.
func packedObjects(dir string, packs []plumbing.Hash) ([]plumbing.Hash, error) {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	for _, p := range packs {
		f, err := os.Open(filepath.Join(dir, "pack-"+p.String()+".idx"))
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

// ctxStorer reads objects for the pack encoder until ctx is done: the
// encoder takes no context, and reads every object before it writes.
type ctxStorer struct {
	ctx context.Context
	s   interface {
		storer.EncodedObjectStorer
		storer.DeltaObjectStorer
	}
}

var _ storer.DeltaObjectStorer = ctxStorer{}

func (c ctxStorer) NewEncodedObject() plumbing.EncodedObject { return c.s.NewEncodedObject() }
func (c ctxStorer) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	return c.s.SetEncodedObject(o)
}
func (c ctxStorer) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	return c.s.IterEncodedObjects(t)
}
func (c ctxStorer) HasEncodedObject(h plumbing.Hash) error           { return c.s.HasEncodedObject(h) }
func (c ctxStorer) EncodedObjectSize(h plumbing.Hash) (int64, error) { return c.s.EncodedObjectSize(h) }
func (c ctxStorer) AddAlternate(remote string) error                 { return c.s.AddAlternate(remote) }

func (c ctxStorer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.s.EncodedObject(t, h)
}

// DeltaObject keeps the deltas the old packs already hold.
func (c ctxStorer) DeltaObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.s.DeltaObject(t, h)
}

// ctxWriter fails its writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ctxReadSeeker fails its reads once ctx is done.
type ctxReadSeeker struct {
	ctx context.Context
	r   io.ReadSeeker
}

func (c ctxReadSeeker) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (c ctxReadSeeker) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }
