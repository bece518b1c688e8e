package schema

import (
	"fmt"
	"testing"

	"cuelang.org/go/cue"
	"pgregory.net/rapid"
)

// TestMayClash checks that the quick test listenClashes starts with
// answers exactly whether the full check finds a clash: listenClashes
// skips its ordering only when nothing would be reported.
func TestMayClash(t *testing.T) {
	hosts := []string{"", "0.0.0.0", "127.0.0.1", "127.0.0.2", "::", "[::1]", "bad"}
	ports := []string{"80", "81"}
	rapid.Check(t, func(t *rapid.T) {
		f := &Fleet{Services: map[string]*Service{}}
		n := rapid.IntRange(0, 6).Draw(t, "services")
		for i := range n {
			s := &Service{Name: fmt.Sprintf("s%d", i)}
			switch rapid.IntRange(0, 3).Draw(t, "front") {
			case 0: // not exposed
			case 1:
				h := rapid.SampledFrom(hosts).Draw(t, "host")
				listen := h + ":" + rapid.SampledFrom(ports).Draw(t, "port")
				if h == "bad" {
					listen = "no-port"
				}
				s.Expose = &Expose{Listen: listen}
			case 2:
				s.Expose = &Expose{HAProxy: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "backend")}
			case 3:
				s.Expose = &Expose{Listen: ":80", HAProxy: "a"}
			}
			f.Services[s.Name] = s
		}
		c := &checker{data: cue.Value{}}
		want := mayClash(f)
		c.listenClashesOrdered(f)
		if got := len(c.issues) > 0; got != want {
			t.Fatalf("mayClash = %v, but the ordered check reported %v", want, c.issues)
		}
	})
}
