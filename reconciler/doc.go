// Package reconciler decides and carries out what it takes to move the live
// fleet to the desired state.
//
// The vocabulary:
//
//   - instance: one process or container, created once and never modified.
//   - spec hash: the identity of an instance's definition, including the
//     artifact digest the target resolved and the keyed digests of the
//     service's secrets (schema.Service.SpecHash, Secrets).
//   - secret: a value of a service's secretEnv, read on molt's host at
//     plan time (for the hash) and again when an instance is provisioned
//     (for its environment, refused when it no longer matches the hash);
//     never written, logged or printed. The plan says which secret changed
//     (ServicePlan.Why), never its value.
//   - generation: the instances of one service that share a spec hash.
//   - the classes of an instance, decided once per plan (see class):
//     desired (of the generation the service should run), serving (of the
//     generation in traffic, when that is another one), warm (of the
//     previous generation, kept alive out of traffic for keepPrevious by
//     blue-green, so that a revert is an instant switch back), expired,
//     stray (of any other generation), dead.
//   - plan: the value PlanFleet returns; a step is what one pass of the
//     executor carries out (route change, drain, retires, provisions). Why
//     an instance is provisioned or retired is a stable Reason code; what a
//     service waits for, a Wait code; why it is degraded, a Degradation.
//   - front: whatever carries traffic (Front): the reconciler reads and
//     replaces one fleet's routes at a time and keeps its own traffic
//     record (Traffic) opaquely in the routes' Meta.
//   - revision record (Revisions): per fleet, the rollouts that failed and
//     the last revision that converged for each service (what a rollback
//     returns to, with its replica count).
//
// Only a new generation can fail a rollout. Dead or unhealthy instances of
// the serving generation are replaced (a new one first, while replicas +
// maxSurge allows), and errors are handled by class (Classify): an invalid
// spec fails a rollout of a new generation, and stalls anything else (the
// service is degraded until a new commit); transient errors are retried
// with jittered backoff and never fail a revision.
//
// PlanFleet is pure: it takes the desired state, the observed instances
// (with their health), the observed traffic and routes, and the current
// time, and returns a value. The Executor gathers that input, calls
// PlanFleet, carries out the first step, and plans again, so the reconciler
// holds no state that it cannot rebuild from Git and the live fleet: it can
// be killed at any moment and picks up where it was. `molt plan` is the
// executor's first pass without acting (Executor.Plan).
//
// The package deliberately does no rendering of its own beyond the plan's
// text, Markdown and JSON forms, knows nothing of Git or GitHub, and
// imports no implementation of a target or a front (its tests included).
package reconciler
