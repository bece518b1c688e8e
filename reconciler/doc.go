// Package reconciler decides and carries out what it takes to move the live
// fleet to the desired state.
//
// The vocabulary:
//
//   - instance: one process or container, created once and never modified.
//   - spec hash: the identity of an instance's definition (schema.Service.SpecHash).
//   - generation: the instances of one service that share a spec hash.
//   - active generation: the one in traffic; previous generation: the one
//     that left traffic at the last switch and is kept warm, out of
//     traffic, for rollout.keepPrevious so that a revert is an instant
//     switch back.
//   - plan: the value Plan returns; a step is what one pass of the executor
//     carries out (route change, drain, retires, provisions).
//
// Plan is pure: it takes the desired state, the observed instances (with
// their health) and the observed traffic table, and the current time, and
// returns a value. The Executor gathers that input, calls Plan, carries out
// the first step, and plans again, so the reconciler holds no state that it
// cannot rebuild from Git and the live fleet: it can be killed at any moment
// and picks up where it was.
//
// The package deliberately does no rendering of its own beyond the plan's
// text, Markdown and JSON forms, and knows nothing of Git or GitHub.
package reconciler
