package reconciler

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
)

// secretWorld is a memWorld whose fleet has a service web reading
// DB_PASSWORD from a file, and a service api without secrets; the
// executor logs everything, as JSON and as text, into logs.
type secretWorld struct {
	*memWorld
	state string
	file  string
	logs  *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSecretWorld(t *testing.T) *secretWorld {
	w := &secretWorld{memWorld: newMemWorld(t), file: filepath.Join(t.TempDir(), "db-password"), logs: &syncBuf{}}
	w.state = w.exec.Revisions.dir()
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	w.exec.Logger = slog.New(slog.NewMultiHandler(slog.NewJSONHandler(w.logs, debug), slog.NewTextHandler(w.logs, debug)))
	return w
}

func (w *secretWorld) rotate(t *testing.T, value string) {
	t.Helper()
	writeFile(t, w.file, value+"\n")
}

// fleet registers the fleet at rev: web (replicas r, env VERSION) with the
// secret, api without.
func (w *secretWorld) fleet(rev, version string, r int) *schema.Fleet {
	web := rolling(r, "1", "0")
	web.Process = &schema.Process{Command: []string{"./app"}}
	web.Env = map[string]string{"VERSION": version}
	web.SecretEnv = map[string]schema.Secret{"DB_PASSWORD": {File: w.file}}
	api := rolling(1, "1", "0")
	api.Name = "api"
	api.Process = &schema.Process{Command: []string{"./api"}}
	f := &schema.Fleet{Name: "shop", Services: map[string]*schema.Service{"web": web, "api": api}}
	w.fleets[rev] = f
	return f
}

// hashWith is web's spec hash with the secret's value as it is now.
func (w *secretWorld) hashWith(t *testing.T, f *schema.Fleet) string {
	t.Helper()
	extra, err := w.exec.secrets().Resolve(f.Services["web"])
	if err != nil {
		t.Fatal(err)
	}
	return f.Services["web"].SpecHash(extra)
}

// provisioned returns the value each provision of web of hash got.
func (w *secretWorld) provisioned(hash string) []string {
	w.target.mu.Lock()
	defer w.target.mu.Unlock()
	var out []string
	for _, s := range w.target.specs {
		if s.Labels.Service == "web" && s.Labels.SpecHash == hash {
			out = append(out, s.SecretEnv["DB_PASSWORD"])
		}
	}
	return out
}

// noValue fails t when any value appears in the logs or in a file of the
// state directory.
func (w *secretWorld) noValue(t *testing.T, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(w.logs.String(), v) {
			t.Errorf("the logs hold the secret %q:\n%s", v, w.logs.String())
		}
		filepath.WalkDir(w.state, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds the secret %q", path, v)
			}
			return nil
		})
	}
}

// A rotated secret is a new generation: the plan says which secret
// changed (never its value), apply rolls it out, the new instances get
// the new value and the old ones are retired; the service without
// secrets is not touched. No value is in the logs (JSON and text), the
// state directory or any rendering of the plan, and the target gets no
// digest.
func TestSecretRotationRollsOut(t *testing.T) {
	w := newSecretWorld(t)
	w.rotate(t, "hunter2-first")
	v1 := w.fleet("main@sha1:1", "v1", 2)
	res := w.apply(t, v1, "main@sha1:1")
	if !res.Converged {
		t.Fatalf("not converged: %+v", res.Plan)
	}
	first := w.hashWith(t, v1)
	if got := w.provisioned(first); len(got) != 2 || got[0] != "hunter2-first" || got[1] != "hunter2-first" {
		t.Fatalf("web's provisions got %q, want the secret twice", got)
	}
	for _, s := range w.target.specs {
		for k := range s.Resolved {
			if strings.HasPrefix(k, "secret:") {
				t.Errorf("the target got a secret's digest in Resolved: %v", s.Resolved)
			}
		}
		if s.Labels.Service == "api" && s.SecretEnv != nil {
			t.Errorf("api got secrets: %v", s.SecretEnv)
		}
	}
	if p, err := w.exec.Plan(t.Context(), v1, "main@sha1:1"); err != nil || p.Changes() {
		t.Fatalf("plan before the rotation: %v, changes %v", err, p.Changes())
	}
	apiIDs := w.idsOf("api")

	w.rotate(t, "hunter2-second")
	p, err := w.exec.Plan(t.Context(), v1, "main@sha1:1")
	if err != nil {
		t.Fatal(err)
	}
	second := w.hashWith(t, v1)
	for _, sp := range p.Services {
		switch sp.Service {
		case "web":
			if sp.From != first || sp.To != second || ChangesText(sp.Why) != "secret DB_PASSWORD changed" {
				t.Errorf("web's plan: %s → %s, why %q; want %s → %s because secret DB_PASSWORD changed", sp.From, sp.To, ChangesText(sp.Why), first, second)
			}
		case "api":
			if sp.Changes() {
				t.Errorf("api would change: %+v", sp)
			}
		}
	}
	var out bytes.Buffer
	p.WriteText(&out)
	p.WriteMarkdown(&out)
	p.WriteJSON(&out)
	if !strings.Contains(out.String(), "why: secret DB_PASSWORD changed") {
		t.Errorf("the plan does not say why:\n%s", out.String())
	}
	for _, v := range []string{"hunter2", w.exec.Revisions.dir()} {
		if strings.Contains(out.String(), v) {
			t.Errorf("the plan holds %q:\n%s", v, out.String())
		}
	}

	res = w.apply(t, v1, "main@sha1:1")
	if !res.Converged || res.PerService["web"] != (Counts{Provisioned: 2, Retired: 2}) || res.PerService["api"] != (Counts{}) {
		t.Fatalf("the rotation's apply: converged %v, per service %+v", res.Converged, res.PerService)
	}
	if got := w.provisioned(second); len(got) != 2 || got[0] != "hunter2-second" || got[1] != "hunter2-second" {
		t.Errorf("the new generation got %q", got)
	}
	insts, _ := w.target.List(context.Background())
	for _, in := range insts {
		if in.Labels.Service == "web" && in.Labels.SpecHash != second {
			t.Errorf("instance %s of %s still runs", in.ID, in.Labels.SpecHash)
		}
	}
	if got := w.idsOf("api"); strings.Join(got, " ") != strings.Join(apiIDs, " ") {
		t.Errorf("api's instances changed: %v, were %v", got, apiIDs)
	}
	if g, _ := w.exec.Revisions.Good("shop"); g["web"].Hash != second {
		t.Errorf("last good of web: %+v, want %s", g["web"], second)
	}
	w.noValue(t, "hunter2-first", "hunter2-second")
}

func (w *secretWorld) idsOf(service string) []string {
	insts, _ := w.target.List(context.Background())
	var out []string
	for _, in := range insts {
		if in.Labels.Service == service {
			out = append(out, in.ID)
		}
	}
	return sortedIDs(out)
}

// A secret rotated between the plan and the provision: the provision of
// the planned generation is refused (its instance would carry another
// value than its hash says), and the next pass plans the new one. No
// instance ever has a hash that its value does not give.
func TestSecretRotatedBeforeProvision(t *testing.T) {
	w := newSecretWorld(t)
	w.rotate(t, "value-planned")
	f := w.fleet("main@sha1:1", "v1", 2)
	planned := w.hashWith(t, f)
	var once sync.Once
	w.exec.OnPass = func(p Plan) {
		for _, sp := range p.Services {
			if sp.Service == "web" && len(sp.Step.Provision) > 0 {
				once.Do(func() { w.rotate(t, "value-rotated") })
			}
		}
	}
	res := w.apply(t, f, "main@sha1:1")
	rotated := w.hashWith(t, f)
	if !res.Converged || len(res.Failures) != 0 {
		t.Fatalf("converged %v, failures %+v: a rotation before the provision must only delay it", res.Converged, res.Failures)
	}
	if got := w.provisioned(planned); len(got) != 0 {
		t.Errorf("%d instances of the planned generation were made after the rotation", len(got))
	}
	if got := w.provisioned(rotated); len(got) != 2 || got[0] != "value-rotated" || got[1] != "value-rotated" {
		t.Errorf("the generation of the rotated value got %q", got)
	}
	if !strings.Contains(w.logs.String(), "secrets changed since the plan: secret DB_PASSWORD changed (planning again)") {
		t.Errorf("the refusal is not logged:\n%s", w.logs.String())
	}
	w.noValue(t, "value-planned", "value-rotated")
}

// A secret that cannot be read stalls its service alone, with a message
// that names the secret and where molt looked; the other service
// converges. Once the secret is there, the next apply converges it.
func TestMissingSecretStallsItsServiceOnly(t *testing.T) {
	w := newSecretWorld(t)
	f := w.fleet("main@sha1:1", "v1", 1)
	f.Services["web"].SecretEnv["API_KEY"] = schema.Secret{Env: "SHOP_API_KEY"}
	env := map[string]string{}
	var mu sync.Mutex
	w.exec.Secrets = NewSecrets(w.state, nil)
	w.exec.Secrets.LookupEnv = func(k string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		v, ok := env[k]
		return v, ok
	}
	res := w.apply(t, f, "main@sha1:1")
	if res.Converged || len(res.Failures) != 0 || len(res.Degraded) != 1 || res.Degraded[0].Service != "web" {
		t.Fatalf("converged %v, failures %+v, degraded %+v: want web degraded only", res.Converged, res.Failures, res.Degraded)
	}
	want := "cannot resolve the spec: invalid instance spec: secret API_KEY: environment variable SHOP_API_KEY is not set in molt's environment; " +
		"secret DB_PASSWORD: file " + w.file + ": no such file or directory: nothing can be provisioned"
	if got := res.Degraded[0].Degraded; got != want {
		t.Errorf("degraded: %q\nwant       %q", got, want)
	}
	if w.target.running("shop", "api") != 1 || w.target.running("shop", "web") != 0 {
		t.Errorf("running: api %d, web %d; want 1, 0", w.target.running("shop", "api"), w.target.running("shop", "web"))
	}

	w.rotate(t, "now-there")
	mu.Lock()
	env["SHOP_API_KEY"] = "key-now-there"
	mu.Unlock()
	if res := w.apply(t, f, "main@sha1:1"); !res.Converged || w.target.running("shop", "web") != 1 {
		t.Fatalf("with the secrets there: converged %v, %d web running", res.Converged, w.target.running("shop", "web"))
	}
	w.target.mu.Lock()
	last := w.target.specs[len(w.target.specs)-1]
	w.target.mu.Unlock()
	if last.SecretEnv["API_KEY"] != "key-now-there" || last.SecretEnv["DB_PASSWORD"] != "now-there" {
		t.Errorf("web got %v", last.SecretEnv)
	}
	w.noValue(t, "key-now-there", "now-there")
}

// A rotated secret whose new generation fails rolls back to the serving
// generation, which cannot be provisioned again (the old value is gone):
// its instances are kept as they are, the service says why, and nothing
// is made with a value its hash does not give.
func TestRollbackAfterRotationHolds(t *testing.T) {
	w := newSecretWorld(t)
	w.exec.Tick = time.Millisecond
	w.rotate(t, "old-value")
	f := w.fleet("main@sha1:1", "v1", 2)
	w.apply(t, f, "main@sha1:1")
	old := w.hashWith(t, f)
	w.rotate(t, "new-value")
	broken := w.hashWith(t, f)
	w.target.dies[broken] = true
	res := w.apply(t, f, "main@sha1:1")
	if len(res.Failures) != 1 || res.Failures[0].Hash != broken {
		t.Fatalf("failures %+v, want the rotated generation's", res.Failures)
	}
	if got := w.provisioned(old); len(got) != 2 {
		t.Errorf("%d instances of the old generation made, want only the first 2", len(got))
	}
	if n := w.target.running("shop", "web"); n != 2 {
		t.Errorf("%d web instances run, want the 2 of the old generation", n)
	}
	var web *ServicePlan
	for i := range res.Plan.Services {
		if res.Plan.Services[i].Service == "web" {
			web = &res.Plan.Services[i]
		}
	}
	want := "cannot provision the last good generation again: secret DB_PASSWORD changed since generation " + short(old) + " was made"
	if web == nil || !strings.Contains(web.Degraded, want) {
		t.Errorf("web's plan says %+v, want degraded: %s", web, want)
	}
	w.noValue(t, "old-value", "new-value")
}
