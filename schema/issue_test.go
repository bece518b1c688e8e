package schema

import (
	"errors"
	"fmt"
	"github.com/molt-dev/molt/schema/schematest"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestIssueString(t *testing.T) {
	tests := []struct {
		is   Issue
		want string
	}{
		{Issue{File: "a.cue", Line: 3, Column: 7, Path: "services.web", Message: "bad"}, "a.cue:3:7: services.web: bad"},
		{Issue{File: "a.cue", Line: 3, Column: 7, Message: "bad"}, "a.cue:3:7: bad"},
		{Issue{File: "big.cue", Message: "too large"}, "big.cue: too large"},
		{Issue{Path: "name", Message: "bad"}, "name: bad"},
		{Issue{Message: "no CUE files in ."}, "no CUE files in ."},
	}
	for _, tt := range tests {
		if got := tt.is.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.is, got, tt.want)
		}
	}
}

func TestInvalidSortsAndDeduplicates(t *testing.T) {
	b2 := Issue{File: "b.cue", Line: 2, Column: 1, Message: "x"}
	err := invalid([]Issue{
		b2,
		{File: "b.cue", Line: 10, Column: 1, Message: "x"},
		{File: "a.cue", Line: 9, Column: 9, Message: "z"},
		{File: "b.cue", Line: 2, Column: 1, Message: "a"},
		b2,
		{Message: "whole snapshot"},
	})
	var inv *InvalidError
	if !errors.As(fmt.Errorf("load: %w", err), &inv) {
		t.Fatalf("wrapped error %v is not an *InvalidError", err)
	}
	want := "whole snapshot\na.cue:9:9: z\nb.cue:2:1: a\nb.cue:2:1: x\nb.cue:10:1: x"
	if diff := cmp.Diff(want, inv.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}
	if invalid(nil) != nil {
		t.Error("invalid(nil) is not nil")
	}
}

// TestLoadConcurrent loads fleets from many goroutines at once: the
// compiled schema is shared (run with -race).
func TestLoadConcurrent(t *testing.T) {
	good := fstest.MapFS{"fleet.cue": {Data: schematest.GeneratedFleet(5)}}
	bad := fstest.MapFS{"fleet.cue": {Data: []byte("package fleet\n\nservices: web: replicas: -1\n")}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				if _, err := Load(good, "."); err != nil {
					t.Errorf("Load good: %v", err)
				}
				return
			}
			var inv *InvalidError
			if _, err := Load(bad, "."); !errors.As(err, &inv) {
				t.Errorf("Load bad = %v, want *InvalidError", err)
			}
		})
	}
	wg.Wait()
}
