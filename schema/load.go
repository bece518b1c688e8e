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

// Default limits of a Loader.
const (
	DefaultMaxFileBytes  = 1 << 20  // 1 MiB
	DefaultMaxTotalBytes = 16 << 20 // 16 MiB
)

// Loader loads fleets. Its zero value uses the default limits; it is safe
// for concurrent use.
type Loader struct {
	// MaxFileBytes caps each .cue file; zero means DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxTotalBytes caps the sum of all .cue files read; zero means
	// DefaultMaxTotalBytes.
	MaxTotalBytes int64
}

// Validate reports limits that cannot work.
func (l Loader) Validate() error {
	if l.MaxFileBytes < 0 || l.MaxTotalBytes < 0 {
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

// Load loads the fleet in directory dir of fsys ("." for the root) with
// the default limits. See Loader.Load.
func Load(fsys fs.FS, dir string) (*Fleet, error) {
	return Loader{}.Load(fsys, dir)
}

// Load reads the CUE files of the fleet in directory dir of fsys ("." for
// the root) into memory, unifies them with the schema, checks every rule
// and returns the fleet with its defaults filled in. It reads nothing
// outside dir, follows no symbolic link and touches no network.
//
// An error that wraps *InvalidError means the snapshot is not a valid
// fleet: it lists every issue found, with positions relative to the root
// of fsys. Any other error is an I/O error reading fsys.
func (l Loader) Load(fsys fs.FS, dir string) (*Fleet, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	dir = path.Clean(dir)
	if !fs.ValidPath(dir) {
		return nil, fmt.Errorf("load fleet: invalid directory %q", dir)
	}
	def, err := fleetDef()
	if err != nil {
		return nil, err
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
	inst, issues := snap.instance()
	if inst == nil {
		return nil, invalid(issues)
	}
	data := newContext().BuildInstance(inst)
	if err := data.Err(); err != nil {
		return nil, invalid(cueIssues(err, data))
	}
	f, issues := check(data, def)
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
		if inst.Err != nil {
			return nil, loadIssues(inst.Err)
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
