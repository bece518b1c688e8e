package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/molt-dev/molt/schema"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Output conventions shared by the commands:
//
//   - -o json writes one JSON document on stdout, also when the command
//     fails: {"error": {"message", "exitCode", "issues"}} (see jsonError);
//     logs stay on stderr.
//   - progress and colour only on a terminal (golang.org/x/term), and no
//     colour when NO_COLOR is set to anything.
//   - a usage error (unknown command, extra arguments, a bad flag or flag
//     value) exits 64.

// isTerminal reports whether v is a terminal: an *os.File whose descriptor
// is a tty. /dev/null is a character device but not a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// colour reports whether output to w may use ANSI colours and styles.
func colour(w any) bool {
	return isTerminal(w) && os.Getenv("NO_COLOR") == ""
}

// parseLevel validates a --log-level value.
func parseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return 0, &usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	return l, nil
}

// outputFlag registers -o/--output with the formats a command offers; the
// first is the default.
func outputFlag(cmd *cobra.Command, output *string, formats ...string) {
	cmd.Flags().StringVarP(output, "output", "o", formats[0], strings.Join(formats, ", ")+" (json: one document on stdout, errors included)")
}

// checkOutput returns a usage error when output is not one of formats.
func checkOutput(output string, formats ...string) error {
	for _, f := range formats {
		if output == f {
			return nil
		}
	}
	return &usageError{fmt.Errorf("unknown output %q: want %s", output, strings.Join(formats, " or "))}
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// invalidFleet is an invalid fleet: its issues, printed one per line as
// FILE:LINE:COL: message on stderr, or as "issues" in a JSON error.
type invalidFleet struct {
	where  string // "invalid fleet" or a directory or commit
	issues []schema.Issue
}

func (e *invalidFleet) Error() string {
	return fmt.Sprintf("%s: %d error(s)", e.where, len(e.issues))
}

// jsonIssue is an issue of an invalid fleet in JSON output.
type jsonIssue struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func jsonIssues(issues []schema.Issue) []jsonIssue {
	out := make([]jsonIssue, 0, len(issues))
	for _, is := range issues {
		out = append(out, jsonIssue{File: is.File, Line: is.Line, Column: is.Column, Path: is.Path, Message: is.Message})
	}
	return out
}

// jsonError is the document -o json writes when a command fails.
type jsonError struct {
	Error struct {
		Message  string      `json:"message"`
		ExitCode int         `json:"exitCode"`
		Issues   []jsonIssue `json:"issues,omitempty"`
	} `json:"error"`
}

// report prints err for the exit status code: as a JSON document on
// stdout when asJSON, else as "molt: message" on stderr (an invalid
// fleet's issues first, one per line).
func report(stdout, stderr io.Writer, err error, code int, asJSON bool) {
	var inv *invalidFleet
	hasInv := errors.As(err, &inv)
	if asJSON {
		var doc jsonError
		doc.Error.Message, doc.Error.ExitCode = err.Error(), code
		if hasInv {
			doc.Error.Issues = jsonIssues(inv.issues)
		}
		_ = writeJSON(stdout, doc)
		return
	}
	if hasInv {
		for _, is := range inv.issues {
			fmt.Fprintln(stderr, is.String())
		}
	}
	fmt.Fprintf(stderr, "molt: %v\n", err)
}
