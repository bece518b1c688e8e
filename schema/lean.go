package schema

import (
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/ast/astutil"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

// The schema says why a value is wrong with disjunctions such as
//
//	replicas: *1 | int & >=0 | error("must be an integer >= 0")
//
// whose last element, error(...), is never a value: it only gives CUE a
// message to report when every other element fails. A disjunction with
// such elements accepts exactly what it accepts without them, with the
// same default, but CUE evaluates each of them for every value of every
// service (a fifth of an evaluation's time and memory).
//
// A fleet is therefore checked first against the lean schema, the schema
// without those elements: a fleet it accepts is valid, with the very
// values the schema gives it. A fleet it refuses is checked again
// against the schema itself, for the messages (see check).

// leanSource returns the schema's syntax without the error(...) elements
// of its disjunctions.
func leanSource(src []byte) (*ast.File, error) {
	f, err := parser.ParseFile(schemaFile, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	astutil.Apply(f, nil, func(c astutil.Cursor) bool {
		e, ok := c.Node().(*ast.BinaryExpr)
		if !ok || e.Op != token.OR {
			return true
		}
		if p, ok := c.Parent().Node().(*ast.BinaryExpr); ok && p.Op == token.OR {
			return true // an element of a larger disjunction: rewritten with it
		}
		var keep []ast.Expr
		for _, x := range disjuncts(e, nil) {
			if !isErrorCall(x) {
				keep = append(keep, x)
			}
		}
		if len(keep) == 1 {
			// *x alone is x.
			if u, ok := keep[0].(*ast.UnaryExpr); ok && u.Op == token.MUL {
				keep[0] = u.X
			}
		}
		if len(keep) > 0 { // (nothing but messages: left as it is)
			c.Replace(disjunction(keep))
		}
		return true
	})
	return f, nil
}

// disjunction returns the disjunction of elems (at least one), in order.
func disjunction(elems []ast.Expr) ast.Expr {
	x := elems[0]
	for _, y := range elems[1:] {
		x = &ast.BinaryExpr{X: x, Op: token.OR, Y: y}
	}
	return x
}

// disjuncts appends the elements of disjunction x to out, in order.
func disjuncts(x ast.Expr, out []ast.Expr) []ast.Expr {
	if e, ok := x.(*ast.BinaryExpr); ok && e.Op == token.OR {
		return disjuncts(e.Y, disjuncts(e.X, out))
	}
	return append(out, x)
}

func isErrorCall(x ast.Expr) bool {
	call, ok := x.(*ast.CallExpr)
	if !ok {
		return false
	}
	id, ok := call.Fun.(*ast.Ident)
	return ok && id.Name == "error"
}

// The light schema goes further: it is the lean schema whose fields with
// a literal default, such as
//
//	replicas: *1 | int & >=0
//
// are optional and without it (replicas?: int & >=0); the reader gives an
// absent field its default (see reader.moved). Those disjunctions are
// most of what is left of an evaluation's cost. A field the light schema
// leaves optional is absent when the fleet does not set it, which is what
// the schema's default stands for, and a value the fleet sets meets the
// same constraint. That holds for every fleet but those that reach such a
// field other than by setting it: an optional field or a pattern
// constraint of their own (CUE leaves a field that only they name
// optional, where the schema's default makes it regular), a default of
// their own (which, unified with the schema's, would decide otherwise), a
// reference to a default. lightFleet refuses the fleets that write any of
// those, and the reader gives up on a moved field whose value is a
// default; the others are checked against the lean schema.

// keptDefaults are the fields whose default the light schema keeps: the
// schema itself reads them (a name and comprehensions' conditions), or
// sets them in comprehensions.
var keptDefaults = map[string]bool{"name": true, "strategy": true, "then": true, "keepPrevious": true}

// lightSource rewrites lean, the lean schema's syntax, into the light
// schema's, and returns the defaults it moved: by definition, by field,
// the literal's CUE text.
func lightSource(lean *ast.File) map[string]map[string]string {
	moved := map[string]map[string]string{}
	for _, d := range lean.Decls {
		def, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		name, _, err := ast.LabelName(def.Label)
		st, isStruct := def.Value.(*ast.StructLit)
		if err != nil || !isStruct || !strings.HasPrefix(name, "#") {
			continue
		}
		for _, e := range st.Elts {
			f, ok := e.(*ast.Field)
			if !ok || f.Constraint != token.ILLEGAL {
				continue
			}
			label, _, err := ast.LabelName(f.Label)
			if err != nil || keptDefaults[label] {
				continue
			}
			lit, rest, ok := literalDefault(f.Value)
			if !ok {
				continue
			}
			if moved[name] == nil {
				moved[name] = map[string]string{}
			}
			moved[name][label] = lit
			f.Constraint, f.Value = token.OPTION, rest
		}
	}
	return moved
}

// literalDefault splits disjunction x into its default, when that is one
// literal, and the rest.
func literalDefault(x ast.Expr) (lit string, rest ast.Expr, ok bool) {
	elems := disjuncts(x, nil)
	var others []ast.Expr
	for _, e := range elems {
		u, marked := e.(*ast.UnaryExpr)
		if !marked || u.Op != token.MUL {
			others = append(others, e)
			continue
		}
		if lit != "" {
			return "", nil, false // two defaults
		}
		switch v := u.X.(type) {
		case *ast.BasicLit:
			lit = v.Value
		case *ast.Ident:
			if v.Name != "true" && v.Name != "false" {
				return "", nil, false
			}
			lit = v.Name
		default:
			return "", nil, false
		}
	}
	if lit == "" || len(others) == 0 {
		return "", nil, false
	}
	return lit, disjunction(others), true
}

// lightFleet reports whether the files of inst and of the packages it
// imports write none of what the light schema cannot stand for: an
// optional or required field, a pattern constraint, a default.
func lightFleet(inst *build.Instance) bool {
	light := true
	eachFile(inst, func(f *ast.File) bool {
		ast.Walk(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				if _, pattern := n.Label.(*ast.ListLit); pattern || n.Constraint != token.ILLEGAL {
					light = false
				}
			case *ast.UnaryExpr:
				if n.Op == token.MUL {
					light = false
				}
			}
			return light
		}, nil)
		return light
	})
	return light
}
