package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/github"
)

// reporter turns what serve sees (pull-request webhooks, rollouts of the
// tracked branch) into reports for GitHub, through a persistent queue that
// never blocks a reconcile. Without a token it only logs them.
type reporter struct {
	queue    *github.Queue
	repo     github.RepoRef
	branch   string
	revertPR bool
	log      *slog.Logger
	// publicURL, when set, is where molt/deploy statuses link (serve's
	// own address, as the outside sees it); otherwise they link to the
	// outcome comment, and molt/plan statuses always to the plan comment.
	publicURL string

	mu         sync.Mutex
	pendingFor string // the revision whose deploy status is pending
	started    time.Time
	reported   string // the revision whose outcome went out last
	pausedFor  string // the revision whose pause was reported

	prMu   sync.Mutex
	prs    map[int]github.Event // newest event per pull request, waiting
	prWake chan struct{}
}

// onPass sets the deploy status to pending when a new revision's rollout
// starts changing the fleet.
func (r *reporter) onPass(p reconciler.Plan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.Revision == r.reported || p.Revision == r.pendingFor || !p.Changes() {
		return
	}
	r.pendingFor, r.started = p.Revision, time.Now()
	prov, ret := 0, 0
	for _, sp := range p.Services {
		prov += sp.Provision
		ret += sp.Retire
	}
	desc := fmt.Sprintf("rolling out: +%d provision, -%d retire", prov, ret)
	if until, ok := p.Deferred(); ok {
		desc = "waiting for the deploy window until " + until.UTC().Format(time.RFC3339)
		r.pendingFor = "" // report again once the rollout really starts
	}
	r.queue.Enqueue(github.Report{Status: &github.Status{SHA: sha(p.Revision), Context: github.ContextDeploy,
		State: github.StatePending, Description: desc, TargetURL: r.publicURL}})
}

var revertRE = regexp.MustCompile(`This reverts commit ([0-9a-f]{40})`)

// onResult reports the end of a rollout: the deploy status, and the
// outcome comment on the pull request the commit came from.
func (r *reporter) onResult(o reconciler.Outcome) {
	if o.Err != nil || o.Revision == "" || o.Result.Preempted {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.Revision == r.reported {
		return
	}
	res := o.Result
	failed := len(res.Failures) > 0
	paused := !failed && len(res.Paused) > 0
	if !failed && !res.Converged && !paused {
		return
	}
	if !failed {
		// A revision that failed earlier (maybe before a restart of molt)
		// and now serves its rollback is not a success.
		if len(res.Held) > 0 {
			r.reported = o.Revision
			return
		}
	}
	if !paused {
		r.reported = o.Revision // a paused rollout is reported again when it ends
	}
	rolledOut := r.pendingFor == o.Revision
	started := r.started
	if !rolledOut {
		started = o.Started
	}
	out := github.Outcome{SHA: sha(o.Revision), Revision: reconciler.ShortRevision(o.Revision), Repo: r.repo,
		Kind: github.OutcomeSuccess, Duration: time.Since(started).Round(time.Millisecond),
		Provisioned: res.Provisioned, Retired: res.Retired}
	if m := revertRE.FindStringSubmatch(o.Message); m != nil {
		out.RevertsTo = m[1]
	}
	failedBy := map[string]string{}
	for _, f := range res.Failures {
		failedBy[f.Service] = f.Reason
		if out.Reason == "" {
			out.Reason = f.Service + ": " + f.Reason
		}
	}
	for _, sp := range res.Plan.Services {
		c := res.PerService[sp.Service]
		so := github.ServiceOutcome{Name: sp.Service, From: sp.From, To: sp.To, Provisioned: c.Provisioned, Retired: c.Retired, Paused: sp.Paused}
		if j, ok := res.Judgements[sp.Service]; ok {
			so.Judged = fmt.Sprintf("%s (%s): %s", j.Verdict, j.Finding, j.Message)
		}
		if why, ok := failedBy[sp.Service]; ok {
			so.Failed, so.RolledBackTo = why, sp.To
		}
		if so.Provisioned+so.Retired > 0 || so.Failed != "" || sp.From != sp.To || so.Judged != "" || so.Paused != "" {
			out.Services = append(out.Services, so)
		}
	}
	state, desc := github.StateSuccess, fmt.Sprintf("deployed: +%d provisioned, -%d retired", res.Provisioned, res.Retired)
	if paused {
		out.Kind = github.OutcomePaused
		state, desc = github.StatePending, "paused: molt promote to go on"
	}
	if failed {
		out.Kind = github.OutcomeFailure
		state, desc = github.StateFailure, "rolled back: "+out.Reason
		if r.revertPR {
			out.RevertBase = r.branch
			if out.RevertBase == "" { // following the default branch: the one deployed
				out.RevertBase, _, _ = strings.Cut(o.Revision, "@sha1:")
			}
		}
	}
	// The outcome comment goes first, so that the status can link to it.
	st := github.Status{SHA: out.SHA, Context: github.ContextDeploy, State: state, Description: desc, TargetURL: r.publicURL}
	if rolledOut || failed || paused {
		st.LinkOutcome = out.Kind
		if !paused || r.pausedFor != o.Revision { // a pause is said once per revision
			if paused {
				r.pausedFor = o.Revision
			}
			r.queue.Enqueue(github.Report{Outcome: &out})
		}
	}
	r.queue.Enqueue(github.Report{Status: &st})
}

// onPullRequest queues a plan of the pull request's head; it never blocks.
// Events for the same pull request coalesce: only the newest is planned.
func (r *reporter) onPullRequest(ev github.Event) {
	r.prMu.Lock()
	r.prs[ev.PRNumber] = ev
	r.prMu.Unlock()
	select {
	case r.prWake <- struct{}{}:
	default:
	}
}

// planner plans pull-request heads against the live fleet, read-only.
type prPlanner struct {
	repo   *git.Repo // a cache of its own: the loop's is not shared
	path   string
	world  *world
	log    *slog.Logger
	loader schema.Loader // evaluates in a child under limits: heads of forks are hostile
}

// runPullRequests plans queued pull requests until ctx is done.
func (r *reporter) runPullRequests(ctx context.Context, p *prPlanner) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.prWake:
		}
		r.prMu.Lock()
		batch := r.prs
		r.prs = map[int]github.Event{}
		r.prMu.Unlock()
		for _, ev := range batch {
			in, ok := p.plan(ctx, ev)
			if !ok {
				continue
			}
			in.Repo = r.repo
			r.queue.Enqueue(github.Report{Plan: &in})
			st := github.Status{SHA: ev.HeadSHA, Context: github.ContextPlan, State: github.StateSuccess, LinkPlan: ev.PRNumber}
			switch {
			case len(in.Issues) == 1 && in.Issues[0].File == "":
				// One reason for the whole fleet (an evaluation stopped at
				// a limit, a cap): the status says it.
				st.State, st.Description = github.StateFailure, in.Issues[0].Message
			case len(in.Issues) > 0:
				st.State, st.Description = github.StateFailure, fmt.Sprintf("%d validation error(s)", len(in.Issues))
			case in.Error != "":
				st.State, st.Description = github.StateError, in.Error
			default:
				prov, ret := 0, 0
				for _, s := range in.Services {
					prov += s.Provision
					ret += s.Retire
				}
				st.Description = fmt.Sprintf("valid: +%d provision, -%d retire", prov, ret)
			}
			r.queue.Enqueue(github.Report{Status: &st})
		}
	}
}

// plan validates and plans the head of a pull request. Evaluation is pure
// (no exec, no network, nothing outside the commit's tree), so a head from
// a fork is safe to plan.
func (p *prPlanner) plan(ctx context.Context, ev github.Event) (github.PlanInput, bool) {
	in := github.PlanInput{PR: ev.PRNumber, SHA: ev.HeadSHA}
	log := p.log.With("pr", ev.PRNumber, "head", ev.HeadSHA)
	if _, err := p.repo.Fetch(ctx); err != nil {
		log.Warn("pull request plan: fetch failed", "error", err)
		if ctx.Err() != nil {
			return in, false
		}
	}
	if _, err := p.repo.FetchPull(ctx, ev.PRNumber); err != nil {
		log.Warn("pull request plan: fetch of the pull request head failed", "error", err)
	}
	c, err := p.repo.Resolve(ctx, ev.HeadSHA)
	if err != nil {
		in.Error = "the head commit cannot be read: " + err.Error()
		return in, true
	}
	c.Ref = ev.HeadRef
	in.Revision = c.Revision()
	d, err := snapshotAt(ctx, p.loader, p.repo, c.Hash, p.path)
	var inv *schema.InvalidError
	if errors.As(err, &inv) {
		prefix := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p.path)), ".")
		for _, is := range inv.Issues {
			file := is.File
			if prefix != "" && file != "" {
				file = strings.TrimPrefix(prefix, "/") + "/" + file
			}
			in.Issues = append(in.Issues, github.Issue{File: file, Line: is.Line, Column: is.Column, Path: is.Path, Message: is.Message})
		}
		return in, true
	}
	if err != nil {
		in.Error = err.Error()
		return in, true
	}
	d.revision = labelRevision(c)
	plan, err := planWith(ctx, p.world, d)
	if err != nil {
		in.Error = "no plan: " + err.Error()
		return in, true
	}
	var md strings.Builder
	_ = plan.WriteMarkdown(&md)
	in.PlanMarkdown = md.String()
	for _, sp := range plan.Services {
		in.Services = append(in.Services, github.ServiceSummary{Name: sp.Service, Strategy: string(sp.Strategy),
			From: sp.From, To: sp.To, Provision: sp.Provision, Retire: sp.Retire, Notes: sp.Notes})
	}
	return in, true
}
