package main

import (
	"bytes"
	"testing"

	"github.com/molt-dev/molt/reconciler"
)

// The terminal progress prints one line per service whenever its state
// changes, and nothing when it does not.
func TestProgressPrintsChanges(t *testing.T) {
	var out bytes.Buffer
	p := progress(&env{stdout: &out})
	rolling := reconciler.Plan{Services: []reconciler.ServicePlan{{
		Service: "web", Provision: 2, Retire: 2, Waiting: "1/3 instances of 1a2b3c4d healthy",
	}}}
	p(rolling)
	p(rolling)
	p(reconciler.Plan{Services: []reconciler.ServicePlan{{Service: "web", Failed: "instance web-1 exited"}}})
	p(reconciler.Plan{Services: []reconciler.ServicePlan{{Service: "web"}}})
	want := "web: 2 to provision, 2 to retire; waiting: 1/3 instances of 1a2b3c4d healthy\n" +
		"web: failed (instance web-1 exited), rolling back\n" +
		"web: converged\n"
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}
