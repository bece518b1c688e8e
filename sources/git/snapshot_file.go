package git

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
)

var (
	errIsDir  = errors.New("is a directory")
	errNotDir = errors.New("not a directory")
)

// fsMode maps a Git file mode to an fs.FileMode with the permissions a
// checkout would give.
func fsMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Executable:
		return 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	default:
		return 0o644
	}
}

// fileInfo describes an entry of a treeFS.
type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.modTime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

// dirEntry is an entry of a directory listing.
type dirEntry struct {
	fsys *treeFS
	node node
}

func (e *dirEntry) Name() string      { return e.node.name }
func (e *dirEntry) IsDir() bool       { return e.node.mode == filemode.Dir }
func (e *dirEntry) Type() fs.FileMode { return fsMode(e.node.mode).Type() }
func (e *dirEntry) String() string    { return fs.FormatDirEntry(e) }

// Info describes the entry (a symbolic link itself, not its target); it
// reads the object's size from the cache.
func (e *dirEntry) Info() (fs.FileInfo, error) {
	e.fsys.r.mu.Lock()
	defer e.fsys.r.mu.Unlock()
	if e.fsys.r.store == nil {
		return nil, &fs.PathError{Op: "stat", Path: e.node.name, Err: fs.ErrClosed}
	}
	info, err := e.fsys.info(e.node)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: e.node.name, Err: err}
	}
	return info, nil
}

// file is an open regular file, its content in memory.
type file struct {
	info *fileInfo
	*bytes.Reader
}

func newFile(info *fileInfo, data []byte) *file {
	return &file{info: info, Reader: bytes.NewReader(data)}
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

// dirFile is an open directory.
type dirFile struct {
	info    *fileInfo
	entries []fs.DirEntry
	offset  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errIsDir}
}

// ReadDir follows fs.ReadDirFile: n <= 0 returns all remaining entries and
// a nil error; n > 0 returns at most n and io.EOF at the end.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if n <= 0 {
		d.offset = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.offset += n
	return rest[:n], nil
}
