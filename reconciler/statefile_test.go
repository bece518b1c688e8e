package reconciler

import (
	"os"
	"path/filepath"
	"testing"
)

// A record that cannot be read is moved aside and started afresh; it
// never stops a reconcile.
func TestUnreadableRecordsMovedAside(t *testing.T) {
	for _, c := range []struct{ file, body string }{
		{"revisions.json", "{not json"},
		{"revisions.json", `{"format": 99, "fleets": {}}`},
		{"decisions.json", ""},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, c.file)
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if c.file == "revisions.json" {
			r := NewRevisions(dir, nil)
			if g, err := r.Good("shop"); err != nil || len(g) != 0 {
				t.Fatalf("%s %q: Good = %v, %v", c.file, c.body, g, err)
			}
			if err := r.RecordGood("shop", "web", Good{Revision: "r1"}); err != nil {
				t.Fatal(err)
			}
			if g, _ := r.Good("shop"); g["web"].Revision != "r1" {
				t.Fatalf("the fresh record does not keep what is written: %v", g)
			}
		} else {
			d := NewDecisions(dir, nil)
			if ds, err := d.For("shop"); err != nil || len(ds) != 0 {
				t.Fatalf("%s: For = %v, %v", c.file, ds, err)
			}
		}
		if aside, _ := filepath.Glob(path + ".unreadable-*"); len(aside) != 1 {
			t.Errorf("%s %q: moved aside as %v, want one file", c.file, c.body, aside)
		}
	}
}
