// Package mdtest reads Markdown the way GitHub renders it, for the tests
// of what molt writes into pull-request comments and plans: fenced code
// blocks, table rows, and a short form of a rendering for failure
// messages. It is written apart from the renderers it checks.
package mdtest

import (
	"strings"
	"unicode/utf8"
)

// FenceState scans Markdown as CommonMark reads fenced code blocks (a
// line of at most three spaces, then three or more backticks or tildes;
// closed by a line of at least as many of the same character and
// nothing else) and returns how many blocks were closed and whether one
// is left open at the end.
func FenceState(md string) (closed int, open bool) {
	var char byte
	n := 0 // length of the open fence; 0 outside one
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimLeft(line, " ")
		if len(line)-len(trimmed) > 3 || trimmed == "" {
			continue
		}
		c := trimmed[0]
		if c != '`' && c != '~' {
			continue
		}
		run := len(trimmed) - len(strings.TrimLeft(trimmed, string(c)))
		rest := trimmed[run:]
		switch {
		case n == 0 && run >= 3 && (c == '~' || !strings.Contains(rest, "`")):
			char, n = c, run
		case n > 0 && c == char && run >= n && strings.TrimSpace(rest) == "":
			closed++
			n = 0
		}
	}
	return closed, n > 0
}

// TableCells counts the cells of a table row as GitHub splits it: on
// every pipe that no backslash precedes (inside code spans too), less
// the row's first.
func TableCells(row string) int {
	n := 0
	for i := 0; i < len(row); i++ {
		if row[i] == '|' && (i == 0 || row[i-1] != '\\') {
			n++
		}
	}
	return n - 1
}

// AllValid reports whether every string is valid UTF-8: only then must a
// rendering of them be.
func AllValid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// Clip shortens a rendering for a failure message.
func Clip(s string) string {
	const max = 1500
	if len(s) > max {
		return s[:max/2] + "\n[…]\n" + s[len(s)-max/2:]
	}
	return s
}
