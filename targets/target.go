// Package targets defines where instances live: the Target interface, the
// labels molt writes on every instance, and a conformance suite that every
// implementation must pass (see targetstest).
//
// A Target has no update operation, on purpose: an instance is provisioned
// once, never modified, and retired at the end.
package targets

import (
	"context"
	"errors"
	"time"

	"github.com/molt-dev/molt/schema"
)

// Labels are written on every instance molt provisions. They are how molt
// reads the live fleet back after a restart; an instance without them is
// never listed, and so never touched.
type Labels struct {
	Fleet     string    `json:"fleet"`
	Service   string    `json:"service"`
	SpecHash  string    `json:"specHash"`
	Revision  string    `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
}

// State is what the target knows of an instance's life.
type State string

const (
	// Running: the process or container is alive.
	Running State = "running"
	// Dead: it exited, or vanished behind molt's back. A dead instance is
	// still listed until it is retired, so that molt can replace it.
	Dead State = "dead"
)

// Instance is one process or container as a target reports it.
type Instance struct {
	ID     string
	Labels Labels
	State  State
	// Endpoints maps each port name of the service to an address molt and
	// the router can reach, such as "127.0.0.1:40123".
	Endpoints map[string]string
	// Detail is a short human-readable note (exit status, engine, ...).
	Detail string
	// Engine names the engine (host) the instance runs on, for targets
	// that run instances in several places (see Engine); "" otherwise.
	Engine string
}

// Spec is what a Provision needs: the labels to write and the service to run.
// Service is shared and must not be modified.
type Spec struct {
	Labels  Labels
	Service *schema.Service
	// Resolved holds what a Resolver resolved for this spec (such as the
	// content id a Docker image tag resolved to); the instance must be made
	// from exactly that. Nil for targets that resolve nothing.
	Resolved map[string]string
	// SecretEnv holds the value of every secret of Service.SecretEnv, read
	// on molt's host by the executor just before Provision. The target
	// adds them to the instance's environment and must never record,
	// label, log or return them (see SecretValues).
	SecretEnv SecretValues
	// Engine names the engine the planner placed the instance on (see
	// Engine); "" lets the target choose.
	Engine string
}

// Target is where instances live.
type Target interface {
	// List returns every instance carrying molt's labels, of any fleet, dead
	// ones included. It changes no instance; a target may use it to bring
	// its own cache up to date with the machine (the process target writes
	// back the records of instances it found only in /proc, and sweeps up
	// what a crash left half-made).
	List(ctx context.Context) ([]Instance, error)
	// Provision creates and starts one new instance. It returns once the
	// instance has started (not once it is healthy). On error nothing is
	// left behind.
	Provision(ctx context.Context, spec Spec) (Instance, error)
	// Retire stops the instance (gracefully, then by force after the
	// service's stop grace) and removes every trace of it. Retiring an
	// instance that is already gone returns nil.
	Retire(ctx context.Context, id string) error
}

// ErrInvalidSpec wraps errors that no retry can fix: the spec asks for
// something the target cannot do (wrong kind of service, a digest mismatch).
var ErrInvalidSpec = errors.New("invalid instance spec")

// Resolver is implemented by targets whose instance identity depends on
// facts resolved when the plan is made, such as the content id that a Docker
// image tag points to. The executor mixes the result into the spec hash
// (schema.Service.SpecHash) and hands it to Provision in Spec.Resolved, so a
// tag moved under molt's feet produces a replacement, never a silently
// different instance. An error means nothing can be provisioned.
type Resolver interface {
	Resolve(ctx context.Context, svc *schema.Service) (map[string]string, error)
}

// DriftInspector is implemented by targets that can tell an instance that
// changed after it was created (a container whose file system or
// configuration no longer matches its labels). Drift returns "" when the
// instance is as it was made, else what changed. Drifted instances are
// replaced.
type DriftInspector interface {
	Drift(ctx context.Context, inst Instance) (string, error)
}

// LogReader is implemented by targets that keep their instances' output
// (stdout and stderr), for a bounded time after an instance is retired too,
// so that the log of a failed canary can still be read. The reconciler
// never uses it: it is for the people operating the fleet (molt logs).
type LogReader interface {
	// LogInstances returns the instances whose logs the target holds: the
	// live ones (as List sees them) and the retired ones whose logs are
	// still kept (Retired set). It has no side effects.
	LogInstances(ctx context.Context) ([]LogInstance, error)
	// Logs calls emit with each line of the log of instance id, oldest
	// first, as opts select. Without opts.Follow it returns once the lines
	// kept so far are out; with it, it waits for more until ctx ends (then
	// it returns nil) or the instance is gone. An error from emit stops it
	// and is returned. An id whose log the target does not hold is an
	// error matching ErrNoLog.
	Logs(ctx context.Context, id string, opts LogOptions, emit func(LogLine) error) error
}

// ErrNoLog says that a target holds no log for an instance id.
var ErrNoLog = errors.New("no log kept for this instance")

// LogInstance is an instance whose log a target holds.
type LogInstance struct {
	ID     string
	Labels Labels
	// Retired is when the instance was retired; zero while it lives.
	// Expires is when its kept log goes (zero while it lives).
	Retired, Expires time.Time
}

// LogOptions select the lines of a log.
type LogOptions struct {
	// Since keeps the lines written at or after it; zero keeps all. A
	// target that does not time each line documents its granularity.
	Since time.Time
	// Tail keeps only the last Tail lines (of those Since keeps); zero
	// or less keeps all.
	Tail int
	// Follow waits for new lines (see LogReader.Logs).
	Follow bool
}

// LogLine is one line of an instance's output, without its newline.
type LogLine struct {
	// Time is when the line was written, zero when the target does not
	// know it.
	Time time.Time
	Text string
}
