package schema

import (
	"fmt"
	"github.com/molt-dev/molt/schema/schematest"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"cuelang.org/go/cue"
	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// tb is what the helpers below need of a *testing.T and a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// unified returns the snapshot in dir of fsys unified with #Fleet, and
// whether it validates.
func unified(t tb, fsys fstest.MapFS, dir string) (cue.Value, bool) {
	t.Helper()
	def, err := fleetDef()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Loader{}.readSnapshot(fsys, dir)
	if err != nil || len(snap.issues) > 0 {
		t.Fatalf("read snapshot: %v %v", err, snap.issues)
	}
	inst, issues := snap.instance()
	if inst == nil {
		t.Fatalf("instance: %v", issues)
	}
	v := newContext().BuildInstance(inst).Unify(def)
	return v, v.Validate(cue.Concrete(true)) == nil
}

// checkReader compares what the reader makes of a valid fleet with what
// Value.Decode makes of it.
func checkReader(t tb, v cue.Value) {
	t.Helper()
	var want rawFleet
	if err := v.LookupPath(cue.MakePath(cue.Str("name"))).Decode(&want.Name); err != nil {
		t.Fatal(err)
	}
	if w := v.LookupPath(cue.MakePath(cue.Str("deployWindows"))); w.Exists() {
		if err := w.Decode(&want.DeployWindows); err != nil {
			t.Fatal(err)
		}
	}
	wantServices := map[string]rawService{}
	if err := v.LookupPath(cue.MakePath(cue.Str("services"))).Decode(&wantServices); err != nil {
		t.Fatal(err)
	}
	got, gotServices, ok := read(v, nil)
	if !ok {
		t.Fatal("read gave up")
	}
	// nil and empty differ: a present empty list is part of a spec hash.
	opt := cmp.Comparer(func(a, b []string) bool {
		return (a == nil) == (b == nil) && strings.Join(a, "\x00") == strings.Join(b, "\x00")
	})
	if d := cmp.Diff(want, got, cmp.AllowUnexported(), opt); d != "" {
		t.Errorf("fleet (-Decode +reader):\n%s", d)
	}
	if d := cmp.Diff(wantServices, gotServices, opt); d != "" {
		t.Errorf("services (-Decode +reader):\n%s", d)
	}
}

// TestReaderMatchesDecode reads fleets that use every field of the
// schema, in every form it allows, as Value.Decode does.
func TestReaderMatchesDecode(t *testing.T) {
	examples, err := os.ReadDir(fleetsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range examples {
		t.Run(e.Name(), func(t *testing.T) {
			fsys := fstest.MapFS{}
			files, err := os.ReadDir(fleetsDir + "/" + e.Name())
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				data, err := os.ReadFile(fleetsDir + "/" + e.Name() + "/" + f.Name())
				if err != nil {
					t.Fatal(err)
				}
				fsys[f.Name()] = &fstest.MapFile{Data: data}
			}
			v, ok := unified(t, fsys, ".")
			if !ok {
				t.Fatal("example does not validate")
			}
			checkReader(t, v)
		})
	}
	for name, src := range map[string]string{
		"generated": string(schematest.GeneratedFleet(20)),
		"empty lists and maps": `
name: "x"
deployWindows: []
services: a: {
	docker: {image: "i", command: [], entrypoint: [], tmpfs: [], networks: [], engines: [], cpus: 2}
	env: {}
	secretEnv: {}
	ports: {}
	deployWindows: []
}
`,
		"numbers in other forms": `
services: a: {
	process: command: ["./app"]
	rollout: {maxSurge: 0, maxUnavailable: "100%", maxErrorRate: 1, strategy: "canary", canary: {maxErrorRate: 0, maxLatencyRatio: 3}}
	ports: {http: 65535}
}
`,
		"secrets, liveness, recycle, haproxy": `
services: a: {
	process: {command: ["./app", ""], sha256: "` + strings.Repeat("a", 64) + `"}
	secretEnv: {A: file: "/run/a", B: env: "B_VAR"}
	env: {C: ""}
	liveness: {}
	health: tcp: port: "p"
	ports: p: 1
	recycle: maxAge: "1h"
	expose: {haproxy: backend: "be", port: "p"}
	rollout: {strategy: "rolling", pause: true, verifyFor: "0s"}
}
`,
		"comprehensions, hidden fields and definitions": `
_names: ["a", "b", "c"]
_base: {process: command: ["./app"]}
#Port: 80
let r = 3
for i, n in _names {
	services: (n): _base & {env: INDEX: "\(i)"}
}
services: c: {replicas: r, ports: http: #Port}
`,
	} {
		t.Run(name, func(t *testing.T) {
			v, ok := unified(t, fstest.MapFS{"fleet.cue": {Data: []byte(src)}}, ".")
			if !ok {
				t.Fatal("fleet does not validate")
			}
			checkReader(t, v)
		})
	}
}

// TestReaderMatchesDecodeRapid reads random services that combine the
// fields of the schema.
func TestReaderMatchesDecodeRapid(t *testing.T) {
	pick := func(t *rapid.T, label string, options ...string) string {
		return rapid.SampledFrom(options).Draw(t, label)
	}
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		if rapid.Bool().Draw(t, "named") {
			b.WriteString("name: \"fleet\"\n")
		}
		if rapid.Bool().Draw(t, "windows") {
			b.WriteString(`deployWindows: [{kind: "allow", schedule: "@daily", duration: "1h"}]` + "\n")
		}
		n := rapid.IntRange(0, 4).Draw(t, "services")
		for i := range n {
			fields := []string{
				pick(t, "runs", `process: command: ["./app"]`, `process: {command: ["./app", "-x"], sha256: "`+strings.Repeat("0", 64)+`"}`,
					`docker: image: "img"`, `docker: {image: "img", command: [], cpus: 1, memory: "1g", readOnlyRootfs: false, user: "u"}`,
					`docker: {image: "img", entrypoint: ["/e"], tmpfs: ["/t"], networks: [], engines: ["local"], cpus: 0.5}`),
				pick(t, "replicas", ``, `replicas: 0`, `replicas: 3`),
				pick(t, "env", ``, `env: {}`, `env: {A: "1", B: ""}`),
				pick(t, "secretEnv", ``, `secretEnv: {}`, `secretEnv: S: file: "/s"`, `secretEnv: {S: env: "E", T: file: "f"}`),
				pick(t, "ports", ``, `ports: {}`, `ports: {http: 0}`, `ports: {http: 80, admin: 81}`),
				pick(t, "health", ``, `health: {}`, `health: http: {}`, `health: {http: {path: "/h", status: 204}, interval: "1s", grace: "0s"}`,
					`health: {tcp: port: "http", healthyThreshold: 2, unhealthyThreshold: 1}`),
				pick(t, "liveness", ``, `liveness: {}`, `liveness: {http: port: "http", timeout: "3s"}`),
				pick(t, "rollout", ``, `rollout: {}`, `rollout: {strategy: "blue-green", maxSurge: "50%", keepPrevious: "1m"}`,
					`rollout: {strategy: "canary", canary: {}}`, `rollout: {strategy: "canary", canary: {then: "blue-green", count: 2, weight: 50, duration: "2m", minRequests: 0, onInsufficientTraffic: "promote"}}`,
					`rollout: {maxSurge: 2, maxUnavailable: 1, minHealthyFor: "1s", progressDeadline: "1h", verifyFor: "0s", maxErrorRate: 0.5, pause: true}`),
				pick(t, "expose", ``, fmt.Sprintf(`expose: listen: ":%d"`, 8000+i), `expose: {haproxy: backend: "b`+fmt.Sprint(i)+`", port: "http"}`),
				pick(t, "recycle", ``, `recycle: maxAge: "1h"`, `recycle: {maxAge: "2h", window: "0 3 * * *"}`),
				pick(t, "stopGrace", ``, `stopGrace: "1s"`),
				pick(t, "deployWindows", ``, `deployWindows: []`, `deployWindows: [{kind: "deny", schedule: "@weekly", duration: "2h"}, {kind: "allow", schedule: "0 9 * * 1-5", duration: "8h"}]`),
			}
			fmt.Fprintf(&b, "services: \"s%d\": {\n", i)
			for _, f := range fields {
				if f != "" {
					b.WriteString("\t" + f + "\n")
				}
			}
			b.WriteString("}\n")
		}
		v, ok := unified(t, fstest.MapFS{"fleet.cue": {Data: []byte(b.String())}}, ".")
		if !ok {
			return // a mix that the schema refuses: not the reader's concern
		}
		checkReader(t, v)
	})
}
