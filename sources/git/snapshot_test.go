package git_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/sources/git"
)

func readFile(fsys fs.FS, name string) ([]byte, error) { return fs.ReadFile(fsys, name) }

func snapshot(t *testing.T, r *git.Repo, c git.Commit, subdir string) fs.FS {
	t.Helper()
	fsys, err := r.Snapshot(context.Background(), c, subdir)
	if err != nil {
		t.Fatalf("Snapshot(%s, %q): %v", c.Revision(), subdir, err)
	}
	return fsys
}

// walk lists every entry under fsys as "path mode".
func walk(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	var got []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		got = append(got, p+" "+info.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatalf("WalkDir: %v", err)
	}
	return got
}

func TestSnapshotTree(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)
	main := resolve(t, r, "main")
	fsys := snapshot(t, r, main, "")

	want := []string{
		". drwxr-xr-x",
		"README.md -rw-r--r--",
		"bin drwxr-xr-x",
		"bin/run.sh -rwxr-xr-x",
		"escape Lrwxrwxrwx",
		"fleet drwxr-xr-x",
		"fleet/services.cue -rw-r--r--",
		"fleet/sub drwxr-xr-x",
		"fleet/sub/values.cue -rw-r--r--",
		"fleetlink Lrwxrwxrwx",
		"link.cue Lrwxrwxrwx",
		// modules/ holds only the submodule, which is left out.
		"modules drwxr-xr-x",
	}
	if diff := cmp.Diff(want, walk(t, fsys)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}

	files := map[string]string{
		"README.md":            "hello again\n",
		"fleet/sub/values.cue": "package fleet\n\nvalues: port: 8080\n",
		"bin/run.sh":           "#!/bin/sh\necho hi\n",
	}
	for name, content := range files {
		b, err := readFile(fsys, name)
		if err != nil || string(b) != content {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, b, err, content)
		}
		info, err := fs.Stat(fsys, name)
		if err != nil || info.Size() != int64(len(content)) {
			t.Errorf("Stat(%s) = %v, %v; want size %d", name, info, err, len(content))
		}
		if !info.ModTime().Equal(main.When) { // committer date = author date here
			t.Errorf("Stat(%s).ModTime = %v, want the commit date", name, info.ModTime())
		}
	}

	// An older commit reads its own content: nothing is shared through
	// a work tree.
	old := snapshot(t, r, resolve(t, r, "v1"), "")
	if b, _ := readFile(old, "README.md"); string(b) != "hello\n" {
		t.Errorf("v1 README.md = %q", b)
	}
	if _, err := fs.Stat(old, "modules"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("v1 has modules/: %v", err)
	}
}

func TestSnapshotSubdir(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)
	main := resolve(t, r, "main")

	for _, subdir := range []string{"fleet", "fleet/", "./fleet", "fleet/./sub/"} {
		fsys := snapshot(t, r, main, subdir)
		want := []string{"services.cue", "sub/values.cue"}
		if strings.Contains(subdir, "sub") {
			want = []string{"values.cue"}
		}
		if err := fstest.TestFS(fsys, want...); err != nil {
			t.Errorf("subdir %q: %v", subdir, err)
		}
	}
}

func TestSnapshotSubdirErrors(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)
	main := resolve(t, r, "main")

	tests := []struct {
		subdir string
		is     error
		msg    string
	}{
		{"nope", fs.ErrNotExist, `subdir "nope"`},
		{"fleet/nope", fs.ErrNotExist, `subdir "fleet/nope"`},
		{"..", fs.ErrInvalid, "inside the repository"},
		{"fleet/../..", fs.ErrInvalid, "inside the repository"},
		{"fleet/sub/..", fs.ErrInvalid, "inside the repository"},
		{"/fleet", fs.ErrInvalid, "inside the repository"},
		{"README.md", nil, "not a directory"},
		{"fleetlink", nil, "not a directory"},
		{"fleetlink/sub", git.ErrSymlink, "symbolic link"},
		{"modules/sub", fs.ErrNotExist, `subdir "modules/sub"`},
	}
	for _, tt := range tests {
		t.Run(tt.subdir, func(t *testing.T) {
			_, err := r.Snapshot(context.Background(), main, tt.subdir)
			if err == nil {
				t.Fatal("Snapshot succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v: want errors.Is %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}

	if _, err := r.Snapshot(context.Background(), git.Commit{Hash: strings.Repeat("0", 40)}, ""); err == nil {
		t.Error("Snapshot of a missing commit succeeded")
	}
	if _, err := r.Snapshot(context.Background(), git.Commit{Hash: "abc"}, ""); err == nil {
		t.Error("Snapshot of a short hash succeeded")
	}
}

// Symbolic links are listed as links and never followed.
func TestSnapshotSymlinks(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)
	fsys := snapshot(t, r, resolve(t, r, "main"), "")
	rl, ok := fsys.(fs.ReadLinkFS)
	if !ok {
		t.Fatal("snapshot does not implement fs.ReadLinkFS")
	}

	links := map[string]string{
		"link.cue":  "fleet/services.cue",
		"escape":    "../../etc/passwd",
		"fleetlink": "fleet",
	}
	for name, target := range links {
		if got, err := rl.ReadLink(name); got != target || err != nil {
			t.Errorf("ReadLink(%s) = %q, %v; want %q", name, got, err, target)
		}
		for op, stat := range map[string]func(fs.FS, string) (fs.FileInfo, error){"Stat": fs.Stat, "Lstat": fs.Lstat} {
			info, err := stat(fsys, name)
			if err != nil || info.Mode().Type() != fs.ModeSymlink || info.Size() != int64(len(target)) {
				t.Errorf("%s(%s) = %v, %v; want a symlink of size %d", op, name, info, err, len(target))
			}
		}
		if _, err := fsys.Open(name); !errors.Is(err, git.ErrSymlink) {
			t.Errorf("Open(%s): %v, want ErrSymlink", name, err)
		}
		if b, err := readFile(fsys, name); !errors.Is(err, git.ErrSymlink) {
			t.Errorf("ReadFile(%s) = %q, %v; want ErrSymlink", name, b, err)
		}
	}

	// A path through a link to a directory is not followed either.
	for _, name := range []string{"fleetlink/services.cue", "fleetlink/sub/values.cue"} {
		if _, err := readFile(fsys, name); !errors.Is(err, git.ErrSymlink) {
			t.Errorf("ReadFile(%s): %v, want ErrSymlink", name, err)
		}
		if _, err := fs.Stat(fsys, name); !errors.Is(err, git.ErrSymlink) {
			t.Errorf("Stat(%s): %v, want ErrSymlink", name, err)
		}
	}
	if _, err := fs.ReadDir(fsys, "fleetlink"); err == nil {
		t.Error("ReadDir(fleetlink) succeeded")
	}
	if _, err := rl.ReadLink("README.md"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(README.md): %v, want fs.ErrInvalid", err)
	}
	var pe *fs.PathError
	if _, err := fsys.Open("link.cue"); !errors.As(err, &pe) || pe.Path != "link.cue" {
		t.Errorf("Open(link.cue): %v, want a *fs.PathError for link.cue", err)
	}
}

func TestSnapshotPaths(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.src.Dir)
	fetch(t, r)
	fsys := snapshot(t, r, resolve(t, r, "main"), "")

	tests := []struct {
		name string
		is   error
	}{
		{"nope", fs.ErrNotExist},
		{"README.md/x", fs.ErrNotExist},
		{"modules/sub", fs.ErrNotExist}, // the submodule
		{"../README.md", fs.ErrInvalid},
		{"/README.md", fs.ErrInvalid},
		{"fleet/", fs.ErrInvalid},
		{"./README.md", fs.ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := fsys.Open(tt.name); !errors.Is(err, tt.is) {
			t.Errorf("Open(%q): %v, want %v", tt.name, err, tt.is)
		}
		if _, err := fs.Stat(fsys, tt.name); !errors.Is(err, tt.is) {
			t.Errorf("Stat(%q): %v, want %v", tt.name, err, tt.is)
		}
	}
	if _, err := readFile(fsys, "fleet"); err == nil {
		t.Error("ReadFile of a directory succeeded")
	}
	d, err := fsys.Open("fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Errorf("Read of a directory: %v, want an error", err)
	}
}

// The snapshot and Fetch share the Repo's lock: reading while fetching is
// safe (run with -race).
func TestSnapshotConcurrentWithFetch(t *testing.T) {
	f := newFixture(t)
	_, url := f.served(t)
	r := open(t, url)
	fetch(t, r)
	fsys := snapshot(t, r, resolve(t, r, "main"), "fleet")

	var wg sync.WaitGroup
	for i := range 3 {
		f.src.WriteFile("fleet/n.cue", strings.Repeat("x", i+1))
		f.src.Commit("n")
		f.src.Push()
		wg.Go(func() {
			if _, err := r.Fetch(context.Background()); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := fstest.TestFS(fsys, "services.cue"); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
}
