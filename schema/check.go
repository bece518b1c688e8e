package schema

import (
	"fmt"
	"slices"
	"strings"

	"cuelang.org/go/cue"
)

// checker collects the issues of one snapshot. data is the user's package
// before unification with the schema; positions are looked up in it.
type checker struct {
	data   cue.Value
	issues []Issue
}

// check validates v (data unified with #Fleet) as `cue vet -c` would, then
// decodes every part that CUE found valid and applies the rules written in
// Go to it, so that one run reports as many issues as it can.
func check(data, v cue.Value) (*Fleet, []Issue) {
	c := &checker{data: data}
	services := v.LookupPath(cue.MakePath(cue.Str("services")))
	if err := v.Validate(cue.Concrete(true)); err != nil {
		c.issues = cueIssues(err, data)
		// An error in one place can hide others (missing required
		// fields, fields not allowed) elsewhere: validate each top-level
		// field and each service on its own as well.
		c.validateFields(v)
		c.validateFields(services)
	}
	bad := map[string]bool{}
	fleetBad := false
	for _, is := range c.issues {
		if name, ok := serviceOf(is.Path); ok {
			bad[name] = true
		} else {
			fleetBad = true
		}
	}

	f := &Fleet{Services: map[string]*Service{}}
	if !fleetBad {
		var rf rawFleet
		if err := v.Decode(&rf); err != nil {
			c.issues = append(c.issues, cueIssues(err, data)...)
		}
		f.Name = rf.Name
		f.DeployWindows = c.windows([]string{"deployWindows"}, rf.DeployWindows)
	}
	iter, err := services.Fields()
	if err != nil {
		return f, c.issues // already reported by Validate
	}
	for iter.Next() {
		name := iter.Selector().Unquoted()
		if bad[name] {
			continue
		}
		var rs rawService
		if err := iter.Value().Decode(&rs); err != nil {
			c.issues = append(c.issues, cueIssues(err, data)...)
			continue
		}
		f.Services[name] = c.service(name, rs)
	}
	c.listenClashes(f)
	return f, c.issues
}

// validateFields validates each regular field of v on its own.
func (c *checker) validateFields(v cue.Value) {
	iter, err := v.Fields()
	if err != nil {
		return
	}
	for iter.Next() {
		if err := iter.Value().Validate(cue.Concrete(true)); err != nil {
			c.issues = append(c.issues, cueIssues(err, c.data)...)
		}
	}
}

// serviceOf returns the service that an issue path such as
// "services.web.replicas" lies in.
func serviceOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "services.")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, ".")
	return name, true
}

// add records an issue at path (CUE path elements), placed at the deepest
// value along it that the user wrote.
func (c *checker) add(path []string, format string, args ...any) {
	is := Issue{Path: strings.Join(path, "."), Message: fmt.Sprintf(format, args...)}
	setPos(&is, lookupPos(c.data, path))
	c.issues = append(c.issues, is)
}

// addFirst records an issue at the first of paths that the user wrote (the
// value to change), or at the first path when none was written.
func (c *checker) addFirst(paths [][]string, format string, args ...any) {
	for _, p := range paths {
		if c.data.LookupPath(makePath(p)).Exists() {
			c.add(p, format, args...)
			return
		}
	}
	c.add(paths[0], format, args...)
}

// at returns path extended by elems, without sharing path's array.
func at(path []string, elems ...string) []string {
	return append(slices.Clip(path), elems...)
}
