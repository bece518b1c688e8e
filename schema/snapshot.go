package schema

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing/fstest"
	"unicode/utf8"
)

// snapshot is the in-memory copy of the CUE files under the fleet
// directory, rooted at that directory. It is the only file system CUE sees.
type snapshot struct {
	dir    string // the fleet directory inside the source fs.FS
	files  fstest.MapFS
	issues []Issue
	total  int64
	count  int // .cue files read
	// local counts the .cue files directly in dir.
	local int
}

// name returns the name that a snapshot path has in the source fs.FS.
func (s *snapshot) name(rel string) string {
	return path.Join(s.dir, rel)
}

func (s *snapshot) refuse(rel, msg string) {
	s.issues = append(s.issues, Issue{File: s.name(rel), Message: msg})
}

// readSnapshot copies the CUE files under dir into memory: the .cue files
// of dir itself and, when dir holds a cue.mod directory (a module whose
// packages may import each other), the .cue files of its sub-directories.
// Directories whose names start with "." are skipped. Symbolic links are
// never followed: one that CUE could load becomes an issue. Returned errors
// are I/O errors; everything the user must fix is in snapshot.issues.
func (l Loader) readSnapshot(fsys fs.FS, dir string) (*snapshot, error) {
	s := &snapshot{dir: dir, files: fstest.MapFS{}}
	if linked, err := linkedDir(fsys, dir); err != nil || linked != "" {
		if linked != "" {
			s.issues = append(s.issues, Issue{File: linked, Message: "symlinks are not followed"})
		}
		return s, err
	}
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil // reported as "no CUE files"
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	module := false
	for _, e := range entries {
		if e.Name() == "cue.mod" && e.IsDir() {
			module = true
		}
	}
	for _, e := range entries {
		stop, err := l.visit(fsys, s, e.Name(), e, module)
		if err != nil || stop {
			return s, err
		}
	}
	return s, nil
}

// linkedDir returns the first element of dir's path, from the top, that is
// a symbolic link, when fsys can tell (fs.ReadLinkFS): the directory must
// not be reached through a link either.
func linkedDir(fsys fs.FS, dir string) (string, error) {
	if dir == "." {
		return "", nil
	}
	elems := strings.Split(dir, "/")
	for i := range elems {
		p := strings.Join(elems[:i+1], "/")
		fi, err := fs.Lstat(fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil // reported as "no CUE files"
		}
		if err != nil {
			return "", fmt.Errorf("stat %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return p, nil
		}
	}
	return "", nil
}

// visit copies one entry (a path relative to the snapshot root) and, for a
// directory of a module, everything below it. It reports stop when the
// snapshot has grown past its limit.
func (l Loader) visit(fsys fs.FS, s *snapshot, rel string, e fs.DirEntry, module bool) (stop bool, err error) {
	base := path.Base(rel)
	switch {
	case !fs.ValidPath(s.name(rel)):
		// A name that is not UTF-8 (Git allows any bytes) cannot be
		// opened through an fs.FS: the file is refused, not an I/O error
		// that no commit could get past.
		if strings.HasSuffix(base, ".cue") {
			s.refuse(rel, "the file name is not valid UTF-8")
		}
		return false, nil
	case e.Type()&fs.ModeSymlink != 0:
		if strings.HasSuffix(base, ".cue") || base == "cue.mod" || l.linksToCUE(fsys, s.name(rel)) {
			s.refuse(rel, "symlinks are not followed")
		}
		return false, nil
	case e.IsDir():
		if !module || strings.HasPrefix(base, ".") {
			return false, nil
		}
		if depth := strings.Count(rel, "/") + 1; depth > l.maxDepth() {
			s.refuse(rel, fmt.Sprintf("directories are nested deeper than the limit of %d levels%s", l.maxDepth(), hint(l.Names.MaxDepth)))
			return true, nil
		}
		entries, err := fs.ReadDir(fsys, s.name(rel))
		if err != nil {
			return false, fmt.Errorf("read %s: %w", s.name(rel), err)
		}
		for _, c := range entries {
			stop, err := l.visit(fsys, s, path.Join(rel, c.Name()), c, module)
			if err != nil || stop {
				return stop, err
			}
		}
		return false, nil
	case !strings.HasSuffix(base, ".cue"):
		return false, nil
	case !e.Type().IsRegular():
		s.refuse(rel, "not a regular file")
		return false, nil
	}
	return l.copyFile(fsys, s, rel)
}

// linksToCUE reports whether the symbolic link name points at a .cue file
// name, when fsys can tell.
func (l Loader) linksToCUE(fsys fs.FS, name string) bool {
	target, err := fs.ReadLink(fsys, name)
	return err == nil && strings.HasSuffix(target, ".cue")
}

func (l Loader) copyFile(fsys fs.FS, s *snapshot, rel string) (stop bool, err error) {
	maxFile, maxTotal := l.limits()
	if s.count++; s.count > l.maxFiles() {
		s.refuse(rel, fmt.Sprintf("more CUE files than the limit of %d%s", l.maxFiles(), hint(l.Names.MaxFiles)))
		return true, nil
	}
	f, err := fsys.Open(s.name(rel))
	if err != nil {
		return false, fmt.Errorf("open %s: %w", s.name(rel), err)
	}
	defer f.Close()
	// Read one byte past the limit to tell "at the limit" from "over it"
	// without trusting Stat.
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", s.name(rel), err)
	}
	if int64(len(data)) > maxFile {
		s.refuse(rel, fmt.Sprintf("file is larger than the limit of %s%s", byteSize(maxFile), hint(l.Names.MaxFileBytes)))
		return false, nil
	}
	s.total += int64(len(data))
	if s.total > maxTotal {
		s.refuse(rel, fmt.Sprintf("CUE files add up to more than the limit of %s%s", byteSize(maxTotal), hint(l.Names.MaxTotalBytes)))
		return true, nil
	}
	if !utf8.Valid(data) {
		line, col := invalidUTF8(data)
		s.issues = append(s.issues, Issue{File: s.name(rel), Line: line, Column: col, Message: "invalid UTF-8: a CUE file is UTF-8 text"})
		return false, nil
	}
	s.files[rel] = &fstest.MapFile{Data: data, Mode: 0o444}
	if !strings.Contains(rel, "/") {
		s.local++
	}
	return false, nil
}

// invalidUTF8 returns the 1-based line and byte column of the first byte
// of data that is not valid UTF-8.
func invalidUTF8(data []byte) (line, col int) {
	line, col = 1, 1
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && n <= 1:
			return line, col
		case r == '\n':
			line, col = line+1, 1
		default:
			col += n
		}
		data = data[n:]
	}
	return line, col
}

// byteSize prints n in the largest binary unit that divides it.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
