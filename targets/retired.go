package targets

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RetiredLogFile is the record kept beside the log of a retired instance,
// in the directory a target keeps it in.
const RetiredLogFile = "retired.json"

// RetiredLog is the content of RetiredLogFile.
type RetiredLog struct {
	ID      string    `json:"id"`
	Labels  Labels    `json:"labels"`
	Retired time.Time `json:"retired"`
	Expires time.Time `json:"expires"`
}

// ReadRetiredLog reads the record in dir, which dirOf(record's id) must
// name: a record that names another instance is refused.
func ReadRetiredLog(dir string, dirOf func(id string) string) (RetiredLog, error) {
	var rr RetiredLog
	b, err := os.ReadFile(filepath.Join(dir, RetiredLogFile))
	if err != nil {
		return rr, err
	}
	if err := json.Unmarshal(b, &rr); err != nil {
		return rr, err
	}
	if dirOf(rr.ID) != dir {
		return rr, fmt.Errorf("%s names %q", RetiredLogFile, rr.ID)
	}
	return rr, nil
}

// RetiredLogs reads the records of the directories under base (hidden
// ones, moves in progress, left out), newest retire first, expired ones
// included; what cannot be read is skipped.
func RetiredLogs(base string, dirOf func(id string) string) []RetiredLog {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []RetiredLog
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if rr, err := ReadRetiredLog(filepath.Join(base, e.Name()), dirOf); err == nil {
			out = append(out, rr)
		}
	}
	slices.SortFunc(out, func(a, b RetiredLog) int { return b.Retired.Compare(a.Retired) })
	return out
}
