package schema

import (
	"strconv"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/literal"
)

// This file reads a value that CUE has validated into the raw types of
// decode.go, as Value.Decode would: the same values, the same nil and
// empty slices and maps. Decode finds its way by reflection, asks CUE for
// the error and the nullness of every value (each question a new
// evaluation context) and sorts the fields of every struct; the reader
// knows the schema, looks each field up by name, and lists only the
// fields of maps. It gives up (ok == false) at anything that a valid fleet
// does not hold, such as a number that does not fit an int, and the caller
// then decodes the slow way, which reports it.

// reader reads one value; ok turns false at the first thing it cannot
// read, and everything after that is skipped.
type reader struct {
	ok bool
	// moved holds the defaults that the light schema left to the reader,
	// by definition and field (nil reading any other), and def is the
	// definition of the struct being read. A moved field that is absent
	// takes its default; one whose value is a default is given up on
	// (see lightSource).
	moved map[string]map[string]string
	def   string
}

// in makes def the definition being read, until the returned func.
func (r *reader) in(def string) (out func()) {
	prev := r.def
	r.def = def
	return func() { r.def = prev }
}

// dflt returns the literal default that the light schema moved from the
// field name of the definition being read.
func (r *reader) dflt(name string) (string, bool) {
	lit, ok := r.moved[r.def][name]
	return lit, ok
}

// read reads the fleet and its services from v, the whole unified value;
// moved are the defaults the light schema moved, when v is of it.
func read(v cue.Value, moved map[string]map[string]string) (rawFleet, map[string]rawService, bool) {
	r := &reader{ok: true, moved: moved}
	defer r.in("#Fleet")()
	var f rawFleet
	r.str(v, "name", &f.Name)
	f.DeployWindows = r.windows(v)
	services, ok := r.structAt(v, "services")
	if !ok {
		return f, nil, false
	}
	out := map[string]rawService{}
	r.fields(services, func(name string, s cue.Value) {
		if s.Kind() != cue.StructKind {
			r.ok = false
			return
		}
		out[name] = r.service(s)
	})
	return f, out, r.ok
}

// paths are the paths of the fields the reader looks up, made once.
var paths = func() map[string]cue.Path {
	m := map[string]cue.Path{}
	for _, name := range []string{
		"name", "deployWindows", "services",
		"replicas", "process", "docker", "env", "secretEnv", "ports", "health", "liveness", "rollout", "expose", "recycle", "stopGrace",
		"command", "sha256",
		"image", "entrypoint", "user", "memory", "cpus", "readOnlyRootfs", "tmpfs", "networks", "engines",
		"file",
		"http", "tcp", "interval", "timeout", "healthyThreshold", "unhealthyThreshold", "grace",
		"path", "port", "status",
		"strategy", "maxSurge", "maxUnavailable", "minHealthyFor", "progressDeadline", "keepPrevious", "verifyFor", "maxErrorRate", "pause", "canary",
		"count", "weight", "duration", "then", "minRequests", "maxLatencyRatio", "onInsufficientTraffic",
		"listen", "haproxy", "backend",
		"maxAge", "window",
		"kind", "schedule",
	} {
		m[name] = cue.MakePath(cue.Str(name))
	}
	return m
}()

// field returns the regular field name of struct v, after its default.
// An optional field that the data did not set is not there, as with
// Decode.
func (r *reader) field(v cue.Value, name string) (cue.Value, bool) {
	if !r.ok {
		return cue.Value{}, false
	}
	p, known := paths[name]
	if !known {
		panic("schema: reader: no path for field " + name)
	}
	f := v.LookupPath(p)
	if !f.Exists() {
		return cue.Value{}, false
	}
	if _, moved := r.dflt(name); moved {
		if _, isDefault := f.Default(); isDefault {
			r.ok = false // (the fleet's own, or another field's)
			return cue.Value{}, false
		}
	}
	return r.concrete(f)
}

// concrete returns v after its default, and gives up on an error, a value
// that is not concrete or null: Decode reports the first two, and leaves
// a nullable field zero but fails a scalar on null. Nothing a valid fleet
// holds. (Kind answers without a new evaluation context, unlike Err and
// IsNull.)
func (r *reader) concrete(v cue.Value) (cue.Value, bool) {
	v, _ = v.Default()
	if k := v.Kind(); k == cue.BottomKind || k == cue.NullKind {
		r.ok = false
		return cue.Value{}, false
	}
	return v, true
}

// structAt returns the struct at field name of v, if it is set.
func (r *reader) structAt(v cue.Value, name string) (cue.Value, bool) {
	f, ok := r.field(v, name)
	if ok && f.Kind() != cue.StructKind {
		r.ok = false
		return cue.Value{}, false
	}
	return f, ok && r.ok
}

// fields calls fn with the label and value (after its default) of every
// regular field of struct v.
func (r *reader) fields(v cue.Value, fn func(string, cue.Value)) {
	iter, err := v.Fields()
	if !r.check(err) {
		return
	}
	for r.ok && iter.Next() {
		if e, ok := r.concrete(iter.Value()); ok {
			fn(iter.Selector().Unquoted(), e)
		}
	}
}

func (r *reader) check(err error) bool {
	if err != nil {
		r.ok = false
	}
	return r.ok
}

// scalar reads field name of v, when it is there, into dst with get, or
// else its moved default with parse.
func scalar[T any](r *reader, v cue.Value, name string, dst *T, get func(cue.Value) (T, error), parse func(string) (T, error)) {
	if f, ok := r.field(v, name); ok {
		x, err := get(f)
		r.check(err)
		*dst = x
		return
	}
	if lit, ok := r.dflt(name); ok && r.ok {
		x, err := parse(lit)
		r.check(err)
		*dst = x
	}
}

func (r *reader) str(v cue.Value, name string, dst *string) {
	scalar(r, v, name, dst, cue.Value.String, literal.Unquote)
}

func (r *reader) int(v cue.Value, name string, dst *int) {
	scalar(r, v, name, dst, func(f cue.Value) (int, error) { return r.intOf(f), nil }, strconv.Atoi)
}

// intOf reads an int as Decode does: an int64 that must fit an int.
func (r *reader) intOf(v cue.Value) int {
	n, err := v.Int64()
	if r.check(err) && int64(int(n)) != n {
		r.ok = false
	}
	return int(n)
}

func (r *reader) float(v cue.Value, name string, dst *float64) {
	scalar(r, v, name, dst, cue.Value.Float64, func(lit string) (float64, error) { return strconv.ParseFloat(lit, 64) })
}

func (r *reader) bool(v cue.Value, name string, dst *bool) {
	scalar(r, v, name, dst, cue.Value.Bool, strconv.ParseBool)
}

// strings reads a list of strings. A list that is set is never nil, as
// with Decode: an empty command differs from none in a spec hash.
func (r *reader) strings(v cue.Value, name string, dst *[]string) {
	f, ok := r.field(v, name)
	if !ok {
		return
	}
	iter, err := f.List()
	if !r.check(err) {
		return
	}
	out := []string{}
	for iter.Next() {
		e, ok := r.concrete(iter.Value())
		if !ok {
			return
		}
		s, err := e.String()
		if !r.check(err) {
			return
		}
		out = append(out, s)
	}
	*dst = out
}

// intOrPercent reads a count or a percentage as rawIntOrPercent's
// UnmarshalJSON does.
func (r *reader) intOrPercent(v cue.Value, name string, dst *rawIntOrPercent) {
	f, ok := r.field(v, name)
	if !ok {
		if lit, ok := r.dflt(name); ok && r.ok {
			// (An int is kept as its digits, a string unquoted.)
			if s, err := literal.Unquote(lit); err == nil {
				lit = s
			}
			*dst = rawIntOrPercent(lit)
		}
		return
	}
	switch f.Kind() {
	case cue.IntKind:
		*dst = rawIntOrPercent(strconv.Itoa(r.intOf(f)))
	case cue.StringKind:
		s, err := f.String()
		r.check(err)
		*dst = rawIntOrPercent(s)
	default:
		r.ok = false
	}
}

func (r *reader) service(v cue.Value) rawService {
	defer r.in("#Service")()
	var s rawService
	r.int(v, "replicas", &s.Replicas)
	if p, ok := r.structAt(v, "process"); ok {
		s.Process = &rawProcess{}
		r.strings(p, "command", &s.Process.Command)
		r.str(p, "sha256", &s.Process.SHA256)
	}
	if d, ok := r.structAt(v, "docker"); ok {
		s.Docker = r.docker(d)
	}
	// A map that is set is never nil, as with Decode.
	if m, ok := r.structAt(v, "env"); ok {
		s.Env = map[string]string{}
		r.fields(m, func(name string, e cue.Value) {
			str, err := e.String()
			r.check(err)
			s.Env[name] = str
		})
	}
	if m, ok := r.structAt(v, "secretEnv"); ok {
		s.SecretEnv = map[string]Secret{}
		r.fields(m, func(name string, e cue.Value) {
			if e.Kind() != cue.StructKind {
				r.ok = false
				return
			}
			defer r.in("#Secret")()
			var sec Secret
			r.str(e, "file", &sec.File)
			r.str(e, "env", &sec.Env)
			s.SecretEnv[name] = sec
		})
	}
	if m, ok := r.structAt(v, "ports"); ok {
		s.Ports = map[string]int{}
		r.fields(m, func(name string, e cue.Value) {
			s.Ports[name] = r.intOf(e)
		})
	}
	if h, ok := r.structAt(v, "health"); ok {
		s.Health = r.health(h)
	}
	if h, ok := r.structAt(v, "liveness"); ok {
		l := r.health(h)
		s.Liveness = &l
	}
	if ro, ok := r.structAt(v, "rollout"); ok {
		s.Rollout = r.rollout(ro)
	}
	if e, ok := r.structAt(v, "expose"); ok {
		leave := r.in("#Expose")
		s.Expose = &rawExpose{}
		r.str(e, "listen", &s.Expose.Listen)
		if h, ok := r.structAt(e, "haproxy"); ok {
			s.Expose.HAProxy = &rawHAProxy{}
			r.str(h, "backend", &s.Expose.HAProxy.Backend)
		}
		r.str(e, "port", &s.Expose.Port)
		leave()
	}
	if rc, ok := r.structAt(v, "recycle"); ok {
		leave := r.in("#Recycle")
		s.Recycle = &rawRecycle{}
		r.str(rc, "maxAge", &s.Recycle.MaxAge)
		r.str(rc, "window", &s.Recycle.Window)
		leave()
	}
	r.str(v, "stopGrace", &s.StopGrace)
	s.DeployWindows = r.windows(v)
	return s
}

func (r *reader) docker(v cue.Value) *rawDocker {
	defer r.in("#Docker")()
	d := &rawDocker{}
	r.str(v, "image", &d.Image)
	r.strings(v, "command", &d.Command)
	r.strings(v, "entrypoint", &d.Entrypoint)
	r.str(v, "user", &d.User)
	r.str(v, "memory", &d.Memory)
	r.float(v, "cpus", &d.CPUs)
	r.bool(v, "readOnlyRootfs", &d.ReadOnlyRootfs)
	r.strings(v, "tmpfs", &d.Tmpfs)
	r.strings(v, "networks", &d.Networks)
	r.strings(v, "engines", &d.Engines)
	return d
}

func (r *reader) health(v cue.Value) rawHealth {
	defer r.in("#Health")()
	var h rawHealth
	if c, ok := r.structAt(v, "http"); ok {
		leave := r.in("#HTTPCheck")
		h.HTTP = &rawHTTPCheck{}
		r.str(c, "path", &h.HTTP.Path)
		r.str(c, "port", &h.HTTP.Port)
		r.int(c, "status", &h.HTTP.Status)
		leave()
	}
	if c, ok := r.structAt(v, "tcp"); ok {
		leave := r.in("#TCPCheck")
		h.TCP = &rawTCPCheck{}
		r.str(c, "port", &h.TCP.Port)
		leave()
	}
	r.str(v, "interval", &h.Interval)
	r.str(v, "timeout", &h.Timeout)
	r.int(v, "healthyThreshold", &h.HealthyThreshold)
	r.int(v, "unhealthyThreshold", &h.UnhealthyThreshold)
	r.str(v, "grace", &h.Grace)
	return h
}

func (r *reader) rollout(v cue.Value) rawRollout {
	defer r.in("#Rollout")()
	var ro rawRollout
	r.str(v, "strategy", &ro.Strategy)
	r.intOrPercent(v, "maxSurge", &ro.MaxSurge)
	r.intOrPercent(v, "maxUnavailable", &ro.MaxUnavailable)
	r.str(v, "minHealthyFor", &ro.MinHealthyFor)
	r.str(v, "progressDeadline", &ro.ProgressDeadline)
	r.str(v, "keepPrevious", &ro.KeepPrevious)
	r.str(v, "verifyFor", &ro.VerifyFor)
	r.float(v, "maxErrorRate", &ro.MaxErrorRate)
	r.bool(v, "pause", &ro.Pause)
	if c, ok := r.structAt(v, "canary"); ok {
		leave := r.in("#Canary")
		k := &rawCanary{}
		r.int(c, "count", &k.Count)
		r.int(c, "weight", &k.Weight)
		r.str(c, "duration", &k.Duration)
		r.float(c, "maxErrorRate", &k.MaxErrorRate)
		r.str(c, "then", &k.Then)
		r.int(c, "minRequests", &k.MinRequests)
		r.float(c, "maxLatencyRatio", &k.MaxLatencyRatio)
		r.str(c, "onInsufficientTraffic", &k.OnInsufficientTraffic)
		ro.Canary = k
		leave()
	}
	return ro
}

// windows reads the deploy windows of struct v (the fleet or a service).
func (r *reader) windows(v cue.Value) []rawWindow {
	f, ok := r.field(v, "deployWindows")
	if !ok {
		return nil
	}
	iter, err := f.List()
	if !r.check(err) {
		return nil
	}
	out := []rawWindow{}
	for r.ok && iter.Next() {
		e, ok := r.concrete(iter.Value())
		if !ok || e.Kind() != cue.StructKind {
			r.ok = false
			return nil
		}
		leave := r.in("#Window")
		var w rawWindow
		r.str(e, "kind", &w.Kind)
		r.str(e, "schedule", &w.Schedule)
		r.str(e, "duration", &w.Duration)
		leave()
		out = append(out, w)
	}
	return out
}
