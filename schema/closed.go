package schema

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue"
)

// closed reports every field of data that the schema does not allow, and
// every required field missing.
//
// CUE reports these only when their siblings are valid: an error in a
// struct hides the fields not allowed, or missing, next to it. Walking the
// user's values beside the schema finds them all, so that a misspelled
// field is not reported one commit later than the error beside it. It runs
// only when validation has failed.
func (c *checker) closed(schema, data cue.Value, path []string) {
	if !schema.Exists() {
		return
	}
	switch data.IncompleteKind() {
	case cue.StructKind:
		c.required(data, path)
		iter, err := data.Fields()
		if err != nil {
			return
		}
		for iter.Next() {
			sel := iter.Selector()
			p := at(path, sel.String())
			if !schema.Allows(sel) {
				is := Issue{Path: strings.Join(p, "."), Message: "field not allowed"}
				setPos(&is, labelPos(c.data, p))
				c.issues = append(c.issues, is)
				continue
			}
			c.closed(schemaAt(schema, sel, cue.AnyString), iter.Value(), p)
		}
	case cue.ListKind:
		iter, err := data.List()
		if err != nil {
			return
		}
		for i := 0; iter.Next(); i++ {
			c.closed(schemaAt(schema, cue.Index(i), cue.AnyIndex), iter.Value(), at(path, strconv.Itoa(i)))
		}
	}
}

// schemaAt returns the schema of the value at sel below schema: a regular
// or optional field, else the value of the pattern (any) that sel matches.
func schemaAt(schema cue.Value, sel, any cue.Selector) cue.Value {
	if v := schema.LookupPath(cue.MakePath(sel)); v.Exists() {
		return v
	}
	if sel.LabelType() == cue.StringLabel {
		if v := schema.LookupPath(cue.MakePath(sel.Optional())); v.Exists() {
			return v
		}
	}
	return schema.LookupPath(cue.MakePath(any))
}

// required reports the required fields of the unified value at path that
// data lacks. (The unified value, not the schema: which fields are
// required can depend on the data.)
func (c *checker) required(data cue.Value, path []string) {
	iter, err := c.unified.LookupPath(makePath(path)).Fields(cue.Optional(true))
	if err != nil {
		return
	}
	for iter.Next() {
		sel := iter.Selector()
		if sel.ConstraintType() != cue.RequiredConstraint {
			continue
		}
		name := sel.Unquoted()
		if !data.LookupPath(cue.MakePath(cue.Str(name))).Exists() {
			c.add(at(path, name), "field is required but not present")
		}
	}
}
