package reconciler

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering: the reconciler speaks only its own interfaces and the
// types of package targets; no file under reconciler/, tests included,
// imports an implementation of a target or a front.
func TestLayering(t *testing.T) {
	forbidden := []string{
		"github.com/molt-dev/molt/targets/router",
		"github.com/molt-dev/molt/targets/process",
		"github.com/molt-dev/molt/targets/docker",
		"github.com/molt-dev/molt/targets/haproxy",
	}
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s imports %s", path, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("only %d Go files found under reconciler/", files)
	}
}
