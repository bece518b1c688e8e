package reconciler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/reconciler/mdtest"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// fuzzPlan builds a plan of n services (1 to 8) from fuzzed names,
// revisions and messages; the bits of fields choose which parts each
// service has, so that every branch of the renderers is reached.
func fuzzPlan(fleet, rev, service, from, to, msg string, n uint8, fields uint16, count int32) Plan {
	p := Plan{Fleet: fleet, Revision: rev}
	strategies := []schema.Strategy{"", schema.Rolling, schema.BlueGreen, schema.CanaryRun, schema.Strategy(msg)}
	for i := range int(n%8) + 1 {
		bits := fields >> (i % 4)
		on := func(b uint) bool { return bits&(1<<b) != 0 }
		sp := ServicePlan{
			Service:      fmt.Sprintf("%s%d", service, i),
			Strategy:     strategies[(int(fields)+i)%len(strategies)],
			From:         from,
			FromRevision: rev,
			To:           to,
			ToRevision:   rev,
			Replicas:     int(count) + i,
			Provision:    int(count) * i,
			Retire:       i,
			Warm:         i % 2,
			Healthy:      int(count) - i,
		}
		if on(0) {
			sp.From, sp.To = to, from
		}
		if on(1) {
			sp.To = ""
		}
		if on(2) {
			sp.Failed = msg
		}
		if on(3) {
			sp.Degraded, sp.DegradedReason = msg, Degradation(msg)
		}
		if on(4) {
			sp.Paused, sp.Waiting, sp.WaitReason = msg, msg, Wait(msg)
		}
		if on(5) {
			sp.Notes = []string{msg, service}
			sp.Why = []Change{{Field: msg, Name: service, How: "changed"}}
		}
		if on(6) {
			sp.Judgement = &Judgement{Verdict: Verdict(msg), Finding: Finding(service), Message: msg, Requests: int64(count),
				ErrorRate: float64(count) / 1e6, P99: time.Duration(count)}
		}
		if on(7) {
			sp.Step = Step{Generation: to,
				Provision: []Provision{{Reason: Reason(msg), Detail: msg, Engine: service}, {Reason: ReasonScaleUp, Engine: from}},
				Retire:    []Retire{{Instance: service, Reason: Reason(service), Detail: msg}}}
		}
		if on(8) {
			sp.Route = &targets.Route{Service: sp.Service, Listen: msg, HAProxy: from,
				Backends: []targets.Backend{{Instance: service, Addr: msg, Generation: to, Weight: int(count)}},
				Meta:     map[string]string{MetaTraffic: msg}}
		}
		if on(9) {
			sp.Route = &targets.Route{Service: sp.Service}
		}
		if on(10) {
			sp.Rollback = true
			sp.Deferred = time.Unix(int64(count), 0).UTC()
			sp.Wake = time.Unix(int64(count)*7, 0).UTC()
		}
		if on(11) {
			sp.Traffic = &Traffic{Active: to, Previous: from, Instances: []string{service}}
		}
		p.Services = append(p.Services, sp)
	}
	return p
}

// codeSpans returns the contents of the inline code spans of one line of
// Markdown, as CommonMark reads them: a run of n backticks opens a span
// that the next run of exactly n closes; one space is stripped from both
// ends of a content that has one at each and is not all spaces.
func codeSpans(line string) []string {
	var spans []string
	run := func(s string) int { return len(s) - len(strings.TrimLeft(s, "`")) }
	for i := 0; i < len(line); {
		if line[i] == '\\' {
			i += 2
			continue
		}
		if line[i] != '`' {
			i++
			continue
		}
		n := run(line[i:])
		j := i + n
		closed := false
		for k := j; k < len(line); {
			if line[k] != '`' {
				k++
				continue
			}
			m := run(line[k:])
			if m == n {
				c := line[j:k]
				if len(c) >= 2 && c[0] == ' ' && c[len(c)-1] == ' ' && strings.Trim(c, " ") != "" {
					c = c[1 : len(c)-1]
				}
				spans = append(spans, c)
				i, closed = k+m, true
				break
			}
			k += m
		}
		if !closed {
			i = j // a run without its closing run is literal
		}
	}
	return spans
}

func FuzzPlanRender(f *testing.F) {
	f.Add("prod", "main@sha1:0123456789abcdef0123456789abcdef01234567", "web", "sha256:aaaaaaaaaaaa", "sha256:bbbbbbbbbbbb", "health check failed", uint8(2), uint16(0xffff), int32(3))
	f.Add("a`b", "``", "w|x", "", "", "line\n```\nout of the fence\n", uint8(7), uint16(0x0135), int32(-1))
	f.Add("", "", "", "", "", "", uint8(0), uint16(0), int32(0))
	f.Add("f\n# h", "r\r\n", "s\n| x |", "\xff\xfe", "é", "~~~\n````", uint8(3), uint16(0x0fff), int32(1<<30))
	f.Fuzz(func(t *testing.T, fleet, rev, service, from, to, msg string, n uint8, fields uint16, count int32) {
		p := fuzzPlan(fleet, rev, service, from, to, msg, n, fields, count)
		render := func(write func(Plan, *bytes.Buffer) error) string {
			var b bytes.Buffer
			if err := write(p, &b); err != nil {
				t.Fatalf("render: %v", err)
			}
			var again bytes.Buffer
			_ = write(p, &again)
			if b.String() != again.String() {
				t.Fatal("rendering is not deterministic")
			}
			return b.String()
		}
		text := render(func(p Plan, b *bytes.Buffer) error { return p.WriteText(b) })
		md := render(func(p Plan, b *bytes.Buffer) error { return p.WriteMarkdown(b) })
		js := render(func(p Plan, b *bytes.Buffer) error { return p.WriteJSON(b) })
		_ = p.LogValue().Resolve()

		if !strings.HasPrefix(text, "fleet ") {
			t.Fatalf("text plan does not start with its fleet: %.60q", text)
		}

		// JSON: one valid value that round-trips.
		if !json.Valid([]byte(js)) {
			t.Fatalf("invalid JSON: %s", js)
		}
		var back Plan
		if err := json.Unmarshal([]byte(js), &back); err != nil {
			t.Fatalf("JSON does not decode into a plan: %v", err)
		}
		var again bytes.Buffer
		if err := back.WriteJSON(&again); err != nil {
			t.Fatal(err)
		}
		var back2 Plan
		if err := json.Unmarshal(again.Bytes(), &back2); err != nil || !cmp.Equal(back, back2) {
			t.Fatalf("JSON does not round-trip (%v):\n%s", err, cmp.Diff(back, back2))
		}
		// Without invalid UTF-8 (which JSON replaces), nothing is lost.
		if mdtest.AllValid(fleet, rev, service, from, to, msg) {
			if !cmp.Equal(back, p) {
				t.Fatalf("decoded plan differs:\n%s", cmp.Diff(p, back))
			}
			if again.String() != js {
				t.Fatalf("JSON differs once re-encoded:\n%s", cmp.Diff(js, again.String()))
			}
		}

		// Markdown: a heading of one line naming the fleet and the
		// revision in code spans, one table row per service, and the raw
		// plan in the one fenced block.
		heading, rest, _ := strings.Cut(md, "\n")
		if !strings.HasPrefix(heading, "### molt plan for ") {
			t.Fatalf("heading %q", heading)
		}
		var want []string
		for _, s := range []string{oneLine(fleet), oneLine(ShortRevision(rev))} {
			if s != "" {
				want = append(want, s)
			}
		}
		if got := codeSpans(heading); !cmp.Equal(got, want) {
			t.Fatalf("heading %q has code spans %q, want %q", heading, got, want)
		}
		if closed, open := mdtest.FenceState(md); closed != 1 || open {
			t.Fatalf("%d fenced blocks (one left open: %v), want the raw plan's only:\n%s", closed, open, mdtest.Clip(md))
		}
		table, raw, ok := strings.Cut(rest, "\n<details><summary>Raw plan</summary>\n\n```\n")
		if !ok || !strings.HasSuffix(raw, "```\n\n</details>\n") {
			t.Fatalf("no raw plan block:\n%s", mdtest.Clip(md))
		}
		if got := strings.TrimSuffix(raw, "```\n\n</details>\n"); got != strings.ReplaceAll(text, "```", "ʼʼʼ") {
			t.Fatalf("raw plan block differs from the text plan:\n%s", cmp.Diff(text, got))
		}
		if p.Changes() {
			rows := 0
			for line := range strings.Lines(table) {
				if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| service |") {
					rows++
					if cells := mdtest.TableCells(line); cells != 6 {
						t.Fatalf("row of %d cells, want 6: %q", cells, line)
					}
				}
			}
			if rows != len(p.Services) {
				t.Fatalf("%d services in %d table rows:\n%s", len(p.Services), rows, mdtest.Clip(table))
			}
		}
	})
}

// oneLine is how a name is printed inside a line of Markdown.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// TestWriteMarkdownKeepsTextInPlace: a name with backticks stays in its
// code span, and a note or name with line breaks, fences or pipes stays
// in its table cell. Found by FuzzPlanRender.
func TestWriteMarkdownKeepsTextInPlace(t *testing.T) {
	p := Plan{Fleet: "a`b", Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Services: []ServicePlan{{
		Service: "w|x", Strategy: schema.Rolling, From: "x|y", To: "z", Replicas: 1, Provision: 1,
		Notes: []string{"exit 1:\n```\nstderr"},
	}}}
	var b strings.Builder
	if err := p.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	heading, _, _ := strings.Cut(md, "\n")
	if want := "### molt plan for ``a`b`` at `main@sha1:0123456789ab`"; heading != want {
		t.Errorf("heading %q, want %q", heading, want)
	}
	if closed, open := mdtest.FenceState(md); closed != 1 || open {
		t.Errorf("%d fenced blocks (open %v), want the raw plan's only:\n%s", closed, open, md)
	}
	want := "| w\\|x | rolling | `x\\|y` → `z` | 1 | 0 | exit 1: ``` stderr |\n"
	if !strings.Contains(md, want) {
		t.Errorf("no row %q in:\n%s", want, md)
	}
}
