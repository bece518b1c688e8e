package reconciler

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/molt-dev/molt/targets"
)

// WriteText prints the plan for a terminal: one block per service, with
// "+" for provisions and "-" for retires.
func (p Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "fleet %s at %s\n", p.Fleet, ShortRevision(p.Revision))
	for _, sp := range p.Services {
		b.WriteString("\n")
		switch {
		case sp.To == "" && sp.Strategy == "" && !sp.Rollback && sp.Degraded == "":
			fmt.Fprintf(&b, "service %s: removed from the fleet\n", sp.Service)
		case sp.Strategy == "":
			fmt.Fprintf(&b, "service %s (held as it is)\n", sp.Service)
		default:
			fmt.Fprintf(&b, "service %s (%s, %d replicas)\n", sp.Service, sp.Strategy, sp.Replicas)
		}
		if sp.From != sp.To && sp.To != "" {
			fmt.Fprintf(&b, "  generation %s → %s\n", genText(sp.From, sp.FromRevision), genText(sp.To, sp.ToRevision))
		} else if sp.To != "" {
			fmt.Fprintf(&b, "  generation %s\n", genText(sp.To, sp.ToRevision))
		}
		if len(sp.Why) > 0 {
			fmt.Fprintf(&b, "  why: %s\n", ChangesText(sp.Why))
		}
		if !sp.Changes() {
			b.WriteString("  no change\n")
		} else {
			fmt.Fprintf(&b, "  + %d provision  - %d retire", sp.Provision, sp.Retire)
			if sp.Warm > 0 {
				fmt.Fprintf(&b, "  (%d kept warm out of traffic)", sp.Warm)
			}
			if !sp.Deferred.IsZero() {
				b.WriteString("  once the deploy window opens")
			}
			b.WriteString("\n")
		}
		for _, r := range sp.Step.Retire {
			fmt.Fprintf(&b, "  - %s (%s)\n", r.Instance, reasonLine(r.Reason, r.Detail))
		}
		if n := len(sp.Step.Provision); n > 0 {
			p := sp.Step.Provision[0]
			fmt.Fprintf(&b, "  + %d new instance(s) of %s%s (%s)\n", n, short(sp.Step.Generation), onEngines(sp.Step.Provision), reasonLine(p.Reason, p.Detail))
		}
		if line := trafficLine(sp); line != "" {
			fmt.Fprintf(&b, "  ~ %s\n", line)
		}
		if sp.Waiting != "" {
			fmt.Fprintf(&b, "  waiting: %s\n", sp.Waiting)
		}
		if sp.Paused != "" {
			fmt.Fprintf(&b, "  %s\n", sp.Paused)
		}
		if sp.Degraded != "" {
			fmt.Fprintf(&b, "  DEGRADED (%d/%d healthy): %s\n", sp.Healthy, sp.Replicas, sp.Degraded)
		}
		if j := sp.Judgement; j != nil {
			fmt.Fprintf(&b, "  judged: %s (%s): %s\n", j.Verdict, j.Finding, j.Message)
		}
		if sp.Failed != "" {
			fmt.Fprintf(&b, "  FAILED: %s\n", sp.Failed)
		}
		for _, n := range sp.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown prints the plan as a pull-request comment body.
func (p Plan) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### molt plan for %s at %s\n\n", inlineCode(p.Fleet), inlineCode(ShortRevision(p.Revision)))
	if !p.Changes() {
		b.WriteString("No change: every service is already as this revision says.\n")
	} else {
		b.WriteString("| service | strategy | generation | + provision | − retire | notes |\n")
		b.WriteString("|---|---|---|---:|---:|---|\n")
		for _, sp := range p.Services {
			gen := inlineCode(short(sp.To))
			if sp.From != sp.To {
				gen = inlineCode(orNone(short(sp.From))) + " → " + inlineCode(orNone(short(sp.To)))
			}
			var notes []string
			if !sp.Changes() {
				notes = append(notes, "no change")
			}
			if len(sp.Why) > 0 {
				notes = append(notes, ChangesText(sp.Why))
			}
			if sp.Warm > 0 {
				notes = append(notes, fmt.Sprintf("%d kept warm", sp.Warm))
			}
			if sp.Failed != "" {
				notes = append(notes, "failed: "+sp.Failed)
			}
			if sp.Degraded != "" {
				notes = append(notes, "degraded: "+sp.Degraded)
			}
			if sp.Paused != "" {
				notes = append(notes, sp.Paused)
			}
			if j := sp.Judgement; j != nil {
				notes = append(notes, fmt.Sprintf("%s (%s): %s", j.Verdict, j.Finding, j.Message))
			}
			notes = append(notes, sp.Notes...)
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s |\n", tableCell(sp.Service), tableCell(orNone(string(sp.Strategy))), tableCell(gen),
				sp.Provision, sp.Retire, tableCell(strings.Join(notes, "; ")))
		}
	}
	b.WriteString("\n<details><summary>Raw plan</summary>\n\n```\n")
	var raw strings.Builder
	_ = p.WriteText(&raw)
	b.WriteString(strings.ReplaceAll(raw.String(), "```", "ʼʼʼ"))
	b.WriteString("```\n\n</details>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the plan as indented JSON.
func (p Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// LogValue summarizes the plan for structured logs.
func (p Plan) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("revision", p.Revision)}
	for _, sp := range p.Services {
		attrs = append(attrs, slog.Group(sp.Service,
			slog.Int("provision", sp.Provision), slog.Int("retire", sp.Retire),
			slog.Bool("converged", sp.Converged())))
	}
	return slog.GroupValue(attrs...)
}

func reasonLine(r Reason, detail string) string {
	if detail == "" || detail == r.Text() {
		return r.Text()
	}
	return r.Text() + ": " + detail
}

// trafficLine describes the route change of a service plan ("" for none).
func trafficLine(sp ServicePlan) string {
	if sp.Route == nil {
		return ""
	}
	if emptyRoute(*sp.Route) {
		return "route removed"
	}
	var b strings.Builder
	n := len(TrafficOf([]targets.Route{*sp.Route})[sp.Service].Instances)
	gens := map[string]int{}
	for _, be := range sp.Route.Backends {
		gens[short(be.Generation)]++
	}
	exposed := sp.Route.Listen != "" || sp.Route.HAProxy != ""
	if !exposed && n == 0 {
		return "" // not exposed and nothing in service: nothing to say
	}
	switch {
	case n == 0 && sp.From == "":
		b.WriteString("traffic: no instance in traffic yet")
	case n == 0:
		b.WriteString("traffic: no instance in traffic")
	case !exposed:
		fmt.Fprintf(&b, "in service: %d instance(s) (not exposed)", n)
	case len(gens) == 0:
		fmt.Fprintf(&b, "traffic to %d instance(s)", n)
	default:
		fmt.Fprintf(&b, "traffic to %d instance(s):", n)
		for _, g := range slices.Sorted(maps.Keys(gens)) {
			fmt.Fprintf(&b, " %d of %s", gens[g], g)
		}
	}
	if sp.Route.Listen != "" {
		fmt.Fprintf(&b, " on %s", sp.Route.Listen)
	}
	if sp.Route.HAProxy != "" {
		fmt.Fprintf(&b, " through HAProxy backend %s", sp.Route.HAProxy)
	}
	return b.String()
}

func genText(hash, rev string) string {
	if hash == "" {
		return "(none)"
	}
	if rev == "" {
		return short(hash)
	}
	return short(hash) + " (" + ShortRevision(rev) + ")"
}

// ShortRevision abbreviates "main@sha1:<40 hex>" to 12 hex digits.
func ShortRevision(rev string) string {
	i := strings.LastIndex(rev, "sha1:")
	if i < 0 || len(rev) <= i+5+12 {
		return rev
	}
	return rev[:i+5+12]
}

// inlineCode renders s on one line as a Markdown code span, with a run of
// backticks longer than any inside it (names and revisions come from the
// repository); "(none)" when s is empty, which no code span can show.
func inlineCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(none)"
	}
	ticks := "`"
	for strings.Contains(s, ticks) {
		ticks += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return ticks + s + ticks
}

// tableCell keeps s inside one cell of a Markdown table row: on one line,
// its pipes escaped (GitHub splits cells on them even in code spans).
func tableCell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", "\\|")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
