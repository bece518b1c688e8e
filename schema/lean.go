package schema

import (
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/ast/astutil"
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
		switch {
		case len(keep) == 0:
			// (Nothing but messages: left as it is.)
		case len(keep) == 1:
			// *x alone is x.
			if u, ok := keep[0].(*ast.UnaryExpr); ok && u.Op == token.MUL {
				keep[0] = u.X
			}
			c.Replace(keep[0])
		default:
			x := keep[0]
			for _, y := range keep[1:] {
				x = &ast.BinaryExpr{X: x, Op: token.OR, Y: y}
			}
			c.Replace(x)
		}
		return true
	})
	return f, nil
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
