// Package github is molt's edge to GitHub. Today it receives webhooks:
// Receiver answers POST /hooks/github (push, pull_request and ping
// deliveries, verified with X-Hub-Signature-256) and Generic answers POST
// /hooks/generic (a bearer token, for CI systems and scripts).
//
// Both handlers only decide: they verify a delivery, read what it asks
// for into an Event value, and call a callback that must not block (the
// server passes a non-blocking trigger). They never fetch, plan or deploy
// themselves, so they answer well inside GitHub's ten seconds.
//
// The package deliberately does not read the tracked branch, remember
// anything across restarts (de-duplication is in memory), accept an empty
// secret or token, or use go-github's ValidatePayload (which accepts an
// empty secret). Writing pull-request comments and commit statuses is a
// separate part of the package.
package github
