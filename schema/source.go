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

// defs are the #Fleet definitions a fleet is checked against: the
// schema's, the lean schema's and the light schema's (see lean.go), with
// the defaults the light schema moved to the reader.
type defs struct {
	full, lean, light cue.Value
	moved             map[string]map[string]string
}

var compiled struct {
	once sync.Once
	defs defs
	err  error
}

// fleetDef returns the #Fleet definition, compiled once per process in a
// context of its own. Values of different contexts may be unified, and a
// cue.Value is safe for concurrent use.
func fleetDef() (cue.Value, error) {
	d, err := fleetDefs()
	return d.full, err
}

// fleetDefs returns the definitions of the schema, the lean schema and
// the light schema.
func fleetDefs() (defs, error) {
	compiled.once.Do(func() {
		compiled.defs, compiled.err = compileDefs()
	})
	return compiled.defs, compiled.err
}

func compileDefs() (defs, error) {
	var d defs
	ctx := newContext()
	def := cue.MakePath(cue.Def("#Fleet"))
	compile := func(what string, v cue.Value) (cue.Value, error) {
		if err := v.Validate(); err != nil {
			return cue.Value{}, fmt.Errorf("compile %s: %s", what, cueerrors.Details(err, nil))
		}
		f := v.LookupPath(def)
		return f, f.Err()
	}
	var err error
	if d.full, err = compile("schema", ctx.CompileBytes(source, cue.Filename(schemaFile))); err != nil {
		return d, err
	}
	lean, err := leanSource(source)
	if err != nil {
		return d, fmt.Errorf("lean schema: %w", err)
	}
	if d.lean, err = compile("lean schema", ctx.BuildFile(lean)); err != nil {
		return d, err
	}
	light, _ := leanSource(source)
	d.moved = lightSource(light)
	if d.light, err = compile("light schema", ctx.BuildFile(light)); err != nil {
		return d, err
	}
	return d, nil
}

// newContext returns a CUE context whose results do not depend on the
// CUE_EXPERIMENT and CUE_DEBUG environment of the machine.
func newContext() *cue.Context {
	return cuecontext.New(
		cuecontext.EvaluatorVersion(cuecontext.EvalV3),
		cuecontext.CUE_DEBUG(""),
	)
}
