package schema

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
)

//go:embed molt.cue
var source []byte

// schemaFile is the file name that positions inside the embedded schema
// carry. It cannot be the name of a snapshot file (those are relative
// paths), so positions in the schema are told apart from the user's.
const schemaFile = "/molt/schema.cue"

// Source returns the CUE schema of a fleet, as `molt schema` prints it. The
// file has no package clause; see the package documentation for how to use
// it with `cue vet -c`.
func Source() []byte {
	return bytes.Clone(source)
}

var compiled struct {
	once  sync.Once
	fleet cue.Value // #Fleet
	lean  cue.Value // #Fleet of the lean schema (see lean.go)
	err   error
}

// fleetDef returns the #Fleet definition, compiled once per process in a
// context of its own. Values of different contexts may be unified, and a
// cue.Value is safe for concurrent use.
func fleetDef() (cue.Value, error) {
	full, _, err := fleetDefs()
	return full, err
}

// fleetDefs returns the #Fleet definitions of the schema and of the lean
// schema.
func fleetDefs() (full, lean cue.Value, err error) {
	compiled.once.Do(func() {
		ctx := newContext()
		v := ctx.CompileBytes(source, cue.Filename(schemaFile))
		if err := v.Validate(); err != nil {
			compiled.err = fmt.Errorf("compile schema: %s", cueerrors.Details(err, nil))
			return
		}
		def := cue.MakePath(cue.Def("#Fleet"))
		compiled.fleet = v.LookupPath(def)
		if compiled.err = compiled.fleet.Err(); compiled.err != nil {
			return
		}
		f, err := leanSource(source)
		if err != nil {
			compiled.err = fmt.Errorf("lean schema: %w", err)
			return
		}
		lv := ctx.BuildFile(f)
		if err := lv.Validate(); err != nil {
			compiled.err = fmt.Errorf("compile lean schema: %s", cueerrors.Details(err, nil))
			return
		}
		compiled.lean = lv.LookupPath(def)
		compiled.err = compiled.lean.Err()
	})
	return compiled.fleet, compiled.lean, compiled.err
}

// newContext returns a CUE context whose results do not depend on the
// CUE_EXPERIMENT and CUE_DEBUG environment of the machine.
func newContext() *cue.Context {
	return cuecontext.New(
		cuecontext.EvaluatorVersion(cuecontext.EvalV3),
		cuecontext.CUE_DEBUG(""),
	)
}
