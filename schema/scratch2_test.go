package schema

import (
	"fmt"
	"testing"

	"cuelang.org/go/cue"
)

func TestScratch2(t *testing.T) {
	def, _ := fleetDef()
	s := def.LookupPath(cue.MakePath(cue.Str("services"), cue.AnyString))
	fmt.Println(s.Exists(), s.Err())
	fmt.Println(s.Allows(cue.Str("replicaz")), s.Allows(cue.Str("replicas")), s.Allows(cue.Str("docker")))
	h := s.LookupPath(cue.ParsePath("health"))
	fmt.Println(h.Exists(), h.Allows(cue.Str("intervall")), h.Allows(cue.Str("interval")), h.Allows(cue.Str("tcp")))
	w := def.LookupPath(cue.MakePath(cue.Str("deployWindows"), cue.AnyIndex))
	fmt.Println(w.Exists(), w.Allows(cue.Str("kind")), w.Allows(cue.Str("kinds")))
	e := s.LookupPath(cue.MakePath(cue.Str("env")))
	fmt.Println(e.Exists(), e.Allows(cue.Str("FOO")), e.Allows(cue.Str("1A")))
	r := s.LookupPath(cue.MakePath(cue.Str("rollout"), cue.Str("canary")))
	fmt.Println(r.Exists(), r.Allows(cue.Str("count")), r.Allows(cue.Str("x")))
	fmt.Println(def.Allows(cue.Str("#Foo")), def.Allows(cue.Def("#Foo")), def.Allows(cue.Hid("_x", "_")))
}
