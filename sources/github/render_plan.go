package github

import (
	"fmt"
	"slices"
	"strings"
)

// PlanInput is what a plan comment says about the head commit of a pull
// request. Plain data: the server fills it from the validation result or
// the reconciler's plan, and it is persisted in the report queue.
type PlanInput struct {
	PR  int    `json:"pr"`
	SHA string `json:"sha"` // the head commit, 40 hex digits; links point into it
	// Revision is how the commit is printed, e.g. "feature@sha1:0123456789ab";
	// empty prints the SHA's first 12 digits.
	Revision string `json:"revision,omitempty"`
	// Repo makes the links; Client.Deliver fills it when it is zero.
	Repo RepoRef `json:"repo,omitzero"`

	// Issues are the validation errors; when there are any, the plan
	// fields are not shown.
	Issues []Issue `json:"issues,omitempty"`
	// Error says why no plan could be made (e.g. a target did not
	// answer), when the fleet is valid but there is no plan.
	Error string `json:"error,omitempty"`

	// Services summarize the plan per service. With PlanMarkdown empty
	// they are shown as a table; otherwise only their totals are.
	Services []ServiceSummary `json:"services,omitempty"`
	// PlanMarkdown is the plan as Markdown (reconciler.Plan.WriteMarkdown),
	// shown as it is.
	PlanMarkdown string `json:"planMarkdown,omitempty"`
	// PlanText is the plan as text (reconciler.Plan.WriteText), shown in
	// a collapsed <details>. Leave it empty when PlanMarkdown has it
	// already (WriteMarkdown's does).
	PlanText string `json:"planText,omitempty"`
	// Notes are shown above the plan: deploy windows ("merged now, this
	// deploys at ..."), warnings.
	Notes []string `json:"notes,omitempty"`
}

// Issue is one validation error, as schema.Issue has it.
type Issue struct {
	File    string `json:"file,omitempty"` // relative to the repository root, with forward slashes
	Line    int    `json:"line,omitempty"` // 1-based; 0 when the issue is about the whole file
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"` // the CUE path, e.g. services.web.replicas
	Message string `json:"message"`
}

// ServiceSummary is the plan of one service in a few words.
type ServiceSummary struct {
	Name      string   `json:"name"`
	Strategy  string   `json:"strategy,omitempty"`
	From      string   `json:"from,omitempty"` // the spec hash in traffic now; "" for a new service
	To        string   `json:"to,omitempty"`   // the desired spec hash; "" for a removed service
	Provision int      `json:"provision"`
	Retire    int      `json:"retire"`
	Notes     []string `json:"notes,omitempty"`
}

// Changes reports whether the service would change.
func (s ServiceSummary) Changes() bool { return s.Provision > 0 || s.Retire > 0 || s.From != s.To }

// PlanComment renders the body of the plan comment: PlanMarker, the
// revision, then either the validation errors (each linked to its line
// at the commit), or why there is no plan, or the notes, the plan and the
// raw plan text. A body over MaxCommentBody is cut (raw text first, then
// the plan, then the list of errors) with a note saying how much was
// left out; it is never split into several comments.
func PlanComment(in PlanInput) string {
	var head strings.Builder
	head.WriteString(PlanMarker + "\n")
	fmt.Fprintf(&head, "**molt plan** for [%s](%s)\n\n", code(revisionText(in.Revision, in.SHA)), in.Repo.CommitURL(in.SHA))
	if len(in.Issues) > 0 {
		n := len(in.Issues)
		fmt.Fprintf(&head, "❌ **The fleet is not valid**: %d %s. Nothing is planned until %s fixed.\n\n", n, plural(n, "issue", "issues"), plural(n, "it is", "they are"))
		var list strings.Builder
		for _, is := range in.Issues {
			list.WriteString("- " + issueLine(in.Repo, in.SHA, is) + "\n")
		}
		return fit([]part{{head: head.String(), keep: true}, {text: list.String(), keep: true}}, MaxCommentBody, cutNote("run `molt validate` locally for the whole list"))
	}
	if in.Error != "" {
		fmt.Fprintf(&head, "⚠️ **No plan**: %s\n", escapeMarkdown(oneLine(in.Error)))
		writeNotes(&head, in.Notes)
		return fit([]part{{head: head.String(), keep: true}}, MaxCommentBody, cutNote("run `molt plan` locally for the whole plan"))
	}
	head.WriteString(planVerdict(in.Services) + "\n")
	writeNotes(&head, in.Notes)
	head.WriteString("\n")
	parts := []part{{head: head.String(), keep: true}}
	switch {
	case in.PlanMarkdown != "":
		md := in.PlanMarkdown
		if !strings.HasSuffix(md, "\n") {
			md += "\n"
		}
		parts = append(parts, part{text: md})
	case len(in.Services) > 0:
		parts = append(parts, part{text: serviceTable(in.Services)})
	}
	if in.PlanText != "" {
		parts = append(parts, part{
			head: "\n<details><summary>Raw plan</summary>\n\n",
			text: fenced(in.PlanText),
			tail: "\n</details>\n",
		})
	}
	return fit(parts, MaxCommentBody, cutNote("run `molt plan` locally for the whole plan"))
}

// issueLine renders one issue as "file:line:col: path: message", the
// position linked to the file at the commit.
func issueLine(repo RepoRef, sha string, is Issue) string {
	var b strings.Builder
	if is.File != "" {
		pos := is.File
		if is.Line > 0 {
			pos += fmt.Sprintf(":%d:%d", is.Line, is.Column)
		}
		fmt.Fprintf(&b, "[%s](%s): ", code(pos), repo.BlobURL(sha, is.File, is.Line))
	}
	if is.Path != "" {
		b.WriteString(code(is.Path) + ": ")
	}
	b.WriteString(escapeMarkdown(oneLine(is.Message)))
	return b.String()
}

// planVerdict says in one line what merging would do.
func planVerdict(services []ServiceSummary) string {
	changing, provision, retire := 0, 0, 0
	for _, s := range services {
		if s.Changes() {
			changing++
		}
		provision += s.Provision
		retire += s.Retire
	}
	if len(services) == 0 {
		return "✅ **Valid.**"
	}
	if changing == 0 {
		return "✅ **Valid. No change**: every service is already as this revision says."
	}
	return fmt.Sprintf("✅ **Valid.** Merging deploys: %d of %d %s %s, + %d provision, − %d retire.",
		changing, len(services), plural(len(services), "service", "services"), plural(changing, "changes", "change"), provision, retire)
}

func writeNotes(b *strings.Builder, notes []string) {
	if len(notes) == 0 {
		return
	}
	b.WriteString("\n> [!NOTE]\n")
	for _, n := range notes {
		b.WriteString("> - " + escapeMarkdown(oneLine(n)) + "\n")
	}
}

func serviceTable(services []ServiceSummary) string {
	var b strings.Builder
	b.WriteString("| service | strategy | generation | + provision | − retire | notes |\n")
	b.WriteString("|---|---|---|---:|---:|---|\n")
	for _, s := range services {
		notes := slices.Clone(s.Notes)
		if !s.Changes() {
			notes = slices.Insert(notes, 0, "no change")
		}
		for i, n := range notes {
			notes[i] = escapeMarkdown(oneLine(n))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s |\n", escapeMarkdown(oneLine(s.Name)), orDash(escapeMarkdown(oneLine(s.Strategy))),
			generation(s.From, s.To), s.Provision, s.Retire, strings.Join(notes, "; "))
	}
	return b.String()
}

// generation prints a change of spec hash: `from` → `to`.
func generation(from, to string) string {
	if from == to {
		return orDash(codeOrEmpty(shortHash(to)))
	}
	return orNone(codeOrEmpty(shortHash(from))) + " → " + orNone(codeOrEmpty(shortHash(to)))
}

// codeOrEmpty renders s as a code span for a table cell; "" stays "".
func codeOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return cellCode(s)
}

// shortHash abbreviates a spec hash for people.
func shortHash(h string) string {
	if i := strings.IndexByte(h, ':'); i >= 0 && len(h) > i+13 {
		return prefix(h, i+13)
	}
	return prefix(h, 12)
}

// revisionText abbreviates "main@sha1:<40 hex>" to 12 hex digits; an
// empty revision prints the SHA's first 12.
func revisionText(rev, sha string) string {
	if rev == "" {
		return shortSHA(sha)
	}
	i := strings.LastIndex(rev, "sha1:")
	if i < 0 || len(rev) <= i+5+12 {
		return rev
	}
	return rev[:i+5+12]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
