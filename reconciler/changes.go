package reconciler

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/molt-dev/molt/schema"
)

// Change is one way in which the spec of a new generation differs from the
// serving one's: why a plan rolls a service out. It names fields,
// variables and ports, never a value (an env value is in Git anyway; a
// secret's never is).
type Change struct {
	// Field is what changed: "target" (process or docker), "command",
	// "artifact" (what the target resolved: Name is "sha256" for an
	// executable, "image" for an image's content id), "image" (the
	// reference), "docker.<option>", "env", "secret", "port" or
	// "stopGrace".
	Field string `json:"field"`
	// Name is the variable, port or resolved fact the change is about.
	Name string `json:"name,omitempty"`
	// How is "added", "removed" or "changed".
	How string `json:"how"`
}

// String reads "secret DB_PASSWORD changed", "image changed".
func (c Change) String() string {
	if c.Name == "" {
		return c.Field + " " + c.How
	}
	return c.Field + " " + c.Name + " " + c.How
}

// MarshalJSON adds the sentence ("text") to the fields.
func (c Change) MarshalJSON() ([]byte, error) {
	type plain Change
	return json.Marshal(struct {
		plain
		Text string `json:"text"`
	}{plain(c), c.String()})
}

// ChangesText joins changes into one sentence for people.
func ChangesText(cs []Change) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// SpecChanges returns how the spec of to differs from the spec of from
// (the generation serving), in a stable order; nil when either has no
// spec. It is pure: secrets are compared by the digests that were
// resolved for each (Desired.Resolved), so a secret that changed since
// from was made shows as "secret NAME changed".
func SpecChanges(from, to Desired) []Change {
	a, b := from.Spec, to.Spec
	if a == nil || b == nil {
		return nil
	}
	var out []Change
	changed := func(field string) { out = append(out, Change{Field: field, How: "changed"}) }
	switch {
	case (a.Process == nil) != (b.Process == nil):
		changed("target")
	case a.Process != nil:
		if !slices.Equal(a.Process.Command, b.Process.Command) {
			changed("command")
		}
	case a.Docker != nil:
		if a.Docker.Image != b.Docker.Image {
			changed("image")
		}
		out = append(out, dockerChanges(*a.Docker, *b.Docker)...)
	}
	out = append(out, keyed("artifact", withoutSecrets(from.Resolved), withoutSecrets(to.Resolved))...)
	out = append(out, keyed("env", a.Env, b.Env)...)
	secrets := func(svc *schema.Service, resolved map[string]string) map[string]string {
		m := map[string]string{}
		for name := range svc.SecretEnv {
			m[name] = resolved[resolvedSecret+name]
		}
		return m
	}
	out = append(out, keyed("secret", secrets(a, from.Resolved), secrets(b, to.Resolved))...)
	out = append(out, keyed("port", a.Ports, b.Ports)...)
	if a.StopGrace != b.StopGrace {
		changed("stopGrace")
	}
	return out
}

// keyed compares two maps by key: added, removed, changed (values
// compared with ==).
func keyed[V comparable](field string, a, b map[string]V) []Change {
	var out []Change
	names := slices.Sorted(maps.Keys(a))
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		va, inA := a[n]
		vb, inB := b[n]
		switch {
		case !inA:
			out = append(out, Change{Field: field, Name: n, How: "added"})
		case !inB:
			out = append(out, Change{Field: field, Name: n, How: "removed"})
		case va != vb:
			out = append(out, Change{Field: field, Name: n, How: "changed"})
		}
	}
	return out
}

// dockerChanges names the container options (other than the image) that
// differ.
func dockerChanges(a, b schema.Docker) []Change {
	var out []Change
	for _, f := range []struct {
		name string
		same bool
	}{
		{"command", slices.Equal(a.Command, b.Command)},
		{"entrypoint", slices.Equal(a.Entrypoint, b.Entrypoint)},
		{"user", a.User == b.User},
		{"memory", a.Memory == b.Memory},
		{"cpus", a.CPUs == b.CPUs},
		{"readOnlyRootfs", a.ReadOnlyRootfs == b.ReadOnlyRootfs},
		{"tmpfs", slices.Equal(a.Tmpfs, b.Tmpfs)},
		{"networks", slices.Equal(a.Networks, b.Networks)},
		{"engines", slices.Equal(a.Engines, b.Engines)},
	} {
		if !f.same {
			out = append(out, Change{Field: "docker." + f.name, How: "changed"})
		}
	}
	return out
}

// withoutSecrets is resolved without the secrets' digests.
func withoutSecrets(resolved map[string]string) map[string]string {
	out := maps.Clone(resolved)
	maps.DeleteFunc(out, func(k, _ string) bool { return strings.HasPrefix(k, resolvedSecret) })
	return out
}
