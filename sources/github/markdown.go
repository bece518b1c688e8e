package github

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxCommentBody is GitHub's limit on the body of a comment, in
// characters. Rendered comments are cut to fit it, counting bytes (never
// fewer than characters), so they fit however GitHub counts.
const MaxCommentBody = 65536

// escapeMarkdown makes text from elsewhere (messages, reasons) render as
// written, not as Markdown or HTML.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '|', '#', '~':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// oneLine joins the lines of s with spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", "")), " ")
}

// code renders s as inline code, whatever backticks it holds.
func code(s string) string {
	s = oneLine(s)
	ticks := "`"
	for strings.Contains(s, ticks) {
		ticks += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return ticks + s + ticks
}

// cellCode is code for a cell of a table: GitHub splits the cells of a
// row on every pipe not escaped, inside code spans too (where "\|" shows
// as "|").
func cellCode(s string) string {
	return strings.ReplaceAll(code(s), "|", `\|`)
}

// fenced renders text as a fenced code block, with a fence longer than
// any run of backticks inside.
func fenced(text string) string {
	fence := "```"
	for strings.Contains(text, fence) {
		fence += "`"
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return fence + "\n" + text + fence + "\n"
}

// part is a piece of a comment for fit: head and tail are kept whole,
// text may be cut at a line boundary.
type part struct {
	head, text, tail string
	// keep: never drop the part whole (its head and tail stay even when
	// all of its text goes).
	keep bool
}

func (p part) size() int { return len(p.head) + len(p.text) + len(p.tail) }

// minKept is the least text worth keeping of a part that is cut; less,
// and the part is dropped (or emptied, when kept).
const minKept = 1024

// fit joins parts into a body of at most limit bytes. When they do not
// fit, text is cut from the last parts first, at line boundaries, with
// open code fences and <details> closed, and note(n) (n: the characters
// left out) is appended.
func fit(parts []part, limit int, note func(omitted int) string) string {
	total := 0
	for _, p := range parts {
		total += p.size()
	}
	if total <= limit {
		return join(parts)
	}
	budget := limit - len(note(1<<40))
	omitted := 0
	for i := len(parts) - 1; i >= 0 && total > budget; i-- {
		p := &parts[i]
		excess := total - budget
		if len(p.text)-excess < minKept {
			omitted += utf8.RuneCountInString(p.text)
			total -= len(p.text)
			p.text = ""
			if !p.keep {
				total -= len(p.head) + len(p.tail)
				p.head, p.tail = "", ""
			}
			continue
		}
		kept := cutLines(p.text, len(p.text)-excess-closersMax)
		kept += closeOpen(p.head + kept)
		omitted += utf8.RuneCountInString(p.text) - utf8.RuneCountInString(kept)
		total += len(kept) - len(p.text)
		p.text = kept
	}
	body := join(parts)
	if len(body)+len(note(omitted)) > limit {
		// Only when the heads kept whole are too large alone: they are cut
		// too, as text is, so that the note still says so.
		kept := cutLines(body, limit-len(note(1<<40))-closersMax-1)
		kept += closeOpen(kept)
		omitted += utf8.RuneCountInString(body) - utf8.RuneCountInString(kept)
		body = kept
	}
	return body + note(omitted)
}

// closersMax bounds what closeOpen can add.
const closersMax = 64

func join(parts []part) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.head)
		b.WriteString(p.text)
		b.WriteString(p.tail)
	}
	return b.String()
}

// cutLines keeps the longest prefix of s that ends a line and has at
// most max bytes.
func cutLines(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max {
		return s
	}
	if i := strings.LastIndexByte(s[:max], '\n'); i >= 0 {
		return s[:i+1]
	}
	return cutBytes(s, max) + "\n"
}

// cutBytes cuts s to at most max bytes at a character boundary.
func cutBytes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// closeOpen returns what closes the code fence and the <details> left
// open at the end of s.
func closeOpen(s string) string {
	var fence string // the open fence, "" outside one
	details := 0
	for line := range strings.Lines(s) {
		t := strings.TrimSpace(line)
		switch {
		case fence != "":
			if strings.HasPrefix(t, fence) && strings.Trim(t, "`~") == "" {
				fence = ""
			}
		case strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"):
			fence = t[:len(t)-len(strings.TrimLeft(t, string(t[0])))]
		default:
			details += strings.Count(t, "<details") - strings.Count(t, "</details>")
		}
	}
	var b strings.Builder
	if fence != "" {
		b.WriteString(fence + "\n")
	}
	for details = min(details, 3); details > 0; details-- {
		b.WriteString("\n</details>\n")
	}
	return b.String()
}

// cutNote is the note that says a comment was cut, and where to see the
// whole of it.
func cutNote(whole string) func(int) string {
	return func(n int) string {
		return fmt.Sprintf("\n> [!NOTE]\n> … cut: %d characters omitted; %s.\n", n, whole)
	}
}
