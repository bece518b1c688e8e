package schema

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Issue is one reason why a snapshot is not a valid fleet.
type Issue struct {
	// File is relative to the root of the snapshot (the fs.FS given to
	// Load), with forward slashes. It is empty when the issue concerns no
	// single file.
	File string
	// Line and Column are 1-based; both are zero when the issue concerns
	// the whole file.
	Line, Column int
	// Path is the CUE path of the offending value, such as
	// "services.web.replicas"; empty when there is none.
	Path string
	// Message says what is wrong, without the position or the path.
	Message string
}

// String formats the issue as "file:line:col: path: message", leaving out
// the parts that are empty.
func (i Issue) String() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		if i.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", i.Line, i.Column)
		}
		b.WriteString(": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Message)
	return b.String()
}

func compareIssues(a, b Issue) int {
	return cmp.Or(
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Column, b.Column),
		cmp.Compare(a.Message, b.Message),
		cmp.Compare(a.Path, b.Path),
	)
}

// InvalidError reports that a snapshot is not a valid fleet: the desired
// state is wrong and only a change to it can fix it, so retrying the same
// snapshot is pointless. Find it with errors.As.
type InvalidError struct {
	// Issues are sorted by file, line, column and message, without
	// duplicates.
	Issues []Issue
}

// Error lists the issues, one per line.
func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// invalid returns an *InvalidError holding issues sorted and de-duplicated,
// or nil when there are none.
func invalid(issues []Issue) error {
	if len(issues) == 0 {
		return nil
	}
	issues = slices.Clone(issues)
	slices.SortFunc(issues, compareIssues)
	issues = slices.Compact(issues)
	return &InvalidError{Issues: issues}
}
