package git

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Snapshot returns the tree of commit c, or of its directory subdir, as a
// read-only file system read straight from the cache's object store:
// nothing is checked out and no work tree exists. subdir is a
// slash-separated path inside the repository ("" or "." for the root); it
// must name a directory and must not contain "..".
//
// The file system implements fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and
// fs.ReadLinkFS. Symbolic links are listed (fs.ModeSymlink) and never
// followed: Open and ReadFile of a link, or of a path through one, fail
// with an error wrapping ErrSymlink; Stat and Lstat describe the link
// itself; ReadLink returns its text. Submodules are left out. Every entry
// has the commit's committer date as its modification time.
//
// Objects are read when asked for, under the Repo's lock; a file's content
// is read whole when it is opened. The file system stays valid after later
// Fetches (the cache never drops an object, even of history that a
// force-push left behind) until the Repo is closed.
func (r *Repo) Snapshot(ctx context.Context, c Commit, subdir string) (fs.FS, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := cleanSubdir(subdir)
	if err != nil {
		return nil, err
	}
	if len(c.Hash) != 40 || !isHex(c.Hash) {
		return nil, fmt.Errorf("snapshot: commit hash %q is not a full hash", c.Hash)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store == nil {
		return nil, errClosed
	}

	commit, err := object.GetCommit(r.store, plumbing.NewHash(c.Hash))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", c.Revision(), err)
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: tree: %w", c.Revision(), err)
	}
	fsys := &treeFS{r: r, modTime: commit.Committer.When, dirs: map[plumbing.Hash]*dirIndex{}}
	fsys.root = fsys.index(root)
	if dir == "." {
		return fsys, nil
	}
	n, err := fsys.lookup("open", dir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("snapshot %s: subdir %q: %w", c.Revision(), subdir, unwrapPathError(err))
	case n.mode != filemode.Dir:
		return nil, fmt.Errorf("snapshot %s: subdir %q is not a directory", c.Revision(), subdir)
	}
	fsys.root = n.dir
	return fsys, nil
}

// cleanSubdir turns Snapshot's subdir into a valid fs path.
func cleanSubdir(subdir string) (string, error) {
	if subdir == "" {
		return ".", nil
	}
	bad := strings.HasPrefix(subdir, "/") || strings.ContainsAny(subdir, "\\\x00")
	for part := range strings.SplitSeq(subdir, "/") {
		bad = bad || part == ".."
	}
	if bad {
		return "", fmt.Errorf("snapshot: subdir %q: %w: want a relative slash-separated path inside the repository", subdir, fs.ErrInvalid)
	}
	return path.Clean(subdir), nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// treeFS is a Git tree as an fs.FS. Its methods take the Repo's lock.
type treeFS struct {
	r       *Repo
	modTime time.Time
	root    *dirIndex
	dirs    map[plumbing.Hash]*dirIndex // decoded trees, by hash
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.ReadLinkFS = (*treeFS)(nil)
)

// dirIndex is a decoded tree with its usable entries by name.
type dirIndex struct {
	hash   plumbing.Hash
	byName map[string]object.TreeEntry
	sorted []object.TreeEntry // by name, as fs.ReadDir wants
}

// node is what a path names: a directory, a file or a symbolic link.
type node struct {
	name string // base name, "." for the root
	mode filemode.FileMode
	hash plumbing.Hash
	dir  *dirIndex // for a directory
}

func (f *treeFS) index(t *object.Tree) *dirIndex {
	if d, ok := f.dirs[t.Hash]; ok {
		return d
	}
	d := &dirIndex{hash: t.Hash, byName: make(map[string]object.TreeEntry, len(t.Entries))}
	for _, e := range t.Entries {
		if e.Mode == filemode.Submodule || !validName(e.Name) {
			continue // no file system meaning, or a name no checkout would write
		}
		d.byName[e.Name] = e
		d.sorted = append(d.sorted, e)
	}
	slices.SortFunc(d.sorted, func(a, b object.TreeEntry) int { return strings.Compare(a.Name, b.Name) })
	f.dirs[t.Hash] = d
	return d
}

func (f *treeFS) subdir(h plumbing.Hash) (*dirIndex, error) {
	if d, ok := f.dirs[h]; ok {
		return d, nil
	}
	t, err := object.GetTree(f.r.store, h)
	if err != nil {
		return nil, err
	}
	return f.index(t), nil
}

// lookup finds name without following symbolic links. The caller holds
// the lock.
func (f *treeFS) lookup(op, name string) (node, error) {
	if f.r.store == nil {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrClosed}
	}
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n := node{name: ".", mode: filemode.Dir, hash: f.root.hash, dir: f.root}
	if name == "." {
		return n, nil
	}
	parts := strings.Split(name, "/")
	for i, part := range parts {
		switch n.mode {
		case filemode.Dir:
		case filemode.Symlink:
			return node{}, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s: %w", path.Join(parts[:i]...), ErrSymlink)}
		default:
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist} // through a file
		}
		e, ok := n.dir.byName[part]
		if !ok {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		n = node{name: part, mode: e.Mode, hash: e.Hash}
		if e.Mode == filemode.Dir {
			d, err := f.subdir(e.Hash)
			if err != nil {
				return node{}, &fs.PathError{Op: op, Path: name, Err: err}
			}
			n.dir = d
		}
	}
	return n, nil
}

// info describes n; the caller holds the lock.
func (f *treeFS) info(n node) (*fileInfo, error) {
	fi := &fileInfo{name: n.name, mode: fsMode(n.mode), modTime: f.modTime}
	if n.mode != filemode.Dir {
		size, err := f.r.store.EncodedObjectSize(n.hash)
		if err != nil {
			return nil, err
		}
		fi.size = size
	}
	return fi, nil
}

// Open opens a file or a directory. It does not follow symbolic links.
func (f *treeFS) Open(name string) (fs.File, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	n, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.mode == filemode.Symlink {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrSymlink}
	}
	info, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if n.mode == filemode.Dir {
		return &dirFile{info: info, entries: f.entries(n.dir)}, nil
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return newFile(info, data), nil
}

// ReadFile returns the content of a file. It does not follow symbolic
// links.
func (f *treeFS) ReadFile(name string) ([]byte, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	n, err := f.lookup("readfile", name)
	if err != nil {
		return nil, err
	}
	switch n.mode {
	case filemode.Symlink:
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: ErrSymlink}
	case filemode.Dir:
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return data, nil
}

// ReadDir lists a directory, sorted by name, submodules left out.
func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	n, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if n.mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return f.entries(n.dir), nil
}

// Stat describes a file, directory or symbolic link (the link itself: it
// is the same as Lstat).
func (f *treeFS) Stat(name string) (fs.FileInfo, error) { return f.stat("stat", name) }

// Lstat describes a file, directory or symbolic link without following it.
func (f *treeFS) Lstat(name string) (fs.FileInfo, error) { return f.stat("lstat", name) }

func (f *treeFS) stat(op, name string) (fs.FileInfo, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	n, err := f.lookup(op, name)
	if err != nil {
		return nil, err
	}
	info, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return info, nil
}

// ReadLink returns the text of a symbolic link: where it points, relative
// to its directory or absolute, exactly as committed.
func (f *treeFS) ReadLink(name string) (string, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	n, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(data), nil
}

// blob reads a blob whole; the caller holds the lock.
func (f *treeFS) blob(h plumbing.Hash) ([]byte, error) {
	obj, err := f.r.store.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var buf bytes.Buffer
	buf.Grow(int(obj.Size()))
	if _, err := buf.ReadFrom(rd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// entries lists d as fs.DirEntry values; sizes are read when asked for.
func (f *treeFS) entries(d *dirIndex) []fs.DirEntry {
	out := make([]fs.DirEntry, len(d.sorted))
	for i, e := range d.sorted {
		out[i] = &dirEntry{fsys: f, node: node{name: e.Name, mode: e.Mode, hash: e.Hash}}
	}
	return out
}

// validName reports whether a tree entry name is a usable path element.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}
