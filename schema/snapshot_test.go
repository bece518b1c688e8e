package schema

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// writeFiles writes files (slash-separated names) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadRefusesSymlinks(t *testing.T) {
	tests := []struct {
		name string
		// link is created in the repository, pointing at target; a
		// target starting with "outside/" is made absolute, in a
		// directory beside the repository.
		link, target string
		dir          string
		want         []string
	}{{
		name:   "cue file pointing outside the repository",
		link:   "repo/evil.cue",
		target: "outside/secret.cue",
		dir:    "repo",
		want:   []string{"repo/evil.cue: symlinks are not followed"},
	}, {
		name:   "relative link escaping the repository",
		link:   "repo/fleet/up.cue",
		target: "../../outside/secret.cue",
		dir:    "repo/fleet",
		want:   []string{"repo/fleet/up.cue: symlinks are not followed"},
	}, {
		name:   "link without the extension to a cue file",
		link:   "repo/notes",
		target: "outside/secret.cue",
		dir:    "repo",
		want:   []string{"repo/notes: symlinks are not followed"},
	}, {
		name:   "link to a cue.mod directory",
		link:   "repo/cue.mod",
		target: "outside",
		dir:    "repo",
		want:   []string{"repo/cue.mod: symlinks are not followed"},
	}, {
		name:   "link to a directory inside a module",
		link:   "repo/lib/shared.cue",
		target: "../../outside/secret.cue",
		dir:    "repo",
		want:   []string{"repo/lib/shared.cue: symlinks are not followed"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{
				"outside/secret.cue":      "package fleet\n\nservices: stolen: process: command: [\"./x\"]\n",
				"repo/fleet.cue":          "package fleet\n\nservices: web: process: command: [\"./app\"]\n",
				"repo/fleet/fleet.cue":    "package fleet\n\nservices: web: process: command: [\"./app\"]\n",
				"repo/cue.mod/module.cue": "module: \"example.com/repo\"\nlanguage: version: \"v0.12.0\"\n",
			})
			if tt.link == "repo/cue.mod" {
				os.RemoveAll(filepath.Join(root, "repo", "cue.mod"))
			}
			target := tt.target
			if strings.HasPrefix(target, "outside") {
				target = filepath.Join(root, filepath.FromSlash(target))
			}
			link := filepath.Join(root, filepath.FromSlash(tt.link))
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, link); err != nil {
				t.Skipf("symlinks unavailable: %v", err)
			}
			f, err := Load(os.DirFS(root), tt.dir)
			if err == nil {
				t.Fatalf("Load returned %+v, want an error", f)
			}
			if diff := cmp.Diff(tt.want, issueStrings(t, err)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadRefusesLinkedDir(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"outside/fleet.cue":      "package fleet\n\nservices: stolen: process: command: [\"./x\"]\n",
		"outside/prod/fleet.cue": "package fleet\n\nservices: stolen: process: command: [\"./x\"]\n",
		"repo/README.md":         "# fleet\n",
	})
	if err := os.Symlink(filepath.Join(root, "outside"), filepath.Join(root, "repo", "fleets")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	for _, dir := range []string{"fleets", "fleets/prod"} {
		_, err := Load(os.DirFS(filepath.Join(root, "repo")), dir)
		if diff := cmp.Diff([]string{"fleets: symlinks are not followed"}, issueStrings(t, err)); diff != "" {
			t.Errorf("Load(%q) issues (-want +got):\n%s", dir, diff)
		}
	}
}

// TestLoadIgnoresOtherSymlinks: a link that CUE could not load anyway is
// neither followed nor an error.
func TestLoadIgnoresOtherSymlinks(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"fleet.cue": "package fleet\n\nservices: web: process: command: [\"./app\"]\n",
		"README.md": "# fleet\n",
	})
	if err := os.Symlink("README.md", filepath.Join(root, "README")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	if _, err := Load(os.DirFS(root), "."); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

// recordFS records every name opened or listed.
type recordFS struct {
	fs.FS
	mu    sync.Mutex
	names []string
}

func (r *recordFS) record(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, name)
}

func (r *recordFS) Open(name string) (fs.File, error) {
	r.record(name)
	return r.FS.Open(name)
}

// Stat is not recorded: it reads no content. (Load checks that no
// element of the directory's path is a symbolic link.)
func (r *recordFS) Stat(name string) (fs.FileInfo, error) {
	return fs.Stat(r.FS, name)
}

func (r *recordFS) ReadDir(name string) ([]fs.DirEntry, error) {
	r.record(name)
	return fs.ReadDir(r.FS, name)
}

func TestLoadReadsOnlyInsideDir(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  []string
	}{{
		name: "plain directory: its own files only",
		files: fstest.MapFS{
			"cue.mod/module.cue":      {Data: []byte("module: \"example.com/repo\"\nlanguage: version: \"v0.12.0\"\n")},
			"root.cue":                {Data: []byte("package fleet\n")},
			"fleets/shared.cue":       {Data: []byte("package fleet\n")},
			"fleets/prod/fleet.cue":   {Data: []byte("package fleet\n\nservices: web: process: command: [\"./app\"]\n")},
			"fleets/prod/notes.txt":   {Data: []byte("not read")},
			"fleets/prod/sub/x.cue":   {Data: []byte("package x\n")},
			"fleets/prod/.git/config": {Data: []byte("not read")},
		},
		want: []string{"fleets/prod", "fleets/prod/fleet.cue"},
	}, {
		name: "module: its packages too, hidden directories skipped",
		files: fstest.MapFS{
			"other.cue":                      {Data: []byte("package fleet\n")},
			"fleets/prod/cue.mod/module.cue": {Data: []byte("module: \"example.com/repo\"\nlanguage: version: \"v0.12.0\"\n")},
			"fleets/prod/fleet.cue":          {Data: []byte("package fleet\n\nservices: web: process: command: [\"./app\"]\n")},
			"fleets/prod/lib/lib.cue":        {Data: []byte("package lib\n")},
			"fleets/prod/lib/data.json":      {Data: []byte("{}")},
			"fleets/prod/.github/x.cue":      {Data: []byte("package x\n")},
		},
		want: []string{
			"fleets/prod", "fleets/prod/cue.mod", "fleets/prod/cue.mod/module.cue",
			"fleets/prod/fleet.cue", "fleets/prod/lib", "fleets/prod/lib/lib.cue",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordFS{FS: tt.files}
			if _, err := Load(r, "fleets/prod"); err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tt.want, r.names); diff != "" {
				t.Errorf("names read (-want +got):\n%s", diff)
			}
		})
	}
}

// errFS fails every read.
type errFS struct{}

func (errFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
}

func TestLoadIOErrorIsNotInvalid(t *testing.T) {
	_, err := Load(errFS{}, ".")
	var inv *InvalidError
	if err == nil || errors.As(err, &inv) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Load = %v, want an I/O error wrapping fs.ErrPermission", err)
	}
}

func TestLoaderValidate(t *testing.T) {
	if err := (Loader{}).Validate(); err != nil {
		t.Errorf("zero Loader: %v", err)
	}
	if err := (Loader{MaxFileBytes: -1}).Validate(); err == nil {
		t.Error("negative limit accepted")
	}
	if _, err := (Loader{MaxTotalBytes: -1}).Load(fstest.MapFS{}, "."); err == nil {
		t.Error("Load with a negative limit succeeded")
	}
}

func TestLoadInvalidDir(t *testing.T) {
	for _, dir := range []string{"../x", "/abs"} {
		if _, err := Load(fstest.MapFS{}, dir); err == nil {
			t.Errorf("Load(%q) succeeded", dir)
		}
	}
}
