// Package githubtest is an in-process GitHub REST API for tests: an
// httptest server that answers the endpoints molt's reporter uses (issue
// comments, commit statuses, pull requests, Git references and commits)
// with the JSON shapes GitHub documents, keeps its state in memory where a
// test can seed and inspect it, records every request with the time it
// arrived and the kind of credential it carried, and can be told to
// misbehave: rate limits (primary and secondary), 429, 5xx and slow
// answers. Configured with an App, it is also a GitHub App installed on
// its repository: it checks the app's JWTs (RS256 signature, issuer,
// times), issues installation tokens that expire by its clock, can revoke
// them, and refuses what the installation's permissions do not allow.
//
// It deliberately does not model the rest of GitHub: one repository, one
// token and at most one app installation, permissions only as far as an
// installation's list of them, no Git objects beyond what the endpoints
// above need (a tree is just a SHA), and no webhooks. It is not a
// conformance suite for go-github; it is a stand-in that speaks GitHub's
// wire format closely enough that go-github, pointed at it, parses what
// it answers.
package githubtest
