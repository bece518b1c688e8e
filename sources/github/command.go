package github

import (
	"regexp"
	"strings"
)

// The actions of a /molt command.
const (
	CommandPromote = "promote"
	CommandAbort   = "abort"
)

// Command is a /molt command written as the first line of a comment on a
// pull request: "/molt promote [SERVICE]" or "/molt abort [SERVICE]".
// The package only reads it; who may give it, and what it does, is for
// the callback to decide.
type Command struct {
	Action  string // CommandPromote or CommandAbort
	Service string // "" when none is named
}

// String writes the command as it is typed, e.g. "/molt promote web".
func (c Command) String() string {
	if c.Service == "" {
		return "/molt " + c.Action
	}
	return "/molt " + c.Action + " " + c.Service
}

// serviceName is the schema's pattern of a service name (#NamePattern).
var serviceName = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ParseCommand reads the /molt command of a comment's first line (blank
// lines and surrounding white space aside). The words are exact:
// "/molt", then "promote" or "abort", then at most a service name. Any
// other first line, a third word that is no service name, or a fourth
// word is no command.
func ParseCommand(body string) (Command, bool) {
	line, _, _ := strings.Cut(strings.TrimLeft(body, " \t\r\n"), "\n")
	words := strings.Fields(line)
	if len(words) < 2 || len(words) > 3 || words[0] != "/molt" {
		return Command{}, false
	}
	if words[1] != CommandPromote && words[1] != CommandAbort {
		return Command{}, false
	}
	c := Command{Action: words[1]}
	if len(words) == 3 {
		if !serviceName.MatchString(words[2]) {
			return Command{}, false
		}
		c.Service = words[2]
	}
	return c, true
}
