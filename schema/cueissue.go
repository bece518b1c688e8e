package schema

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
)

// disjunctionHeader matches the summary CUE puts before the errors of the
// branches of a disjunction; the branches carry the information.
var disjunctionHeader = regexp.MustCompile(`^\d+ errors in empty disjunction:?$`)

// cueIssues turns evaluation errors into issues. data is the user's
// package before unification with the schema: an error that only has
// positions inside the schema (a missing required field, a rule written in
// the schema) is placed at the nearest value of its path that the user
// wrote.
func cueIssues(err error, data cue.Value) []Issue {
	var issues []Issue
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if disjunctionHeader.MatchString(msg) {
			continue
		}
		elems := e.Path()
		is := Issue{Path: strings.Join(elems, "."), Message: msg}
		pos := userPos(e)
		if !pos.IsValid() {
			pos = lookupPos(data, elems)
		}
		setPos(&is, pos)
		issues = append(issues, is)
	}
	return issues
}

// loadIssues turns errors of the CUE loader (syntax errors, imports,
// package clauses) into issues.
func loadIssues(err error) []Issue {
	var issues []Issue
	for _, e := range cueerrors.Errors(err) {
		// A loader error often wraps its cause; Msg has only the outer
		// part, Error all of it, prefixed with a path that names a
		// module rather than a value.
		msg := e.Error()
		if p := strings.Join(e.Path(), "."); p != "" {
			msg = strings.TrimPrefix(msg, p+": ")
		}
		pos := userPos(e)
		if pos.IsValid() {
			// The cause repeats the position.
			msg = strings.ReplaceAll(msg, ": "+pos.String(), "")
		}
		is := Issue{Message: msg}
		setPos(&is, pos)
		issues = append(issues, is)
	}
	return issues
}

// placed names the files of issues as the source fs.FS does: the loader
// gives some errors (those of cue.mod/module.cue) a position in the
// snapshot's own file system, an absolute path from its root, rather
// than one passed through its FromFSPath.
func (s *snapshot) placed(issues []Issue) []Issue {
	for i, is := range issues {
		if rel, ok := strings.CutPrefix(is.File, "/"); ok {
			issues[i].File = s.name(rel)
		}
	}
	return issues
}

// userPos returns the first position of e in a snapshot file.
func userPos(e cueerrors.Error) token.Pos {
	for _, p := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
		if p.IsValid() && p.Filename() != "" && p.Filename() != schemaFile {
			return p
		}
	}
	return token.NoPos
}

// lookupPos returns the position of the deepest value along path (CUE
// path elements such as "services", "web", "0") that exists in data: a
// scalar's value, as CUE's own errors have it, or a struct's or list's
// label.
func lookupPos(data cue.Value, path []string) token.Pos {
	return lookup(data, path, false)
}

// labelPos is lookupPos pointing at the label of a scalar too.
func labelPos(data cue.Value, path []string) token.Pos {
	return lookup(data, path, true)
}

func lookup(data cue.Value, path []string, label bool) token.Pos {
	for n := len(path); n >= 0; n-- {
		v := data.LookupPath(makePath(path[:n]))
		if !v.Exists() {
			continue
		}
		p := v.Pos()
		if f, ok := v.Source().(*ast.Field); ok && !label && v.IncompleteKind()&(cue.StructKind|cue.ListKind) == 0 {
			p = f.Value.Pos()
		}
		if p.IsValid() && p.Filename() != schemaFile {
			return p
		}
	}
	return token.NoPos
}

func makePath(elems []string) cue.Path {
	sels := make([]cue.Selector, 0, len(elems))
	for _, e := range elems {
		if i, err := strconv.Atoi(e); err == nil && i >= 0 {
			sels = append(sels, cue.Index(i))
			continue
		}
		p := cue.ParsePath(e)
		if p.Err() != nil || len(p.Selectors()) != 1 {
			sels = append(sels, cue.Str(e))
			continue
		}
		sels = append(sels, p.Selectors()...)
	}
	return cue.MakePath(sels...)
}

func setPos(is *Issue, pos token.Pos) {
	if !pos.IsValid() {
		return
	}
	is.File = pos.Filename()
	is.Line = pos.Line()
	is.Column = pos.Column()
}
