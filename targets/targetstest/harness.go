// Package targetstest is the conformance suite that every targets.Target
// implementation must pass: provision, list, retire, labels, endpoints,
// instances dying behind molt's back, restarts of molt, things molt did
// not create, cancellation and concurrency. It runs real instances of the
// hello demo app (testdata/apps/hello) and talks HTTP to them.
//
// An implementation's test supplies a Factory; the suite calls it once per
// subtest, so every subtest starts from an empty target. The suite only
// looks at instances of the fleet it provisions into (a fresh name per
// subtest), so a shared engine with other instances on it (a Docker daemon)
// does not disturb it.
//
// The suite deliberately does not test what is specific to one target
// (digests, process groups, images, PID reuse): those tests live with the
// implementation.
package targetstest

import (
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Factory returns a fresh Harness over empty state. It registers with
// t.Cleanup whatever it must release (closing the Target, removing state);
// the suite retires the instances it provisioned itself.
type Factory func(t *testing.T) Harness

// Harness is what the suite needs of one target under test.
type Harness struct {
	// Target is the target under test.
	Target targets.Target

	// Service returns a new service of the kind Target runs (process or
	// docker) that runs the hello demo app with a port named "http", has
	// every variable of env in its Env, and a stop grace of a few seconds.
	// Its Name is used as the service label ("hello" when empty). Required.
	Service func(t *testing.T, env map[string]string) *schema.Service

	// Kill ends the instance behind the target's back, as a crash or an
	// operator would (SIGKILL to its process, docker kill), and leaves
	// whatever the target recorded of it in place. Required.
	Kill func(t *testing.T, inst targets.Instance)

	// Reopen returns a new Target value over the same state as Target, as
	// molt would build after a restart. Nil skips the restart test.
	Reopen func(t *testing.T) targets.Target

	// Foreign makes, for each name, something in the target's domain that
	// molt did not provision (a directory without a record, a process or
	// container without molt's labels). It returns an id under which the
	// suite asks Retire to remove it (Retire may return nil or an error,
	// but must not touch it), and a check that fails t if it has been
	// touched. Each runs as a subtest of "Foreign".
	Foreign map[string]func(t *testing.T) (id string, untouched func(t *testing.T))

	// Timeout bounds every wait of the suite: for an instance to answer,
	// to be seen dead, to stop answering. Zero means 15 seconds.
	Timeout time.Duration
}

func (h *Harness) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 15 * time.Second
}
