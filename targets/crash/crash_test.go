package crash

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEveryPointIsPlaced: each point of Points is passed to At somewhere
// in molt's code (tests aside), and no call names a point not listed, so
// the crash tests that arm every point of Points arm every point there is.
func TestEveryPointIsPlaced(t *testing.T) {
	root := filepath.Join("..", "..")
	placed := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "At" {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "crash" {
				return true
			}
			if len(call.Args) != 1 {
				t.Errorf("%s: crash.At with %d arguments", path, len(call.Args))
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok {
				t.Errorf("%s: crash.At with a name that is not a literal", path)
				return true
			}
			name, _ := strconv.Unquote(lit.Value)
			placed[name] = append(placed[name], path)
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Points {
		if len(placed[p]) == 0 {
			t.Errorf("crash point %s is listed but never placed", p)
		}
	}
	for name, where := range placed {
		if !slices.Contains(Points, name) {
			t.Errorf("crash point %s (in %v) is not listed in Points", name, where)
		}
	}
	t.Logf("%d points placed", len(placed))
}

// TestAtIsInertUnlessArmed: with the variable unset, or naming another
// point, At returns.
func TestAtIsInertUnlessArmed(t *testing.T) {
	for _, p := range Points {
		At(p) // MOLT_CRASH_AT is not set in tests
	}
}

// TestAtKills runs this test binary armed at a point and sees it die by
// SIGKILL at the second time it is reached, after the marker line.
func TestAtKills(t *testing.T) {
	if os.Getenv("CRASH_CHILD") == "1" {
		At("retire.before-stop")
		os.Stdout.WriteString("first pass survived\n")
		At("retire.before-stop")
		os.Stdout.WriteString("second pass survived\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestAtKills$")
	cmd.Env = append(os.Environ(), "CRASH_CHILD=1", Env+"=retire.before-stop:2")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != -1 || !strings.Contains(ee.String(), "killed") {
		t.Fatalf("child ended with %v, want killed:\n%s", err, out)
	}
	if !strings.Contains(string(out), "first pass survived") || strings.Contains(string(out), "second pass survived") {
		t.Errorf("the child died at the wrong pass:\n%s", out)
	}
	if !strings.Contains(string(out), "molt: crash point retire.before-stop reached") {
		t.Errorf("no marker line:\n%s", out)
	}
}
