package github

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rogpeppe/go-internal/txtar"
	"pgregory.net/rapid"
)

// MOLT_UPDATE_GOLDEN=1 rewrites the want.md of testdata/comments/*.txtar.
var updateGolden = os.Getenv("MOLT_UPDATE_GOLDEN") == "1"

// TestCommentGolden renders input.json of each testdata/comments/*.txtar
// (plan_*: PlanComment, outcome_*: OutcomeComment) and compares the body
// with want.md.
func TestCommentGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "comments", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want := section(ar, "input.json"), section(ar, "want.md")
			if input == nil || want == nil {
				t.Fatal("want sections input.json and want.md")
			}
			var got string
			switch {
			case strings.HasPrefix(name, "plan_"):
				var in PlanInput
				decodeStrict(t, input.Data, &in)
				got = PlanComment(in)
			case strings.HasPrefix(name, "outcome_"):
				var in Outcome
				decodeStrict(t, input.Data, &in)
				got = OutcomeComment(in)
			default:
				t.Fatalf("name %s: want plan_ or outcome_", name)
			}
			if updateGolden {
				want.Data = []byte(got)
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(want.Data) {
				t.Errorf("body differs from want.md (MOLT_UPDATE_GOLDEN=1 rewrites it)\n--- got\n%s\n--- want\n%s", got, want.Data)
			}
		})
	}
}

func section(ar *txtar.Archive, name string) *txtar.File {
	for i := range ar.Files {
		if ar.Files[i].Name == name {
			return &ar.Files[i]
		}
	}
	return nil
}

func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("input.json: %v", err)
	}
}

func TestPlanCommentLinksIssues(t *testing.T) {
	const sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
	tests := []struct {
		name string
		repo RepoRef
		is   Issue
		want string
	}{
		{"github.com", RepoRef{Owner: "o", Name: "r"}, Issue{File: "services/web.cue", Line: 12, Column: 5, Message: "m"},
			"[`services/web.cue:12:5`](https://github.com/o/r/blob/" + sha + "/services/web.cue#L12): m"},
		{"enterprise", RepoRef{Owner: "o", Name: "r", WebURL: "https://ghe.example.com/"}, Issue{File: "a.cue", Line: 1, Column: 1, Message: "m"},
			"[`a.cue:1:1`](https://ghe.example.com/o/r/blob/" + sha + "/a.cue#L1): m"},
		{"whole file", RepoRef{Owner: "o", Name: "r"}, Issue{File: "dir/a b.cue", Message: "m"},
			"[`dir/a b.cue`](https://github.com/o/r/blob/" + sha + "/dir/a%20b.cue): m"},
		{"no file", RepoRef{Owner: "o", Name: "r"}, Issue{Path: "services.web", Message: "*bold* <b>"},
			"`services.web`: \\*bold\\* \\<b\\>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := PlanComment(PlanInput{PR: 1, SHA: sha, Repo: tt.repo, Issues: []Issue{tt.is}})
			if !strings.Contains(body, "\n- "+tt.want+"\n") {
				t.Errorf("body lacks the line %q:\n%s", tt.want, body)
			}
		})
	}
}

func TestPlanCommentCutToFit(t *testing.T) {
	const sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
	line := func(i int) string {
		return fmt.Sprintf("  + instance web-%05d of sha256:b7d42e1f0a9c (spec changed) ✓\n", i)
	}
	var raw, md strings.Builder
	for i := range 4000 {
		raw.WriteString(line(i))
	}
	md.WriteString("| service | + |\n|---|---|\n")
	for i := range 3000 {
		fmt.Fprintf(&md, "| web-%d | 1 |\n", i)
	}
	md.WriteString("\n```\nan open code block\n")
	for i := range 500 {
		md.WriteString(line(i))
	}
	md.WriteString("```\n")
	var issues []Issue
	for i := range 3000 {
		issues = append(issues, Issue{File: "services/web.cue", Line: i + 1, Column: 1, Message: strings.Repeat("wrong ", 5)})
	}

	tests := []struct {
		name string
		in   PlanInput
		keep []string // must survive the cut
	}{
		{"raw text cut", PlanInput{PlanMarkdown: "small plan\n", PlanText: raw.String()}, []string{"small plan", "<details>", "web-00000"}},
		{"markdown cut inside a code block", PlanInput{PlanMarkdown: md.String(), PlanText: raw.String()}, []string{"| web-0 | 1 |"}},
		{"issues cut", PlanInput{Issues: issues}, []string{"services/web.cue:1:1", "3000 issues"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.PR, tt.in.SHA = 1, sha
			body := PlanComment(tt.in)
			if len(body) > MaxCommentBody {
				t.Fatalf("body has %d bytes, over %d", len(body), MaxCommentBody)
			}
			if len(body) < MaxCommentBody*9/10 {
				t.Errorf("body has %d bytes: cut too much", len(body))
			}
			if !strings.HasPrefix(body, PlanMarker+"\n") || !utf8.ValidString(body) {
				t.Error("body lost its marker or is not UTF-8")
			}
			if !strings.Contains(body, "characters omitted; run `molt") {
				t.Errorf("no cut note at the end:\n%s", body[len(body)-300:])
			}
			if open := closeOpen(body); open != "" {
				t.Errorf("body leaves %q open", open)
			}
			for _, k := range tt.keep {
				if !strings.Contains(body, k) {
					t.Errorf("body lost %q", k)
				}
			}
		})
	}
}

func TestFitProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		line := rapid.OneOf(rapid.StringMatching("[a-zé`<>/ ]{0,60}"), rapid.SampledFrom([]string{"```", "````", "<details>", "</details>"}))
		text := rapid.Custom(func(t *rapid.T) string {
			lines := rapid.SliceOfN(line, 0, 200).Draw(t, "lines")
			if len(lines) == 0 {
				return ""
			}
			return strings.Join(lines, "\n") + "\n"
		})
		n := rapid.IntRange(1, 4).Draw(t, "parts")
		parts := make([]part, n)
		total := 0
		for i := range parts {
			parts[i] = part{head: "h\n", text: text.Draw(t, "text"), tail: "t\n", keep: i == 0}
			total += parts[i].size()
		}
		limit := rapid.IntRange(200, 8000).Draw(t, "limit")
		body := fit(append([]part(nil), parts...), limit, cutNote("see more"))
		if total <= limit {
			if body != join(parts) {
				t.Fatalf("a body that fits was changed")
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("body of %d bytes over the limit %d", len(body), limit)
		}
		if !strings.HasPrefix(body, "h\n") || !utf8.ValidString(body) {
			t.Fatalf("body lost its head or is not UTF-8: %q", body)
		}
		if !strings.Contains(body, "characters omitted") {
			t.Fatalf("no note: %q", body)
		}
	})
}

func TestOutcomeCommentMarker(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	for _, kind := range []OutcomeKind{OutcomeSuccess, OutcomeFailure, OutcomePaused} {
		body := OutcomeComment(Outcome{SHA: sha, Kind: kind})
		if !strings.HasPrefix(body, "<!-- molt:deploy:"+sha+":"+string(kind)+" -->\n") {
			t.Errorf("%s: body starts %q", kind, body[:60])
		}
	}
}

// TestOutcomeMarkerHoldsOnlyACommit: a sha that is not a commit id (a
// line feed, a code fence, "-->") is kept out of the hidden marker line,
// which stays one line, opens no code fence and hides nothing more; the
// comment of such a marker is refused. Found by FuzzOutcomeComment.
func TestOutcomeMarkerHoldsOnlyACommit(t *testing.T) {
	for _, sha := range []string{"\n```", "abcd --> **shown**", "", "abc", strings.Repeat("a", 65)} {
		body := OutcomeComment(Outcome{SHA: sha, Kind: OutcomeSuccess})
		first, _, _ := strings.Cut(body, "\n")
		if first != "<!-- molt:deploy:not-a-commit:success -->" {
			t.Errorf("sha %q: first line %q", sha, first)
		}
		if outcomeMarkerRE.MatchString(body) {
			t.Errorf("sha %q: the marker of a comment that is not a commit's is found as one", sha)
		}
	}
}

func TestCutText(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 140, "short"},
		{"abcdef", 4, "abc…"},
		{"ééééé", 3, "éé…"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := cutText(tt.in, tt.n); got != tt.want {
			t.Errorf("cutText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestPlanCommentVerdict(t *testing.T) {
	sha := strings.Repeat("1", 40)
	tests := []struct {
		name string
		in   PlanInput
		want string
	}{
		{"markdown only", PlanInput{PlanMarkdown: "plan"}, "✅ **Valid.**\n"},
		{"no change", PlanInput{Services: []ServiceSummary{{Name: "web", From: "h", To: "h"}}}, "**Valid. No change**"},
		{"one of two", PlanInput{Services: []ServiceSummary{{Name: "web", From: "h", To: "h"}, {Name: "api", To: "n", Provision: 1}}},
			"1 of 2 services changes, + 1 provision, − 0 retire."},
		{"error", PlanInput{Error: "target docker: connection refused", Notes: []string{"n"}}, "⚠️ **No plan**: target docker: connection refused\n\n> [!NOTE]\n> - n\n"},
	}
	for _, tt := range tests {
		tt.in.PR, tt.in.SHA = 1, sha
		if body := PlanComment(tt.in); !strings.Contains(body, tt.want) {
			t.Errorf("%s: body lacks %q:\n%s", tt.name, tt.want, body)
		}
	}
}
