// Package github is molt's edge to GitHub, both ways.
//
// Inbound, it receives webhooks: Receiver answers POST /hooks/github
// (push, pull_request, issue_comment and ping deliveries, verified with
// X-Hub-Signature-256; a comment counts only when its first line is a
// /molt promote or /molt abort command, see ParseCommand) and Generic
// answers POST /hooks/generic (a bearer token, for CI systems and
// scripts). Both handlers only decide: they
// verify a delivery, read what it asks for into an Event value, and call
// a callback that must not block (the server passes a non-blocking
// trigger). They never fetch, plan or deploy themselves, so they answer
// well inside GitHub's ten seconds.
//
// Outbound, it reports back: Client (over go-github) keeps one plan
// comment per pull request up to date (UpsertPlanComment, found by
// PlanMarker), sets commit statuses (SetStatus), comments the outcome of
// a rollout on the pull requests of the commit, once per commit and kind
// (CommentOutcome), answers a /molt command with one reply comment per
// webhook delivery (PostReply), and opens one revert pull request per
// failed commit (OpenRevertPR, through the Git Data API). PlanComment and
// OutcomeComment render the bodies from plain data, cut to GitHub's
// 65,536 characters. Queue carries Reports to a Reporter (the Client, or
// LogReporter when there is no token) without ever holding up a
// reconcile: Enqueue returns at once, Run delivers with retries and
// backoff, the pending reports survive a restart in a small JSON file,
// and a newer report replaces a pending one of the same slot. Every
// write is spaced by a second, and GitHub's primary and secondary rate
// limits are waited out (LimitedError). A status can link to the comment
// it is about (Status.LinkPlan, LinkOutcome), found when it is delivered.
//
// The Client authenticates with a token, a token file re-read when it
// changes, or as a GitHub App's installation (AppAuth: a JWT signed with
// the app's key, exchanged for installation tokens that are renewed
// before they expire); a 401 gets one more try with a fresh token. The
// credentials go to the API's own scheme and host only, never over plain
// http to another machine (ValidateAPIURL), and the API of a repository
// is known only for github.com (APIURLFor). GitHub refusing a report for
// its credentials is a RefusedError that names the Permission the report
// needs, counted by the Client (Refusals). The githubtest package is an
// in-process GitHub API, and GitHub App, for tests of all this.
//
// Gate bounds the webhook requests served at once, the body bytes they
// hold together and the time a body may take, so that a flood of slow
// or large requests costs a bounded amount of memory and never starves
// the server's other routes. The delivery ids a Receiver has answered
// are kept, bounded, in a file when it is given one (DedupFile), so that
// a redelivery after a restart is recognised.
//
// The package deliberately does not read the tracked branch,
// accept an empty secret or token, or use go-github's ValidatePayload
// (which accepts an empty secret). It never pushes to the tracked branch
// or merges anything: a revert is a pull request for a person to merge.
// It does not use the Checks API (statuses need no GitHub App), does not
// split a long comment into several, and does not check who wrote a
// comment that carries molt's marker. Nor does it decide who may give a
// /molt command: the receiver hands the author's login to its callback.
package github
