package git

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// checkCache tells whether a cache can be trusted, cheaply: its config and
// HEAD parse, its remote is the expected one, every pack is whole (the
// checksum at the end of the pack is the one its index records), and
// every ref points at an object that decodes, with a commit's tree present.
// It does not read every object; a pack damaged in the middle is found
// only when it is read.
func checkCache(st *filesystem.Storage, url string) error {
	cfg, err := st.Config()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	rc, ok := cfg.Remotes[remoteName]
	if !ok || len(rc.URLs) != 1 || rc.URLs[0] != url {
		return errors.New("config: remote origin missing or not " + url)
	}
	if _, err := st.Reference(plumbing.HEAD); err != nil {
		return fmt.Errorf("HEAD: %w", err)
	}
	if err := checkPacks(st); err != nil {
		return err
	}
	refs, err := st.IterReferences()
	if err != nil {
		return fmt.Errorf("refs: %w", err)
	}
	return refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		if err := checkObject(st, ref.Hash()); err != nil {
			return fmt.Errorf("ref %s: %w", ref.Name(), err)
		}
		return nil
	})
}

func checkObject(st *filesystem.Storage, h plumbing.Hash) error {
	obj, err := st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	switch obj.Type() {
	case plumbing.CommitObject:
		c, err := object.DecodeCommit(st, obj)
		if err != nil {
			return fmt.Errorf("commit %s: %w", h, err)
		}
		if _, err := c.Tree(); err != nil {
			return fmt.Errorf("commit %s: tree: %w", h, err)
		}
	case plumbing.TagObject:
		if _, err := object.DecodeTag(st, obj); err != nil {
			return fmt.Errorf("tag %s: %w", h, err)
		}
	}
	return nil
}

// checkPacks compares each pack's trailing checksum with its index's.
func checkPacks(st *filesystem.Storage) error {
	packs, err := st.ObjectPacks()
	if err != nil {
		return fmt.Errorf("packs: %w", err)
	}
	root := st.Filesystem().Root()
	for _, h := range packs {
		base := filepath.Join(root, "objects", "pack", "pack-"+h.String())
		if err := checkPack(base); err != nil {
			return fmt.Errorf("pack %s: %w", h, err)
		}
	}
	return nil
}

func checkPack(base string) error {
	f, err := os.Open(base + ".idx")
	if err != nil {
		return err
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return fmt.Errorf("index: %w", err)
	}

	p, err := os.Open(base + ".pack")
	if err != nil {
		return err
	}
	defer p.Close()
	info, err := p.Stat()
	if err != nil {
		return err
	}
	const header, trailer = 12, 20
	if info.Size() < header+trailer {
		return errors.New("pack truncated")
	}
	var head [4]byte
	if _, err := io.ReadFull(p, head[:]); err != nil || string(head[:]) != "PACK" {
		return errors.New("pack header damaged")
	}
	var sum [trailer]byte
	if _, err := p.ReadAt(sum[:], info.Size()-trailer); err != nil {
		return err
	}
	if !bytes.Equal(sum[:], idx.PackfileChecksum[:]) {
		return errors.New("pack checksum differs from its index: truncated or overwritten")
	}
	return nil
}
