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
// schema's, the lean schema's and the light schema's (see lean.go). A nil
// one is not tried.
type defs struct {
	full, lean func() (cue.Value, error)
	light      func() (lightDef, error)
}

// lightDef is the light schema's #Fleet and the defaults it moved to the
// reader, by definition and field.
type lightDef struct {
	fleet cue.Value
	moved map[string]map[string]string
}

// schemas are molt's, each compiled once per process, in a context of its
// own, when it is first needed (a valid fleet needs one of the three).
// Values of different contexts may be unified, and a cue.Value is safe
// for concurrent use.
var schemas = defs{
	full: sync.OnceValues(func() (cue.Value, error) {
		return compileDef("schema", newContext().CompileBytes(source, cue.Filename(schemaFile)))
	}),
	lean: sync.OnceValues(func() (cue.Value, error) {
		f, err := leanSource(source)
		if err != nil {
			return cue.Value{}, fmt.Errorf("lean schema: %w", err)
		}
		return compileDef("lean schema", newContext().BuildFile(f))
	}),
	light: sync.OnceValues(func() (lightDef, error) {
		f, err := leanSource(source)
		if err != nil {
			return lightDef{}, fmt.Errorf("light schema: %w", err)
		}
		moved := lightSource(f)
		v, err := compileDef("light schema", newContext().BuildFile(f))
		return lightDef{fleet: v, moved: moved}, err
	}),
}

// fleetDef returns the schema's #Fleet definition.
func fleetDef() (cue.Value, error) { return schemas.full() }

// compileDef returns the #Fleet of schema v.
func compileDef(what string, v cue.Value) (cue.Value, error) {
	if err := v.Validate(); err != nil {
		return cue.Value{}, fmt.Errorf("compile %s: %s", what, cueerrors.Details(err, nil))
	}
	f := v.LookupPath(cue.MakePath(cue.Def("#Fleet")))
	return f, f.Err()
}

// fast returns the definition to check a fleet against first, and the
// defaults it moved to the reader: the light schema's when light says the
// fleet is one it stands for, else the lean schema's (none: not tried).
func (d defs) fast(light bool) (cue.Value, map[string]map[string]string, error) {
	switch {
	case light && d.light != nil:
		l, err := d.light()
		return l.fleet, l.moved, err
	case d.lean != nil:
		v, err := d.lean()
		return v, nil, err
	}
	return cue.Value{}, nil, nil
}

// newContext returns a CUE context whose results do not depend on the
// CUE_EXPERIMENT and CUE_DEBUG environment of the machine.
func newContext() *cue.Context {
	return cuecontext.New(
		cuecontext.EvaluatorVersion(cuecontext.EvalV3),
		cuecontext.CUE_DEBUG(""),
	)
}
