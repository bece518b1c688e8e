package github

import (
	"fmt"
	"strings"
	"time"
)

// OutcomeKind is how a rollout of a commit ended. It is part of the
// outcome comment's marker: one comment per commit and kind.
type OutcomeKind string

const (
	OutcomeSuccess OutcomeKind = "success"
	OutcomeFailure OutcomeKind = "failure"
	// OutcomePaused: the rollout stopped at its pause point and waits for
	// `molt promote` (or `molt abort`).
	OutcomePaused OutcomeKind = "paused"
)

// Outcome is what became of the rollout of a commit of the tracked
// branch. Plain data: the server fills it from the reconciler's result
// and failures, and it is persisted in the report queue.
type Outcome struct {
	SHA string `json:"sha"` // the deployed commit, 40 hex digits
	// Revision is how the commit is printed, e.g. "main@sha1:0123456789ab";
	// empty prints the SHA's first 12 digits.
	Revision string `json:"revision,omitempty"`
	// Repo makes the links; Client.Deliver fills it when it is zero.
	Repo RepoRef     `json:"repo,omitzero"`
	Kind OutcomeKind `json:"kind"`
	// Reason says why the rollout failed.
	Reason   string           `json:"reason,omitempty"`
	Duration time.Duration    `json:"duration,omitempty"`
	Services []ServiceOutcome `json:"services,omitempty"`
	// Provisioned and Retired are the totals; when zero they are summed
	// from Services.
	Provisioned int `json:"provisioned,omitempty"`
	Retired     int `json:"retired,omitempty"`
	// RevertsTo is set for a revert commit: the revision it returns to.
	RevertsTo string `json:"revertsTo,omitempty"`

	// RevertBase asks Client.Deliver, for a failure, to open a revert
	// pull request into this branch (OpenRevertPR) before it comments,
	// and to link it. Empty: no revert pull request.
	RevertBase string `json:"revertBase,omitempty"`
	// Revert is the revert pull request (or why none was opened); Deliver
	// fills it.
	Revert *Revert `json:"revert,omitempty"`
}

// ServiceOutcome is what the rollout did to one service.
type ServiceOutcome struct {
	Name        string `json:"name"`
	From        string `json:"from,omitempty"` // the spec hash in traffic before
	To          string `json:"to,omitempty"`   // the spec hash rolled out
	Provisioned int    `json:"provisioned"`
	Retired     int    `json:"retired"`
	// Failed says why the service's rollout failed; "" when it did not.
	Failed string `json:"failed,omitempty"`
	// RolledBackTo is the generation (spec hash, or revision) the service
	// went back to; "" when it was not rolled back.
	RolledBackTo string `json:"rolledBackTo,omitempty"`
	// Judged is the canary or verification decision with its figures
	// ("Promote (Healthy): canary error rate 0.2% …"); "" when none.
	Judged string `json:"judged,omitempty"`
	// Paused says how to go on with a rollout that waits for a promotion.
	Paused string `json:"paused,omitempty"`
}

// OutcomeComment renders the comment that tells a pull request what
// became of its commit: OutcomeMarker(SHA, Kind), success or failure with
// the reason and what was rolled back, provisioned and retired counts per
// service, how long it took, "reverts to" for a revert commit, and the
// revert pull request when one was opened. Cut to MaxCommentBody.
func OutcomeComment(in Outcome) string {
	kind := in.Kind
	if kind == "" {
		kind = OutcomeSuccess
	}
	rev := fmt.Sprintf("[%s](%s)", code(revisionText(in.Revision, in.SHA)), in.Repo.CommitURL(in.SHA))
	var head strings.Builder
	head.WriteString(OutcomeMarker(in.SHA, kind) + "\n")
	if kind == OutcomeFailure {
		fmt.Fprintf(&head, "### ❌ molt: the rollout of %s failed\n\n", rev)
		if in.Reason != "" {
			fmt.Fprintf(&head, "**Why:** %s\n\n", escapeMarkdown(oneLine(in.Reason)))
		}
		if rb := rolledBack(in.Services); rb != "" {
			fmt.Fprintf(&head, "**Rolled back:** %s. The previous generation kept serving.\n\n", rb)
		}
	} else if kind == OutcomePaused {
		fmt.Fprintf(&head, "### ⏸ molt: the rollout of %s is paused\n\n", rev)
		head.WriteString("It waits for `molt promote SERVICE` to go on, or `molt abort SERVICE` to roll back (see the services below).\n\n")
	} else {
		fmt.Fprintf(&head, "### ✅ molt deployed %s\n\n", rev)
	}
	if in.RevertsTo != "" {
		fmt.Fprintf(&head, "This commit reverts to %s.\n\n", code(revisionText(in.RevertsTo, "")))
	}
	provisioned, retired := in.Provisioned, in.Retired
	if provisioned == 0 && retired == 0 {
		for _, s := range in.Services {
			provisioned += s.Provisioned
			retired += s.Retired
		}
	}
	fmt.Fprintf(&head, "Took %s: + %d provisioned, − %d retired.\n", duration(in.Duration), provisioned, retired)
	if r := in.Revert; r != nil {
		switch {
		case r.Number > 0:
			fmt.Fprintf(&head, "\n**Revert:** [#%d](%s) reverts this commit; merge it to go back for good.\n", r.Number, orText(r.URL, in.Repo.PullURL(r.Number)))
		case r.Skipped != "":
			fmt.Fprintf(&head, "\n**No revert pull request:** %s.\n", escapeMarkdown(oneLine(r.Skipped)))
		}
	}
	parts := []part{{head: head.String(), keep: true}}
	if len(in.Services) > 0 {
		parts = append(parts, part{head: "\n", text: outcomeTable(in.Services)})
	}
	return fit(parts, MaxCommentBody, cutNote("`molt status` has the whole outcome"))
}

// maxRolledBack bounds the services named in the "Rolled back" line; the
// table below has every one.
const maxRolledBack = 20

// rolledBack lists the services rolled back and where to, the first
// maxRolledBack of them.
func rolledBack(services []ServiceOutcome) string {
	var out []string
	n := 0
	for _, s := range services {
		if s.RolledBackTo == "" {
			continue
		}
		if n++; n <= maxRolledBack {
			out = append(out, fmt.Sprintf("**%s** to %s", escapeMarkdown(oneLine(s.Name)), code(shortHash(s.RolledBackTo))))
		}
	}
	if n > maxRolledBack {
		out = append(out, fmt.Sprintf("and %d more", n-maxRolledBack))
	}
	return strings.Join(out, ", ")
}

func outcomeTable(services []ServiceOutcome) string {
	var b strings.Builder
	b.WriteString("| service | generation | + provisioned | − retired | result |\n")
	b.WriteString("|---|---|---:|---:|---|\n")
	for _, s := range services {
		result := "✅ done"
		if s.Paused != "" {
			result = "⏸ " + escapeMarkdown(oneLine(s.Paused))
		}
		if s.Failed != "" {
			result = "❌ " + escapeMarkdown(oneLine(s.Failed))
			if s.RolledBackTo != "" {
				result += "; rolled back to " + cellCode(shortHash(s.RolledBackTo))
			}
		}
		if s.Judged != "" {
			result += " — judged " + escapeMarkdown(oneLine(s.Judged))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s |\n", escapeMarkdown(oneLine(s.Name)), generation(s.From, s.To), s.Provisioned, s.Retired, result)
	}
	return b.String()
}

// duration prints a duration for people: whole seconds, or milliseconds
// under a second.
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func orText(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
