package main

import "testing"

// One repository and path is one source, however it is spelled.
func TestFleetSource(t *testing.T) {
	same := [][2]string{{"/r", "."}, {"file:///r", ""}, {"/r/", "./"}, {"file:///r/", "/"}}
	want := fleetSource(same[0][0], same[0][1])
	for _, s := range same[1:] {
		if got := fleetSource(s[0], s[1]); got != want {
			t.Errorf("fleetSource(%q, %q) = %q, want %q", s[0], s[1], got, want)
		}
	}
	if fleetSource("/r", "a") == fleetSource("/r", "b") || fleetSource("/r", "a") == want {
		t.Error("different paths of one repository are one source")
	}
	if fleetSource("https://h/o/r.git", "") == fleetSource("https://h/o/s.git", "") {
		t.Error("different repositories are one source")
	}
}
