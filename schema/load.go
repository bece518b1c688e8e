package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"
)

// Default limits of a Loader: a fleet of 5,000 services (one file of about
// 1.5 MB, or 5,000 small files) loads well inside them.
const (
	DefaultMaxFileBytes  = 4 << 20  // 4 MiB
	DefaultMaxTotalBytes = 16 << 20 // 16 MiB
	DefaultMaxFiles      = 10_000
	DefaultMaxDepth      = 32
)

// Loader loads fleets. Its zero value uses the default limits and
// evaluates in the calling process; it is safe for concurrent use.
type Loader struct {
	// MaxFileBytes caps each .cue file; zero means DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxTotalBytes caps the sum of all .cue files read; zero means
	// DefaultMaxTotalBytes.
	MaxTotalBytes int64
	// MaxFiles caps the number of .cue files; zero means DefaultMaxFiles.
	MaxFiles int
	// MaxDepth caps how deep below the fleet directory a module's
	// directories may be nested; zero means DefaultMaxDepth.
	MaxDepth int
	// Names name the settings that change each limit (such as
	// "--eval-max-files"), for the messages of refusals.
	Names LimitNames
	// Evaluator evaluates the snapshot once it has been read and checked
	// against the caps above. Nil evaluates in the calling process, where
	// nothing bounds the time and memory CUE takes: give a *Child
	// whenever the snapshot may be hostile.
	Evaluator Evaluator
}

// LimitNames name the settings that change each limit, for messages such
// as "... (limit --eval-memory)". An empty name is left out.
type LimitNames struct {
	MaxFileBytes, MaxTotalBytes, MaxFiles, MaxDepth string
	Wall, Memory, CPU                               string
}

// hint returns " (limit NAME)", or "" when name is empty.
func hint(name string) string {
	if name == "" {
		return ""
	}
	return " (limit " + name + ")"
}

// Validate reports limits that cannot work.
func (l Loader) Validate() error {
	if l.MaxFileBytes < 0 || l.MaxTotalBytes < 0 || l.MaxFiles < 0 || l.MaxDepth < 0 {
		return errors.New("loader limits must not be negative")
	}
	return nil
}

func (l Loader) limits() (file, total int64) {
	file, total = l.MaxFileBytes, l.MaxTotalBytes
	if file == 0 {
		file = DefaultMaxFileBytes
	}
	if total == 0 {
		total = DefaultMaxTotalBytes
	}
	return file, total
}

func (l Loader) maxFiles() int {
	if l.MaxFiles == 0 {
		return DefaultMaxFiles
	}
	return l.MaxFiles
}

func (l Loader) maxDepth() int {
	if l.MaxDepth == 0 {
		return DefaultMaxDepth
	}
	return l.MaxDepth
}

// Load loads the fleet in directory dir of fsys ("." for the root) with
// the default limits, in the calling process. See Loader.Load.
func Load(fsys fs.FS, dir string) (*Fleet, error) {
	return Loader{}.Load(fsys, dir)
}

// Load is LoadContext with a context that is never cancelled.
func (l Loader) Load(fsys fs.FS, dir string) (*Fleet, error) {
	return l.LoadContext(context.Background(), fsys, dir)
}

// LoadContext reads the CUE files of the fleet in directory dir of fsys
// ("." for the root) into memory, refuses a snapshot past the loader's
// caps, then has the Evaluator unify the files with the schema, check
// every rule and return the fleet with its defaults filled in. It reads
// nothing outside dir, follows no symbolic link and touches no network.
// Cancelling ctx stops an Evaluator that can be stopped (a *Child is
// killed at once); in-process evaluation cannot be interrupted.
//
// An error that wraps *InvalidError means the snapshot is not a valid
// fleet (an evaluation stopped at a limit is one): it lists every issue
// found, with positions relative to the root of fsys. Any other error is
// an I/O error reading fsys, a cancellation, or an evaluator that could
// not run.
func (l Loader) LoadContext(ctx context.Context, fsys fs.FS, dir string) (*Fleet, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	dir = path.Clean(dir)
	if !fs.ValidPath(dir) {
		return nil, fmt.Errorf("load fleet: invalid directory %q", dir)
	}
	snap, err := l.readSnapshot(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load fleet: %w", err)
	}
	if err := invalid(snap.issues); err != nil {
		return nil, err
	}
	if snap.local == 0 {
		return nil, invalid([]Issue{{Message: "no CUE files in " + dir}})
	}
	if l.Evaluator == nil {
		return snap.evaluate()
	}
	return l.Evaluator.Evaluate(ctx, snap.export())
}

// evaluate unifies the snapshot with the schema and checks it, in this
// process.
func (s *snapshot) evaluate() (*Fleet, error) { return s.evaluateThen(nil) }

// evaluateThen is evaluate that calls beforeRead once the value to read
// is evaluated (see check).
func (s *snapshot) evaluateThen(beforeRead func()) (*Fleet, error) {
	inst, issues := s.instance()
	if inst == nil {
		return nil, invalid(issues)
	}
	data := newContext().BuildInstance(inst)
	if err := data.Err(); err != nil {
		return nil, invalid(cueIssues(err, data))
	}
	f, issues, err := check(data, schemas, lightFleet(inst), beforeRead)
	if err != nil {
		return nil, err
	}
	if err := invalid(issues); err != nil {
		return nil, err
	}
	return f, nil
}

// instance runs the CUE loader over the snapshot and picks the fleet's
// package: the one named package, or the files without a package clause
// when there is none.
func (s *snapshot) instance() (*build.Instance, []Issue) {
	cfg := &load.Config{
		FS:       s.files,
		Dir:      "/",
		Package:  "*",
		Env:      []string{},
		Registry: noRegistry{},
		FromFSPath: func(p string) string {
			return s.name(strings.TrimPrefix(p, "/"))
		},
	}
	insts := load.Instances([]string{"."}, cfg)
	var named, anonymous []*build.Instance
	for _, inst := range insts {
		// Refused before the loader's own errors: an embed that failed
		// would only say why it failed.
		if issues := s.externs(inst); len(issues) > 0 {
			return nil, issues
		}
		if inst.Err != nil {
			return nil, s.placed(loadIssues(inst.Err))
		}
		if inst.PkgName == "_" || inst.PkgName == "" {
			anonymous = append(anonymous, inst)
		} else {
			named = append(named, inst)
		}
	}
	switch {
	case len(named) > 1:
		names := make([]string, len(named))
		for i, inst := range named {
			names[i] = fmt.Sprintf("%q", inst.PkgName)
		}
		slices.Sort(names)
		return nil, []Issue{{Message: fmt.Sprintf("found packages %s in %s: a fleet is one package", strings.Join(names, " and "), s.dir)}}
	case len(named) == 1:
		return named[0], nil
	case len(anonymous) == 1 && len(anonymous[0].BuildFiles) > 0:
		return anonymous[0], nil
	}
	return nil, []Issue{{Message: "no CUE files in " + s.dir}}
}

// noRegistry refuses every module download: loading is hermetic.
type noRegistry struct{}

var errNoRegistry = errors.New("module registry access disabled")

func (noRegistry) ModFile(context.Context, module.Version) (*modfile.File, error) {
	return nil, errNoRegistry
}

func (noRegistry) Fetch(context.Context, module.Version) (module.SourceLoc, error) {
	return module.SourceLoc{}, errNoRegistry
}

func (noRegistry) ModuleVersions(context.Context, string) ([]string, error) {
	return nil, errNoRegistry
}
