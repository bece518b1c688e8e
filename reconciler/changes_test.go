package reconciler

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema"
)

func TestSpecChanges(t *testing.T) {
	base := func() *schema.Service {
		s := rolling(2, "1", "0")
		s.Process = &schema.Process{Command: []string{"./app", "-v"}}
		s.Env = map[string]string{"VERSION": "v1", "MODE": "fast"}
		s.SecretEnv = map[string]schema.Secret{"DB_PASSWORD": {File: "/run/secrets/db"}, "API_KEY": {Env: "API_KEY"}}
		s.Ports = map[string]int{"http": 0}
		s.StopGrace = 10 * time.Second
		return s
	}
	resolved := map[string]string{"sha256": "aaaa", "secret:DB_PASSWORD": "d1", "secret:API_KEY": "k1"}
	from := Desired{Spec: base(), Hash: "h1", Resolved: resolved}
	edit := func(f func(s *schema.Service, r map[string]string)) Desired {
		s, r := base(), map[string]string{}
		for k, v := range resolved {
			r[k] = v
		}
		f(s, r)
		return Desired{Spec: s, Hash: "h2", Resolved: r}
	}
	docker := func(image string) *schema.Service {
		s := base()
		s.Process, s.Docker, s.SecretEnv = nil, &schema.Docker{Image: image, ReadOnlyRootfs: true}, nil
		return s
	}
	tests := []struct {
		name string
		from Desired
		to   Desired
		want string
	}{
		{"a rotated secret", from, edit(func(_ *schema.Service, r map[string]string) { r["secret:DB_PASSWORD"] = "d2" }),
			"secret DB_PASSWORD changed"},
		{"two rotated secrets", from, edit(func(_ *schema.Service, r map[string]string) {
			r["secret:DB_PASSWORD"], r["secret:API_KEY"] = "d2", "k2"
		}),
			"secret API_KEY changed, secret DB_PASSWORD changed"},
		{"a secret read from elsewhere, same content", from, edit(func(s *schema.Service, _ map[string]string) {
			s.SecretEnv["DB_PASSWORD"] = schema.Secret{Env: "DB_PASSWORD"}
		}), ""},
		{"secrets added and removed", from, edit(func(s *schema.Service, r map[string]string) {
			delete(s.SecretEnv, "API_KEY")
			delete(r, "secret:API_KEY")
			s.SecretEnv["TOKEN"] = schema.Secret{Env: "TOKEN"}
			r["secret:TOKEN"] = "t1"
		}), "secret API_KEY removed, secret TOKEN added"},
		{"env, by name only", from, edit(func(s *schema.Service, _ map[string]string) {
			s.Env["VERSION"] = "v2"
			delete(s.Env, "MODE")
			s.Env["DEBUG"] = "1"
		}), "env DEBUG added, env MODE removed, env VERSION changed"},
		{"a rebuilt executable", from, edit(func(_ *schema.Service, r map[string]string) { r["sha256"] = "bbbb" }),
			"artifact sha256 changed"},
		{"command, ports and stop grace", from, edit(func(s *schema.Service, _ map[string]string) {
			s.Process.Command = []string{"./app"}
			s.Ports = map[string]int{"http": 0, "admin": 0}
			s.StopGrace = time.Second
		}), "command changed, port admin added, stopGrace changed"},
		{"process to docker", from, Desired{Spec: docker("hello"), Resolved: map[string]string{"image": "sha256:1"}},
			"target changed, artifact image added, artifact sha256 removed, secret API_KEY removed, secret DB_PASSWORD removed"},
		{"a new image and options", Desired{Spec: docker("hello:1"), Resolved: map[string]string{"image": "sha256:1"}},
			Desired{Spec: func() *schema.Service {
				s := docker("hello:2")
				s.Docker.Memory, s.Docker.Networks = "64m", []string{"back"}
				return s
			}(), Resolved: map[string]string{"image": "sha256:2"}},
			"image changed, docker.memory changed, docker.networks changed, artifact image changed"},
		{"no spec to compare with", Desired{}, from, ""},
		{"the same", from, edit(func(*schema.Service, map[string]string) {}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChangesText(SpecChanges(tt.from, tt.to)); got != tt.want {
				t.Errorf("SpecChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

// The plan gives why a new generation is new, in every rendering, and only
// when it rolls one out.
func TestPlanSaysWhy(t *testing.T) {
	why := []Change{{Field: "secret", Name: "DB_PASSWORD", How: "changed"}}
	d := desire("v2", rolling(2, "1", "0"))
	d.Why = why
	in := Input{Fleet: testFleet, Revision: "rev", Desired: web(d), Traffic: webTraffic(route("v1", "a b")),
		Instances: instances(t, "web v1 a:h b:h"), Now: t0}
	p := PlanFleet(in)
	if diff := cmp.Diff(why, p.Services[0].Why); diff != "" {
		t.Errorf("Why (-want +got):\n%s", diff)
	}
	var text, md, js bytes.Buffer
	p.WriteText(&text)
	p.WriteMarkdown(&md)
	p.WriteJSON(&js)
	if !strings.Contains(text.String(), "\n  why: secret DB_PASSWORD changed\n") {
		t.Errorf("the text plan does not say why:\n%s", text.String())
	}
	if !strings.Contains(md.String(), "| secret DB_PASSWORD changed |") {
		t.Errorf("the markdown plan does not say why:\n%s", md.String())
	}
	var doc struct {
		Services []struct {
			Why []map[string]string `json:"why"`
		} `json:"services"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"field": "secret", "name": "DB_PASSWORD", "how": "changed", "text": "secret DB_PASSWORD changed"}}
	if diff := cmp.Diff(want, doc.Services[0].Why); diff != "" {
		t.Errorf("JSON why (-want +got):\n%s", diff)
	}

	// Converged on it, or rolling back to it: nothing to explain.
	for name, in := range map[string]Input{
		"converged": {Fleet: testFleet, Desired: web(d), Traffic: webTraffic(route("v2", "a b")), Instances: instances(t, "web v2 a:h b:h"), Now: t0},
		"rollback": {Fleet: testFleet, Desired: web(func() Desired { r := rollbackTo("v2", rolling(2, "1", "0")); r.Why = why; return r }()),
			Traffic: webTraffic(route("v1", "a b")), Instances: instances(t, "web v1 a:h b:h"), Now: t0},
	} {
		if got := PlanFleet(in).Services[0].Why; got != nil {
			t.Errorf("%s: Why = %v, want none", name, got)
		}
	}
}
