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
	"github.com/rogpeppe/go-internal/txtar"
)

// The tree FuzzLoad builds from its input: a txtar archive whose files go
// under fuzzDir, next to files outside it that the loader must never
// read. A name ending in "@link" is a symbolic link to its content; one
// ending in "/" a directory. The archive is capped so that one
// evaluation stays fast (bounding hostile CUE is the evaluator process's
// job, not the loader's).
const (
	fuzzDir      = "repo/fleet"
	fuzzMaxFiles = 16
	fuzzMaxBytes = 4 << 10 // the sum of the contents kept
	outsideMark  = "OUTSIDE-THE-TREE"
)

// fuzzTree returns the file system of an archive: its files under
// fuzzDir, and files outside fuzzDir (beside it and above it).
func fuzzTree(archive []byte) fstest.MapFS {
	outside := []byte("package fleet\nname: \"" + outsideMark + "\"\nservices: x: process: command: [\"" + outsideMark + "\"]\n")
	fsys := fstest.MapFS{
		"repo/outside.cue":    {Data: outside, Mode: 0o644},
		"secret/fleet.cue":    {Data: outside, Mode: 0o644},
		"repo/sibling/x.cue":  {Data: outside, Mode: 0o644},
		"repo/fleet.cue.keep": {Data: outside, Mode: 0o644},
	}
	budget := fuzzMaxBytes
	for i, f := range parseArchive(archive) {
		if i == fuzzMaxFiles {
			break
		}
		data := f.Data[:min(len(f.Data), budget)]
		budget -= len(data)
		name, mode := f.Name, fs.FileMode(0o644)
		switch {
		case strings.HasSuffix(name, "@link"):
			name, mode = strings.TrimSuffix(name, "@link"), fs.ModeSymlink|0o777
			data = []byte(strings.TrimSpace(string(data)))
		case strings.HasSuffix(name, "/"):
			name, mode, data = strings.TrimSuffix(name, "/"), fs.ModeDir|0o755, nil
		}
		name = fuzzDir + "/" + name
		// Any bytes but "/" make a name, as in Git: only empty, "." and
		// ".." elements are left out.
		if !fs.ValidPath(strings.ToValidUTF8(name, "x")) {
			continue
		}
		fsys[name] = &fstest.MapFile{Data: data, Mode: mode}
	}
	return fsys
}

// parseArchive reads the files of a txtar archive: a line "-- NAME --"
// starts the file NAME. (txtar.Parse of go-internal v1.15.0 panics on the
// line "-- --", so the fuzzed archive is not given to it.)
func parseArchive(data []byte) []txtar.File {
	var files []txtar.File
	for line := range strings.Lines(string(data)) {
		t := strings.TrimSuffix(line, "\n")
		if len(t) >= 6 && strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") {
			files = append(files, txtar.File{Name: strings.TrimSpace(t[3 : len(t)-3])})
			continue
		}
		if len(files) > 0 {
			f := &files[len(files)-1]
			f.Data = append(f.Data, line...)
		}
	}
	return files
}

// watchedFS is a file system that fails the test when a name outside
// fuzzDir, other than the directories leading to it, is asked for, or a
// name is reached through a symbolic link.
type watchedFS struct {
	t    *testing.T
	fsys fstest.MapFS
	mu   sync.Mutex
	read []string
}

func (w *watchedFS) check(op, name string) {
	w.t.Helper()
	w.mu.Lock()
	w.read = append(w.read, name)
	w.mu.Unlock()
	if name != fuzzDir && !strings.HasPrefix(name, fuzzDir+"/") && !strings.HasPrefix(fuzzDir, name+"/") {
		w.t.Errorf("%s %q: outside the tree %s", op, name, fuzzDir)
	}
	if op == "lstat" || op == "readlink" {
		name = filepathDir(name) // the element itself may be a link
	}
	for p := name; p != "." && p != ""; p = filepathDir(p) {
		if fi, err := w.fsys.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			w.t.Errorf("%s %q: through the symbolic link %s", op, name, p)
		}
	}
}

func filepathDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}

func (w *watchedFS) Open(name string) (fs.File, error) {
	w.check("open", name)
	return w.fsys.Open(name)
}

func (w *watchedFS) Lstat(name string) (fs.FileInfo, error) {
	w.check("lstat", name)
	return w.fsys.Lstat(name)
}

func (w *watchedFS) ReadLink(name string) (string, error) {
	w.check("readlink", name)
	return w.fsys.ReadLink(name)
}

var _ fs.ReadLinkFS = (*watchedFS)(nil)

// loadSeeds are archives of fleets, valid and not, that reach the
// loader's branches: modules, imports, symbolic links, odd names.
var loadSeeds = []string{
	"-- fleet.cue --\npackage fleet\n\nservices: web: process: command: [\"./app\"]\n",
	"-- a.cue --\nname: \"prod\"\n-- b.cue --\nservices: web: process: command: [\"./app\"]\n",
	"-- cue.mod/module.cue --\nmodule: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n-- fleet.cue --\npackage fleet\n\nimport \"example.com/fleet/base\"\n\nservices: web: base.#Service & {process: command: [\"./app\"]}\n-- base/base.cue --\npackage base\n\n#Service: {replicas: 3, ...}\n",
	"-- fleet.cue --\npackage fleet\n\nimport \"strings\"\n\nservices: web: {\n\tprocess: command: [\"./app\"]\n\tenv: NAME: strings.ToUpper(\"web\")\n}\n",
	"-- fleet.cue --\npackage fleet\nservices: web: replicas: \"two\"\n",
	"-- fleet.cue --\npackage fleet\nservices: web: {\n",
	"-- evil.cue@link --\n../../secret/fleet.cue\n-- fleet.cue --\npackage fleet\nservices: web: process: command: [\"./app\"]\n",
	"-- cue.mod@link --\n../../secret\n-- fleet.cue --\npackage fleet\n",
	"-- cue.mod/module.cue --\nmodule: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n-- fleet.cue --\npackage fleet\nimport \"example.com/fleet/up\"\nx: up.x\n-- up@link --\n../sibling\n",
	"-- \xff\xfe.cue --\npackage fleet\nservices: \"\xff\": process: command: [\"\xff\"]\n",
	"-- a b/c d.cue --\n-- .hidden/x.cue --\n-- dir/ --\n-- x.cue --\npackage other\n-- y.cue --\npackage fleet\n",
	"-- fleet.cue --\npackage fleet\nimport \"example.com/nothere\"\n",
	"-- fleet.cue --\npackage fleet\n_data: _ @embed(file=\"../../secret/fleet.cue\")\n",
	"-- fleet.cue --\npackage fleet\nname: \"a\" & \"b\"\nservices: web: process: command: [\"./app\"], replicas: -1\n",
}

func FuzzLoad(f *testing.F) {
	for _, s := range loadSeeds {
		f.Add([]byte(s))
	}
	// The fleets of the project's testdata.
	dirs, _ := filepath.Glob(filepath.Join("..", "testdata", "fleets", "*"))
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.cue"))
		var a txtar.Archive
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			a.Files = append(a.Files, txtar.File{Name: filepath.Base(name), Data: b})
		}
		f.Add(txtar.Format(&a))
	}
	loader := Loader{MaxFileBytes: 2 << 10, MaxTotalBytes: fuzzMaxBytes}
	f.Fuzz(func(t *testing.T, archive []byte) {
		tree := fuzzTree(archive)
		load := func() (*Fleet, error) {
			return loader.Load(&watchedFS{t: t, fsys: tree}, fuzzDir)
		}
		fleet, err := load()
		var inv *InvalidError
		switch {
		case err == nil:
			if fleet == nil {
				t.Fatal("no fleet and no error")
			}
			if fleet.Name == outsideMark {
				t.Fatal("the fleet was read from outside the tree")
			}
		case errors.As(err, &inv):
			if fleet != nil {
				t.Fatal("a fleet with issues")
			}
			if len(inv.Issues) == 0 {
				t.Fatal("an invalid fleet without issues")
			}
			for _, is := range inv.Issues {
				if is.File != "" && !strings.HasPrefix(is.File, fuzzDir+"/") {
					t.Errorf("issue %q is placed outside the tree", is)
				}
				if is.Line < 0 || is.Column < 0 || (is.Line == 0) != (is.Column == 0) && is.Line == 0 {
					t.Errorf("issue %q has position %d:%d", is, is.Line, is.Column)
				}
				if is.Message == "" {
					t.Errorf("issue %q has no message", is)
				}
				if strings.Contains(is.Message, outsideMark) {
					t.Errorf("issue %q quotes a file outside the tree", is)
				}
			}
		default:
			t.Fatalf("neither a fleet nor issues: %v", err)
		}
		// Loading is deterministic.
		fleet2, err2 := load()
		if !cmp.Equal(fleet, fleet2) || errString(err) != errString(err2) {
			t.Fatalf("loading twice differs: %v / %v\n%s", err, err2, cmp.Diff(fleet, fleet2))
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestLoadRefusesNonUTF8Name: a .cue file whose name is not UTF-8 (Git
// and Linux allow any bytes) is an issue of the fleet, not an I/O error
// that fails every load of the commit. Found by FuzzLoad (its corpus
// keeps the input).
func TestLoadRefusesNonUTF8Name(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"fleet.cue":        "package fleet\nservices: web: process: command: [\"./app\"]\n",
		"\xff\xfe.cue":     "package fleet\n",
		"notes-\xff.txt":   "not CUE: never read",
		"cue.mod/\xff/x.c": "",
	})
	_, err := Load(os.DirFS(dir), ".")
	if got, want := issueStrings(t, err), []string{"\xff\xfe.cue: the file name is not valid UTF-8"}; !cmp.Equal(got, want) {
		t.Errorf("issues %q, want %q", got, want)
	}
}

// TestLoadPlacesModuleFileIssues: an error in cue.mod/module.cue is placed
// in the file as the source names it, under the fleet's directory, not at
// the loader's own "/cue.mod/module.cue". Found by FuzzLoad.
func TestLoadPlacesModuleFileIssues(t *testing.T) {
	fsys := fstest.MapFS{
		"deploy/cue.mod/module.cue": {Data: []byte("0\n")},
		"deploy/fleet.cue":          {Data: []byte("package fleet\n")},
	}
	_, err := Load(fsys, "deploy")
	issues := issueStrings(t, err)
	if len(issues) == 0 || !strings.HasPrefix(issues[0], "deploy/cue.mod/module.cue:1:1: ") {
		t.Errorf("issues %q, want one placed at deploy/cue.mod/module.cue:1:1", issues)
	}
}
