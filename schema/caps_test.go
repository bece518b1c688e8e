package schema

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// TestLoadCaps: a snapshot past a cap is refused before anything is
// evaluated, with the setting that changes the cap named.
func TestLoadCaps(t *testing.T) {
	names := LimitNames{MaxFiles: "--files", MaxDepth: "--depth", MaxFileBytes: "--file", MaxTotalBytes: "--total"}
	many := fstest.MapFS{}
	for i := range 20 {
		many[fmt.Sprintf("f%02d.cue", i)] = &fstest.MapFile{Data: []byte("package fleet\n")}
	}
	deep := fstest.MapFS{
		"cue.mod/module.cue":              {Data: []byte("module: \"example.com/f\"\nlanguage: version: \"v0.12.0\"\n")},
		"fleet.cue":                       {Data: []byte("package fleet\n")},
		strings.Repeat("d/", 5) + "x.cue": {Data: []byte("package x\n")},
	}
	tests := []struct {
		name   string
		fsys   fstest.MapFS
		loader Loader
		want   []string
	}{
		{"files", many, Loader{MaxFiles: 10, Names: names}, []string{"f10.cue: more CUE files than the limit of 10 (limit --files)"}},
		{"depth", deep, Loader{MaxDepth: 3, Names: names}, []string{"d/d/d/d: directories are nested deeper than the limit of 3 levels (limit --depth)"}},
		{"depth within", deep, Loader{MaxDepth: 5, Names: names}, nil},
		{"file", fstest.MapFS{"fleet.cue": {Data: []byte("package fleet\n// " + strings.Repeat("x", 100) + "\n")}}, Loader{MaxFileBytes: 64, Names: names},
			[]string{"fleet.cue: file is larger than the limit of 64 bytes (limit --file)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.loader.Load(tt.fsys, ".")
			if tt.want == nil {
				// Within the cap: whatever CUE says, the cap said nothing.
				if err != nil && strings.Contains(err.Error(), "limit") {
					t.Fatalf("refused within the cap: %v", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, issueStrings(t, err)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadRefusesInvalidUTF8: a file that is not UTF-8 is refused at the
// first bad byte, before CUE reads it (CUE itself would take it into a
// string).
func TestLoadRefusesInvalidUTF8(t *testing.T) {
	fsys := fstest.MapFS{
		"fleet.cue": {Data: []byte("package fleet\n\nname: \"caf\xe9\"\n")},
		"ok.cue":    {Data: []byte("package fleet\n\n// caf\u00e9 \ufffd\n")},
	}
	_, err := Load(fsys, ".")
	want := []string{"fleet.cue:3:11: invalid UTF-8: a CUE file is UTF-8 text"}
	if diff := cmp.Diff(want, issueStrings(t, err)); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
}

// TestLoadRefusesEmbed: @extern(embed) is refused with its position, in a
// module (where CUE would embed the snapshot's files) and outside one, in
// the fleet and in a package it imports.
func TestLoadRefusesEmbed(t *testing.T) {
	module := "-- cue.mod/module.cue --\nmodule: \"example.com/f\"\nlanguage: version: \"v0.12.0\"\n"
	tests := []struct {
		name, archive string
		want          []string
	}{{
		name: "outside a module",
		archive: `
-- fleet.cue --
@extern(embed)

package fleet

services: _ @embed(file="services.json")
-- services.json --
{}
`,
		want: []string{"fleet.cue:1:1: @extern(embed) is refused: a fleet is its CUE files, nothing is embedded or read from outside them"},
	}, {
		name: "in a module",
		archive: module + `
-- fleet.cue --
@extern(embed)

package fleet

notes: _ @embed(file="other.cue", type=text)
-- other.cue --
package fleet
`,
		want: []string{"fleet.cue:1:1: @extern(embed) is refused: a fleet is its CUE files, nothing is embedded or read from outside them"},
	}, {
		name: "in an imported package",
		archive: module + `
-- fleet.cue --
package fleet

import "example.com/f/lib"

name: lib.name
-- lib/lib.cue --
@extern(embed)

package lib

name: "x"
`,
		want: []string{"lib/lib.cue:1:1: @extern(embed) is refused: a fleet is its CUE files, nothing is embedded or read from outside them"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(archiveFS(t, tt.archive), ".")
			if diff := cmp.Diff(tt.want, issueStrings(t, err)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}
