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
	data    cue.Value
	unified cue.Value // data & #Fleet
	invalid error     // unified's validation error (see readValid)
	issues  []Issue
}

// check unifies data with #Fleet and validates the result as
// `cue vet -c` would. A valid result is read once, field by field, and
// the rules written in Go are applied to it (see read.go). Otherwise, or
// when the reader meets something it cannot read, checkEach takes over.
//
// The lean and light schemas (see lean.go) are tried first: a fleet the
// light schema accepts (light says that the fleet is one it stands for)
// or else the lean one accepts is valid, with the values the schema gives
// it, and is read from it; any other is checked against the schema. (No
// fleet is evaluated more than twice.) beforeRead, when not nil, is
// called once the value to read is evaluated and valid. The error is a
// schema's that does not compile.
func check(data cue.Value, d defs, light bool, beforeRead func()) (*Fleet, []Issue, error) {
	fast, moved, err := d.fast(light)
	if err != nil {
		return nil, nil, err
	}
	if fast.Exists() {
		c := &checker{data: data, unified: data.Unify(fast)}
		if f, ok := c.readValid(moved, beforeRead); ok {
			return f, c.issues, nil
		}
	}
	def, err := d.full()
	if err != nil {
		return nil, nil, err
	}
	c := &checker{data: data, unified: data.Unify(def)}
	if f, ok := c.readValid(nil, beforeRead); ok {
		return f, c.issues, nil
	}
	f, issues := c.checkEach(def, c.invalid)
	return f, issues, nil
}

// readValid validates c.unified as `cue vet -c` would (its error is kept
// in c.invalid) and reads a valid one, moved being the defaults its
// schema left to the reader, and applies the rules written in Go to it.
// It is false when the value is invalid or the reader gives up.
func (c *checker) readValid(moved map[string]map[string]string, beforeRead func()) (*Fleet, bool) {
	if c.invalid = c.unified.Validate(cue.Concrete(true)); c.invalid != nil {
		return nil, false
	}
	if beforeRead != nil {
		beforeRead()
	}
	rf, raw, ok := read(c.unified, moved)
	if !ok {
		return nil, false
	}
	f := &Fleet{Name: rf.Name, Services: make(map[string]*Service, len(raw))}
	f.DeployWindows = c.windows([]string{"deployWindows"}, rf.DeployWindows)
	for name, rs := range raw {
		f.Services[name] = c.service(name, rs)
	}
	c.listenClashes(f)
	return f, true
}

// checkEach reports the error of validation (err, nil when there is none)
// and the issues that it hides, then decodes every part that CUE found
// valid and applies the rules written in Go to it, so that one run reports
// as many issues as it can.
func (c *checker) checkEach(def cue.Value, err error) (*Fleet, []Issue) {
	data, v := c.data, c.unified
	services := v.LookupPath(cue.MakePath(cue.Str("services")))
	if err != nil {
		c.issues = cueIssues(err, data)
		// An error in one place can hide others (missing required
		// fields, fields not allowed) elsewhere: validate each top-level
		// field and each service on its own as well.
		c.validateFields(v)
		c.validateFields(services)
		c.closed(def, data, nil)
	}
	c.tidy()
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
		// Decode the fields one by one: decoding v would decode the
		// services too, invalid ones included.
		var rf rawFleet
		if err := v.LookupPath(cue.MakePath(cue.Str("name"))).Decode(&rf.Name); err != nil {
			c.issues = append(c.issues, cueIssues(err, data)...)
		}
		if w := v.LookupPath(cue.MakePath(cue.Str("deployWindows"))); w.Exists() {
			if err := w.Decode(&rf.DeployWindows); err != nil {
				c.issues = append(c.issues, cueIssues(err, data)...)
			}
		}
		f.Name = rf.Name
		f.DeployWindows = c.windows([]string{"deployWindows"}, rf.DeployWindows)
	}
	raw := map[string]rawService{}
	if len(c.issues) == 0 {
		// All valid: decode the services in one go.
		if err := services.Decode(&raw); err != nil {
			c.issues = append(c.issues, cueIssues(err, data)...)
		}
	} else if iter, err := services.Fields(); err == nil {
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
			raw[name] = rs
		}
	}
	for name, rs := range raw {
		f.Services[name] = c.service(name, rs)
	}
	c.listenClashes(f)
	return f, c.issues
}

// keyMessages start the messages of the schema's checks on names used as
// labels (services, ports, environment variables). A bad label also fails
// the value's own constraint, with a message that would only mislead.
var keyMessages = []string{"service name ", "port name ", "environment variable name"}

// tidy rewrites CUE's issues where the schema cannot say it better itself:
// it drops the misleading companions of a bad name, and names the rule
// behind a service's missing process.
func (c *checker) tidy() {
	issues := c.issues
	badKey := map[string]bool{}
	for _, is := range issues {
		for _, m := range keyMessages {
			if strings.HasPrefix(is.Message, m) {
				badKey[is.Path] = true
			}
		}
	}
	out := issues[:0]
	for _, is := range issues {
		if badKey[is.Path] {
			if !slices.ContainsFunc(keyMessages, func(m string) bool { return strings.HasPrefix(is.Message, m) }) {
				continue
			}
			setPos(&is, labelPos(c.data, strings.Split(is.Path, ".")))
		}
		// The schema requires process when neither process nor docker
		// is set, or when the one that is set has an error of its own
		// (CUE cannot tell the two apart; the error is reported).
		if svc, ok := strings.CutSuffix(is.Path, ".process"); ok && is.Message == "field is required but not present" {
			if name, ok := serviceOf(svc); ok && svc == "services."+name {
				p := []string{"services", name}
				if c.data.LookupPath(makePath(at(p, "docker"))).Exists() || c.data.LookupPath(makePath(at(p, "process"))).Exists() {
					continue
				}
				is.Path, is.Message = svc, "set exactly one of process and docker"
			}
		}
		if secret, ok := secretOf(is.Path); ok {
			switch {
			case strings.HasSuffix(is.Path, ".env") && is.Message == "field is required but not present":
				// As for process and docker: only neither is a mistake
				// of its own.
				p := strings.Split(secret, ".")
				if c.data.LookupPath(makePath(at(p, "file"))).Exists() || c.data.LookupPath(makePath(at(p, "env"))).Exists() {
					continue
				}
				is.Path, is.Message = secret, "set exactly one of file and env"
			case is.Path == secret && strings.HasPrefix(is.Message, "conflicting values") && strings.HasSuffix(is.Message, " and struct)"):
				is.Message = `must be {file: "PATH"} or {env: "VAR"}: molt reads a secret on its host, its value is never in Git`
			}
		}
		out = append(out, is)
	}
	c.issues = out
}

// secretOf returns the secret ("services.web.secretEnv.NAME") that an
// issue path lies in.
func secretOf(path string) (string, bool) {
	elems := strings.Split(path, ".")
	if len(elems) < 4 || elems[0] != "services" || elems[2] != "secretEnv" {
		return "", false
	}
	return strings.Join(elems[:4], "."), true
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
