package schema

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/format"
	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema/schematest"
	"github.com/rogpeppe/go-internal/txtar"
	"pgregory.net/rapid"
)

// TestLeanSchemaDropsOnlyMessages: the lean schema is the schema but for
// the error(...) elements of its disjunctions; every other error(...)
// stays.
func TestLeanSchemaDropsOnlyMessages(t *testing.T) {
	f, err := leanSource(source)
	if err != nil {
		t.Fatal(err)
	}
	out, err := format.Node(f)
	if err != nil {
		t.Fatal(err)
	}
	lean := string(out)
	full := string(source)
	if got, want := strings.Count(lean, "error("), strings.Count(full, "error(")-43; got != want {
		t.Errorf("%d error(...) left, want %d", got, want)
	}
	for _, line := range []string{
		`replicas: *1 | int & >=0` + "\n",
		`maxSurge:       *1 | int & >=0 | =~#PercentPattern` + "\n",
		`kind!:     "allow" | "deny"` + "\n",
		`#Name:        =~#NamePattern` + "\n",
		`[!~#NamePattern]: error("service name " + #NameMessage)`,
		`docker?: error("set exactly one of process and docker, not both")`,
	} {
		if !strings.Contains(lean, line) {
			t.Errorf("lean schema lacks %q", line)
		}
	}
	if strings.Contains(lean, "| error(") {
		t.Errorf("lean schema keeps an error(...) element:\n%s", lean)
	}
}

// TestLeanSchemaAgrees: the lean schema accepts a fleet exactly when the
// schema does, and gives it the same values; checking a fleet the fast
// way (the light schema or the lean one first) gives the fleet and the
// issues that the schema alone gives. The fleets are random services
// whose fields each take a value the schema accepts, one it refuses, or
// none (its default), now and then reached in a way the light schema
// cannot stand for.
func TestLeanSchemaAgrees(t *testing.T) {
	full, err := schemas.full()
	if err != nil {
		t.Fatal(err)
	}
	lean, err := schemas.lean()
	if err != nil {
		t.Fatal(err)
	}
	light, err := schemas.light()
	if err != nil {
		t.Fatal(err)
	}
	lightTaken := 0
	// Each pool: the values the schema accepts, then after "|" one it
	// refuses.
	var (
		durations = []string{`"0s"`, `"30s"`, `"1m30s"`, `"1.5h"`, "|", `"10"`, `"x"`, `5`, `""`}
		names     = []string{`"http"`, `"web-1"`, "|", `"Web"`, `"-a"`, `""`, `3`}
		counts    = []string{`1`, `3`, "|", `-1`, `2.5`, `"3"`} // (0 is refused where >= 1)
		fractions = []string{`0`, `0.5`, `1`, "|", `1.5`, `-0.1`, `"0.5"`}
		percents  = []string{`0`, `2`, `"25%"`, `"100%"`, "|", `"101%"`, `-1`, `"x"`}
		bools     = []string{`true`, `false`, "|", `"true"`}
		crons     = []string{`"0 9 * * 1-5"`, `"@daily"`, `"TZ=UTC 0 3 * * *"`, "|", `"bad"`}
		ports     = []string{`0`, `80`, `65535`, "|", `65536`, `-1`, `"80"`}
	)
	valid, total := 0, 0
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		// Half the fleets draw only what the schema accepts, one field at
		// a time; the others, now and then, what it refuses.
		clean := rapid.Bool().Draw(t, "clean")
		// value draws from pool: a value it refuses once in 50 draws.
		value := func(label string, pool []string) string {
			accepted, refused := pool, []string(nil)
			if bar := slices.Index(pool, "|"); bar >= 0 {
				accepted, refused = pool[:bar], pool[bar+1:]
			}
			if len(refused) == 0 || len(accepted) > 0 && (clean || rapid.IntRange(0, 49).Draw(t, label+" refused") > 0) {
				return rapid.SampledFrom(accepted).Draw(t, label)
			}
			return rapid.SampledFrom(refused).Draw(t, label)
		}
		field := func(indent, name string, pool []string) {
			if rapid.Bool().Draw(t, name) {
				fmt.Fprintf(&b, "%s%s: %s\n", indent, name, value(name, pool))
			}
		}
		// rare says yes once in 20 draws: a field the schema requires is
		// missing, or fields it allows one of are set together.
		rare := func(label string) bool { return !clean && rapid.IntRange(0, 19).Draw(t, label) == 0 }
		required := func(indent, name string, pool []string) {
			if !rare(name + " missing") {
				fmt.Fprintf(&b, "%s%s: %s\n", indent, name, value(name, pool))
			}
		}
		block := func(indent, name string, body func(indent string)) {
			if rapid.Bool().Draw(t, name) {
				fmt.Fprintf(&b, "%s%s: {\n", indent, name)
				body(indent + "\t")
				fmt.Fprintf(&b, "%s}\n", indent)
			}
		}
		field("", "name", []string{`"prod"`, "|", `"Prod"`, `1`})
		for i := range rapid.IntRange(1, 2).Draw(t, "services") {
			fmt.Fprintf(&b, "services: %s: {\n", value("service", []string{fmt.Sprintf("s%d", i), "|", fmt.Sprintf(`"S%d"`, i)}))
			switch r := rapid.IntRange(0, 9).Draw(t, "runs"); {
			case r < 5:
				b.WriteString("\tprocess: command: " + value("command", []string{`["./app"]`, `["./app", ""]`, "|", `[]`, `[""]`, `"./app"`}) + "\n")
				field("\tprocess: ", "sha256", []string{`"` + strings.Repeat("a", 64) + `"`, "|", `"abc"`})
			case r < 9:
				b.WriteString("\tdocker: image: " + value("image", []string{`"img"`, "|", `""`, `3`}) + "\n")
				field("\tdocker: ", "memory", []string{`"512m"`, `"1g"`, "|", `"12x"`})
				field("\tdocker: ", "cpus", []string{`1`, `0.5`, "|", `0`, `-1`})
				field("\tdocker: ", "readOnlyRootfs", bools)
			case rare("both"):
				b.WriteString("\tprocess: command: [\"./app\"]\n\tdocker: image: \"img\"\n")
			}
			field("\t", "replicas", counts)
			field("\t", "stopGrace", durations)
			block("\t", "ports", func(in string) {
				field(in, "http", ports)
				field(in, "admin", ports)
				if rare("bad port name") {
					field(in, "Admin", ports)
				}
			})
			block("\t", "env", func(in string) {
				field(in, "A", []string{`"1"`, "|", `1`})
				if rare("bad name") {
					field(in, `"1A"`, []string{"|", `"x"`})
				}
			})
			block("\t", "secretEnv", func(in string) {
				block(in, "S", func(in string) {
					file := rapid.Bool().Draw(t, "file")
					if file || rare("file and env") {
						field(in, "file", []string{`"/s"`, "|", `""`})
					}
					if !file || rare("env and file") {
						field(in, "env", []string{`"E"`, "|", `"1E"`})
					}
				})
			})
			for _, h := range []string{"health", "liveness"} {
				block("\t", h, func(in string) {
					check := rapid.IntRange(0, 2).Draw(t, "check")
					if check == 1 || rare("http too") {
						fmt.Fprintf(&b, "%shttp: {\n", in)
						field(in+"\t", "path", []string{`"/"`, `"/h"`, "|", `"h"`})
						field(in+"\t", "port", names)
						field(in+"\t", "status", []string{`100`, `204`, `599`, "|", `600`, `99`})
						fmt.Fprintf(&b, "%s}\n", in)
					}
					if check == 2 || rare("tcp too") {
						fmt.Fprintf(&b, "%stcp: {\n", in)
						required(in+"\t", "port", names)
						fmt.Fprintf(&b, "%s}\n", in)
					}
					field(in, "interval", durations)
					field(in, "timeout", durations)
					field(in, "healthyThreshold", counts)
					field(in, "unhealthyThreshold", counts)
					field(in, "grace", durations)
				})
			}
			block("\t", "rollout", func(in string) {
				strategy := value("strategy", []string{`"rolling"`, `"blue-green"`, `"canary"`, "|", `"red"`})
				if strategy != `"rolling"` || rapid.Bool().Draw(t, "strategy set") {
					fmt.Fprintf(&b, "%sstrategy: %s\n", in, strategy)
				}
				field(in, "maxSurge", percents)
				field(in, "maxUnavailable", percents)
				field(in, "minHealthyFor", durations)
				field(in, "progressDeadline", durations)
				field(in, "keepPrevious", durations)
				field(in, "verifyFor", durations)
				field(in, "maxErrorRate", fractions)
				field(in, "pause", bools)
				if (strategy == `"canary"`) != rare("canary flipped") {
					fmt.Fprintf(&b, "%scanary: {\n", in)
					in := in + "\t"
					field(in, "count", counts)
					field(in, "weight", []string{`1`, `10`, `100`, "|", `0`, `101`})
					field(in, "duration", durations)
					field(in, "maxErrorRate", fractions)
					field(in, "then", []string{`"rolling"`, `"blue-green"`, "|", `"canary"`})
					field(in, "minRequests", counts)
					field(in, "maxLatencyRatio", []string{`2`, `0.5`, "|", `0`, `-1`})
					field(in, "onInsufficientTraffic", []string{`"rollback"`, `"promote"`, "|", `"wait"`})
					fmt.Fprintf(&b, "%s}\n", in[:len(in)-1])
				}
			})
			block("\t", "expose", func(in string) {
				field(in, "listen", []string{`":8080"`, `"127.0.0.1:9000"`, "|", `"bad"`, `"a b:1"`})
				field(in, "port", names)
				block(in, "haproxy", func(in string) { required(in, "backend", []string{`"be_1"`, "|", `"bad name"`}) })
			})
			block("\t", "recycle", func(in string) {
				required(in, "maxAge", durations)
				field(in, "window", crons)
			})
			if rapid.Bool().Draw(t, "deployWindows") {
				fmt.Fprintf(&b, "\tdeployWindows: [{kind: %s, schedule: %s, duration: %s}]\n",
					value("kind", []string{`"allow"`, `"deny"`, "|", `"maybe"`}),
					value("schedule", crons), value("window duration", durations))
			}
			if rapid.IntRange(0, 3).Draw(t, "twisted") == 0 {
				// A field reached other than by setting it.
				b.WriteString("\t" + rapid.SampledFrom([]string{
					`replicas?: 3`, `stopGrace?: "5s"`, `health: grace?: ">=1"`, `replicas?: >=2`,
					`[=~"^rep"]: 2`, `health: [=~"val$"]: "7s"`,
					`replicas: *2 | int`, `stopGrace: *"10s" | string`, `rollout: pause: *true | bool`,
					`stopGrace: rollout.keepPrevious`, `health: interval: health.timeout`,
					`replicas: _r`, `_r: *4 | int`, `rollout: maxSurge: rollout.maxUnavailable`,
					`health: http: status: *204 | 200`, `env: X?: "x"`, `ports: http!: 80`,
				}).Draw(t, "twist") + "\n")
			}
			b.WriteString("}\n")
		}
		src := b.String()
		snap, err := Loader{}.readSnapshot(fstest.MapFS{"fleet.cue": {Data: []byte(src)}}, ".")
		if err != nil {
			t.Fatal(err)
		}
		inst, issues := snap.instance()
		if inst == nil {
			t.Fatalf("instance: %v\n%s", issues, src)
		}
		data := newContext().BuildInstance(inst)
		checkBothWays(t, data, inst, src)
		if lightFleet(inst) {
			if v := data.Unify(light.fleet); v.Validate(cue.Concrete(true)) == nil {
				if _, _, ok := read(v, light.moved); ok {
					lightTaken++
				}
			}
		}
		vf, vl := data.Unify(full), data.Unify(lean)
		ef, el := vf.Validate(cue.Concrete(true)), vl.Validate(cue.Concrete(true))
		if (ef == nil) != (el == nil) {
			t.Fatalf("the schema says %v, the lean schema %v, of\n%s", ef, el, src)
		}
		total++
		if ef != nil {
			return
		}
		valid++
		ff, fs, okf := read(vf, nil)
		lf, ls, okl := read(vl, nil)
		if okf != okl {
			t.Fatalf("read: %v from the schema, %v from the lean schema, of\n%s", okf, okl, src)
		}
		if d := cmp.Diff(ff, lf); d != "" {
			t.Fatalf("fleet (-schema +lean):\n%s\nof\n%s", d, src)
		}
		if d := cmp.Diff(fs, ls); d != "" {
			t.Fatalf("services (-schema +lean):\n%s\nof\n%s", d, src)
		}
	})
	t.Logf("%d of %d fleets valid, %d taken by the light schema", valid, total, lightTaken)
	if valid == 0 || valid == total || lightTaken == 0 || lightTaken == valid {
		t.Fatalf("%d of %d fleets valid, %d taken by the light schema: the draw covers one side only", valid, total, lightTaken)
	}
}

// TestLightFleet: a fleet that writes an optional or required field, a
// pattern constraint or a default, in its own files or in a package it
// imports, is not checked against the light schema.
func TestLightFleet(t *testing.T) {
	const module = "-- cue.mod/module.cue --\nmodule: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n"
	for src, want := range map[string]bool{
		"services: web: {process: command: [\"./app\"], replicas: 2 * 3}":            true,
		"services: web: process: command: [\"./app\"]\nx: [1, 2]\ny: x[0]":           true,
		"services: web: {process: command: [\"./app\"], replicas?: 3}":               false,
		"services: web: {process: command: [\"./app\"], ports: http!: 80}":           false,
		"services: [string]: replicas: 2\nservices: web: {}":                         false,
		"services: web: {process: command: [\"./app\"], [=~\"^rep\"]: 2}":            false,
		"services: web: {process: command: [\"./app\"], replicas: *2 | int}":         false,
		"_r: *4 | int\nservices: web: {process: command: [\"./app\"], replicas: _r}": false,
	} {
		archive := "-- fleet.cue --\npackage fleet\n" + src + "\n"
		if got := lightFleet(instanceOf(t, archive)); got != want {
			t.Errorf("lightFleet(%q) = %v, want %v", src, got, want)
		}
	}
	imported := module + "-- fleet.cue --\npackage fleet\nimport \"example.com/fleet/base\"\nservices: web: base.#Web\n" +
		"-- base/base.cue --\npackage base\n#Web: {process: command: [\"./app\"], replicas?: 2}\n"
	if lightFleet(instanceOf(t, imported)) {
		t.Error("lightFleet is true of a fleet whose imported package has an optional field")
	}
}

// instanceOf returns the build instance of the fleet in a txtar archive.
func instanceOf(t *testing.T, archive string) *build.Instance {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range txtar.Parse([]byte(archive)).Files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data}
	}
	snap, err := Loader{}.readSnapshot(fsys, ".")
	if err != nil || len(snap.issues) > 0 {
		t.Fatalf("read snapshot: %v %v", err, snap.issues)
	}
	inst, issues := snap.instance()
	if inst == nil {
		t.Fatalf("instance: %v", issues)
	}
	return inst
}

// FuzzLeanSchema: whatever the fleet, checking it the fast way (the light
// or lean schema first) gives the fleet and the issues that checking it
// against the schema alone gives.
func FuzzLeanSchema(f *testing.F) {
	for _, s := range loadSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("-- fleet.cue --\n" + string(schematest.GeneratedFleet(3))))
	for _, s := range []string{
		"services: web: {process: command: [\"./app\"], replicas?: 3}",
		"services: web: {process: command: [\"./app\"], stopGrace: rollout.keepPrevious}",
		"services: web: {process: command: [\"./app\"], health: interval: health.timeout, rollout: strategy: \"canary\"}",
		"services: [string]: {replicas: *2 | int}\nservices: web: process: command: [\"./app\"]",
		"services: web: {docker: {image: \"i\", readOnlyRootfs: false}, expose: {}, liveness: {}}",
	} {
		f.Add([]byte("-- fleet.cue --\npackage fleet\n" + s + "\n"))
	}
	f.Fuzz(func(t *testing.T, archive []byte) {
		tree := fuzzTree(archive)
		snap, err := Loader{MaxFileBytes: 2 << 10, MaxTotalBytes: fuzzMaxBytes}.readSnapshot(tree, fuzzDir)
		if err != nil || len(snap.issues) > 0 || snap.local == 0 {
			return
		}
		inst, _ := snap.instance()
		if inst == nil {
			return
		}
		data := newContext().BuildInstance(inst)
		if data.Err() != nil {
			return
		}
		checkBothWays(t, data, inst, string(archive))
	})
}

// checkBothWays fails t unless checking data (of inst, whose source is
// src) the fast way gives the fleet and the issues that checking it
// against the schema alone gives.
func checkBothWays(t tb, data cue.Value, inst *build.Instance, src string) {
	t.Helper()
	fastFleet, fastIssues, err := check(data, schemas, lightFleet(inst), nil)
	if err != nil {
		t.Fatal(err)
	}
	slowFleet, slowIssues, err := check(data, defs{full: schemas.full}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(slowFleet, fastFleet); diff != "" {
		t.Fatalf("fleet (-schema +fast):\n%s\nof\n%s", diff, src)
	}
	// (As Load reports them: sorted, once each.)
	if diff := cmp.Diff(invalid(slowIssues), invalid(fastIssues)); diff != "" {
		t.Fatalf("issues (-schema +fast):\n%s\nof\n%s", diff, src)
	}
}
