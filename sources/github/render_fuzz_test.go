package github

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/molt-dev/molt/reconciler/mdtest"
)

// checkComment asserts what every rendered comment keeps: it fits
// GitHub's limit, it is valid UTF-8 when its inputs are, its marker opens
// it, and no code fence is left open.
func checkComment(t *testing.T, body, marker string, inputs ...string) {
	t.Helper()
	if len(body) > MaxCommentBody {
		t.Fatalf("comment of %d bytes, over GitHub's %d", len(body), MaxCommentBody)
	}
	if mdtest.AllValid(inputs...) && !utf8.ValidString(body) {
		t.Fatal("comment is not valid UTF-8")
	}
	if !strings.HasPrefix(body, marker+"\n") {
		t.Fatalf("comment does not start with its marker %q: %.80q", marker, mdtest.Clip(body))
	}
	if _, open := mdtest.FenceState(body); open {
		t.Fatalf("comment leaves a code fence open:\n%s", mdtest.Clip(body))
	}
}

// cut reports whether fit cut the comment.
func cut(body string) bool { return strings.Contains(body, "> … cut: ") }

func FuzzPlanComment(f *testing.F) {
	// kind: 0 issues, 1 no plan (error), 2 a service table, 3 a plan's
	// Markdown; n copies of the issue, service or note (to reach the
	// limit).
	f.Add(uint8(0), uint16(1), "main@sha1:0123456789abcdef0123456789abcdef01234567", prHeadSHA, "fleet.cue", "services.web.replicas", "conflicting values 2 and 3", "web", "a note", "fleet prod\n\nservice web\n", "")
	f.Add(uint8(1), uint16(1), "", prHeadSHA, "", "", "", "", "", "", "target did not answer\nat all")
	f.Add(uint8(2), uint16(3000), "feat@sha1:"+prHeadSHA, prHeadSHA, "", "", "", "web|`x`\n```", "``` and ~~~", "```\nraw\n````\n", "")
	f.Add(uint8(3), uint16(2), "", prHeadSHA, "", "", "", "web", "", strings.Repeat("line\n", 20000), "### molt plan\n\n| a |\n")
	f.Add(uint8(0), uint16(5000), "x", "y", "dir/a b)(.cue", "a.`b`", strings.Repeat("é", 40), "", "", "", "")
	f.Fuzz(func(t *testing.T, kind uint8, n uint16, rev, sha, file, path, msg, name, note, planText, extra string) {
		n = min(n, 2000)
		in := PlanInput{PR: 1, SHA: sha, Revision: rev, Repo: RepoRef{Owner: "o", Name: "r"}}
		switch kind % 4 {
		case 0:
			for i := range int(n) {
				in.Issues = append(in.Issues, Issue{File: file, Line: i, Column: len(msg), Path: path, Message: msg})
			}
		case 1:
			in.Error = extra + msg
			in.Notes = []string{note}
		case 2, 3:
			for i := range int(n) {
				in.Services = append(in.Services, ServiceSummary{Name: name, Strategy: path, From: file, To: msg, Provision: i, Notes: []string{note}})
			}
			in.PlanText = planText
			in.Notes = []string{note}
			if kind%4 == 3 {
				in.PlanMarkdown = extra
			}
		}
		body := PlanComment(in)
		if body != PlanComment(in) {
			t.Fatal("rendering is not deterministic")
		}
		if in.PlanMarkdown != "" {
			// Shown as it is: only the limit and the marker hold
			// whatever the caller's Markdown is.
			if len(body) > MaxCommentBody || !strings.HasPrefix(body, PlanMarker+"\n") {
				t.Fatalf("comment of %d bytes, marker %v", len(body), strings.HasPrefix(body, PlanMarker))
			}
			return
		}
		checkComment(t, body, PlanMarker, rev, sha, file, path, msg, name, note, planText, extra)
		if cut(body) {
			return
		}
		// Uncut, each issue is one list item and each service one row.
		items, rows := 0, 0
		for line := range strings.Lines(body) {
			switch {
			case strings.HasPrefix(line, "- "):
				items++
			case strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| service |"):
				rows++
				if cells := mdtest.TableCells(line); cells != 6 {
					t.Fatalf("row of %d cells, want 6: %q", cells, line)
				}
			}
		}
		if items != len(in.Issues) {
			t.Fatalf("%d issues rendered as %d list items:\n%s", len(in.Issues), items, mdtest.Clip(body))
		}
		if kind%4 == 2 && rows != len(in.Services) {
			t.Fatalf("%d services rendered as %d table rows:\n%s", len(in.Services), rows, mdtest.Clip(body))
		}
		if closed, _ := mdtest.FenceState(body); in.PlanText != "" && closed != 1 {
			t.Fatalf("raw plan in %d code blocks, want 1:\n%s", closed, mdtest.Clip(body))
		}
	})
}

func FuzzOutcomeComment(f *testing.F) {
	f.Add(uint8(1), uint16(2), prHeadSHA, "main@sha1:"+prHeadSHA, "web", "health check failed\ntwice", "sha256:abc", "")
	f.Add(uint8(2), uint16(4000), prHeadSHA, "", "w`e|b", "```", "", "pausing")
	f.Add(uint8(0), uint16(0), prHeadSHA, "", "", "", "", "")
	f.Fuzz(func(t *testing.T, kind uint8, n uint16, sha, rev, name, reason, hash, paused string) {
		n = min(n, 2000)
		in := Outcome{SHA: sha, Revision: rev, Repo: RepoRef{Owner: "o", Name: "r"}, Kind: []OutcomeKind{OutcomeSuccess, OutcomeFailure, OutcomePaused}[kind%3],
			Reason: reason, RevertsTo: hash, Revert: &Revert{Skipped: reason}}
		for i := range int(n) {
			in.Services = append(in.Services, ServiceOutcome{Name: name, From: hash, To: rev, Provisioned: i, Failed: reason, RolledBackTo: hash, Judged: paused, Paused: paused})
		}
		body := OutcomeComment(in)
		checkComment(t, body, OutcomeMarker(sha, in.Kind), sha, rev, name, reason, hash, paused)
		if cut(body) {
			return
		}
		rows := 0
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| service |") {
				rows++
				if cells := mdtest.TableCells(line); cells != 5 {
					t.Fatalf("row of %d cells, want 5: %q", cells, line)
				}
			}
		}
		if rows != len(in.Services) {
			t.Fatalf("%d services rendered as %d table rows:\n%s", len(in.Services), rows, mdtest.Clip(body))
		}
	})
}
