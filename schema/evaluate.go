package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime/debug"
	"strings"
	"testing/fstest"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
)

// Snapshot is the input of an evaluation: the CUE files of one fleet as
// LoadContext read them, already checked against the loader's caps. It
// crosses a process boundary as JSON (see Child).
type Snapshot struct {
	// Dir is the fleet directory inside the loaded fs.FS; positions are
	// relative to the root of that fs.FS.
	Dir string `json:"dir"`
	// Files maps a slash-separated path relative to Dir to its content.
	Files map[string][]byte `json:"files"`
}

// Evaluator evaluates a snapshot into a fleet. An error that wraps
// *InvalidError means the snapshot is not a valid fleet.
type Evaluator interface {
	Evaluate(ctx context.Context, s *Snapshot) (*Fleet, error)
}

// InProcess evaluates in the calling process: nothing bounds its time or
// memory, and cancelling ctx does not stop it. It is the evaluation that a
// Child runs, and the one tests can use.
type InProcess struct{}

// Evaluate evaluates s in this process.
func (InProcess) Evaluate(_ context.Context, s *Snapshot) (*Fleet, error) {
	return importSnapshot(s).evaluate()
}

func (s *snapshot) export() *Snapshot {
	out := &Snapshot{Dir: s.dir, Files: make(map[string][]byte, len(s.files))}
	for name, f := range s.files {
		out.Files[name] = f.Data
	}
	return out
}

func importSnapshot(in *Snapshot) *snapshot {
	s := &snapshot{dir: path.Clean(in.Dir), files: fstest.MapFS{}}
	for name, data := range in.Files {
		s.files[name] = &fstest.MapFile{Data: data, Mode: 0o444}
		if !strings.Contains(name, "/") {
			s.local++
		}
	}
	return s
}

// externs refuses the @extern attributes of the instance's files and of
// the packages it imports: @extern(embed) makes CUE read files by name,
// and a fleet is its CUE files only.
func (s *snapshot) externs(inst *build.Instance) []Issue {
	var issues []Issue
	eachFile(inst, func(f *ast.File) bool {
		for _, d := range f.Decls {
			a, ok := d.(*ast.Attribute)
			if !ok {
				continue
			}
			if name, _ := a.Split(); name != "extern" {
				continue
			}
			is := Issue{Message: fmt.Sprintf("%s is refused: a fleet is its CUE files, nothing is embedded or read from outside them", a.Text)}
			setPos(&is, a.Pos())
			issues = append(issues, is)
		}
		return true
	})
	return issues
}

// eachFile calls fn with each file of inst and of the packages it
// imports, each package once, until fn returns false.
func eachFile(inst *build.Instance, fn func(*ast.File) bool) {
	seen := map[*build.Instance]bool{}
	more := true
	var walk func(*build.Instance)
	walk = func(inst *build.Instance) {
		if inst == nil || seen[inst] || !more {
			return
		}
		seen[inst] = true
		for _, f := range inst.Files {
			if more = fn(f); !more {
				return
			}
		}
		for _, imp := range inst.Imports {
			walk(imp)
		}
	}
	walk(inst)
}

// evalResult is what a Child writes on its stdout: exactly one of the
// fields is set.
type evalResult struct {
	Fleet  *Fleet  `json:"fleet,omitempty"`
	Issues []Issue `json:"issues,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// tightenGC is what a child does once its value is evaluated, before
// reading it. Its heap is then mostly that value, alive to the end, and
// the reading makes garbage (an evaluation context for each value asked
// for, tens of KiB per service) that the collector's default pacing lets
// grow the heap by as much as it holds live: a child of 1,000 services
// peaked 20 % higher, one of 5,000 35 %. From there on, a collection
// starts when the heap has grown by a quarter.
func tightenGC() { debug.SetGCPercent(25) }

// ServeEvaluation is the child's side of a Child: it reads one Snapshot
// (JSON) from r, evaluates it in this process and writes the result to w
// (JSON: the fleet, the issues of an invalid fleet, or an error). It
// returns an error only when r or w fail; the process should then exit
// non-zero. Apply the limits first (LimitSelf).
func ServeEvaluation(r io.Reader, w io.Writer) error {
	var in Snapshot
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	f, err := importSnapshot(&in).evaluateThen(tightenGC)
	var res evalResult
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		res.Issues = inv.Issues
	case err != nil:
		res.Error = err.Error()
	default:
		res.Fleet = f
	}
	if err := json.NewEncoder(w).Encode(res); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
