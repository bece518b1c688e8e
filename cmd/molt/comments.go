package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/github"
)

// commentHandler carries out the /molt promote and /molt abort comments
// that serve's webhook receiver hands over: off the request's goroutine,
// it checks the author against --github-allow and the pull request
// against the one the paused rollout came from, records the decision in
// the state directory (as `molt promote` does), triggers a reconcile, and
// queues a reply on the pull request. A refused comment records nothing.
//
// It acts only on services that the last reconcile left paused, and pins
// each decision to the generation that waits (Decision.Hash), so a
// comment never promotes or aborts a later rollout.
type commentHandler struct {
	allow     map[string]bool // lower-case logins; empty: nobody
	decisions *reconciler.Decisions
	pulls     pullFinder // nil without a GitHub token: nothing can be checked
	queue     replyQueue
	trigger   func(reason string)
	log       *slog.Logger
	events    chan github.Event

	mu   sync.Mutex
	last pausedRollout
}

// pullFinder says which pull requests a commit came from (github.Client).
type pullFinder interface {
	PullsOf(ctx context.Context, sha string) ([]int, error)
}

// replyQueue takes the reply to post (github.Queue).
type replyQueue interface {
	Enqueue(r github.Report)
}

var (
	_ pullFinder = (*github.Client)(nil)
	_ replyQueue = (*github.Queue)(nil)
)

// pausedRollout is what the last reconcile of serve left waiting.
type pausedRollout struct {
	fleet    string
	revision string            // "main@sha1:…"
	paused   map[string]string // service → spec hash of the generation that waits
	// rolling holds the rollouts under way (seen in the plans of the
	// reconcile that runs), which /molt abort may stop too.
	rolling map[string]string // service → spec hash of the generation rolled out
}

// commentBacklog bounds the comments waiting to be handled; past it a
// comment is dropped (and logged): nobody comments that fast.
const commentBacklog = 32

// newCommentHandler returns the handler; call run to start it. allow
// holds the logins given to --github-allow.
func newCommentHandler(allow []string, decisions *reconciler.Decisions, pulls pullFinder, queue replyQueue, trigger func(string), log *slog.Logger) *commentHandler {
	h := &commentHandler{allow: map[string]bool{}, decisions: decisions, pulls: pulls, queue: queue, trigger: trigger,
		log: log.With("hook", "github-comments"), events: make(chan github.Event, commentBacklog)}
	for _, login := range allow {
		h.allow[strings.ToLower(login)] = true
	}
	return h
}

// onComment queues a comment event; it never blocks (the receiver calls
// it on the request's goroutine).
func (h *commentHandler) onComment(ev github.Event) {
	select {
	case h.events <- ev:
	default:
		h.log.Warn("comment dropped: too many waiting", "event", ev)
	}
}

// onResult keeps what the reconcile left paused. An outcome with an error
// says nothing sure about the fleet: what was known stays.
func (h *commentHandler) onResult(o reconciler.Outcome) {
	if o.Err != nil {
		return
	}
	r := pausedRollout{fleet: o.Fleet, revision: o.Revision, paused: map[string]string{}}
	if !o.Result.Preempted { // a newer commit takes over: nothing waits
		for _, sp := range o.Result.Paused {
			r.paused[sp.Service] = sp.To
		}
	}
	h.mu.Lock()
	h.last = r
	h.mu.Unlock()
}

// onPass keeps the rollouts under way that the running reconcile plans
// (a rollout is aborted while it runs, not only when paused).
func (h *commentHandler) onPass(p reconciler.Plan) {
	rolling := map[string]string{}
	for _, sp := range p.Services {
		if sp.To != "" && sp.To != sp.From && !sp.Rollback && sp.Failed == "" && !sp.Converged() {
			rolling[sp.Service] = sp.To
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.fleet != p.Fleet || h.last.revision != p.Revision {
		h.last = pausedRollout{fleet: p.Fleet, revision: p.Revision, paused: map[string]string{}}
	}
	h.last.rolling = rolling
}

// run handles the queued comments, one at a time, until ctx is done.
func (h *commentHandler) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-h.events:
			h.handle(ctx, ev)
		}
	}
}

// handle gathers what a comment is decided on, decides, and acts.
func (h *commentHandler) handle(ctx context.Context, ev github.Event) {
	h.mu.Lock()
	in := commentInput{ev: ev, allowed: h.allow[strings.ToLower(ev.Author)], last: h.last}
	h.mu.Unlock()
	log := h.log.With("pr", ev.PRNumber, "author", ev.Author, "command", ev.Command.String(), "delivery", ev.Delivery)
	if in.allowed && len(in.last.paused)+len(in.last.rolling) > 0 && h.pulls != nil {
		in.checked = true
		in.prs, in.prsErr = h.pulls.PullsOf(ctx, sha(in.last.revision))
		if in.prsErr != nil {
			log.Warn("comment: the pull requests of the rollout could not be read", "revision", in.last.revision, "error", in.prsErr)
		}
	}
	d := decideComment(in, time.Now())
	recorded := 0
	for _, dec := range d.record {
		if err := h.decisions.Record(dec); err != nil {
			// The error names paths of the state directory: for the log only.
			log.Error("comment: decision not recorded", "service", dec.Service, "error", err)
			d.reply = fmt.Sprintf("@%s: molt could not record the decision on %s (its log says why)", ev.Author, dec.Service)
			break
		}
		recorded++
		log.Info("decision recorded", "fleet", dec.Fleet, "service", dec.Service, "action", dec.Action, "by", dec.By, "hash", dec.Hash)
	}
	if recorded > 0 {
		h.trigger("comment")
	} else {
		log.Info("comment refused", "why", d.reply)
	}
	h.queue.Enqueue(github.Report{Reply: &github.Reply{PR: ev.PRNumber, Delivery: ev.Delivery, Body: d.reply}})
}

// commentInput is everything a comment is decided on.
type commentInput struct {
	ev      github.Event
	allowed bool          // the author is on the allow list
	last    pausedRollout // what the last reconcile left paused
	checked bool          // prs was asked for
	prs     []int         // the pull requests the paused revision came from
	prsErr  error
}

// commentDecision is what to do about a comment: the decisions to
// record (none when refused) and the reply to post.
type commentDecision struct {
	record []reconciler.Decision
	reply  string
}

// decideComment decides on a /molt command comment. It has no side
// effects.
func decideComment(in commentInput, now time.Time) commentDecision {
	ev, cmd := in.ev, in.ev.Command
	refuse := func(format string, args ...any) commentDecision {
		return commentDecision{reply: fmt.Sprintf("@%s: ", ev.Author) + fmt.Sprintf(format, args...)}
	}
	var action reconciler.Action
	switch cmd.Action {
	case github.CommandPromote:
		action = reconciler.ActionPromote
	case github.CommandAbort:
		action = reconciler.ActionAbort
	default:
		return refuse("molt does not know %s", cmd)
	}
	// promote acts on paused rollouts; abort on any rollout under way.
	targets := map[string]string{}
	maps.Copy(targets, in.last.paused)
	if action == reconciler.ActionAbort {
		for s, h := range in.last.rolling {
			if _, ok := targets[s]; !ok {
				targets[s] = h
			}
		}
	}
	switch {
	case !in.allowed:
		return commentDecision{reply: fmt.Sprintf("@%s is not allowed to /molt %s here (ask someone named by --github-allow)", ev.Author, cmd.Action)}
	case len(targets) == 0 && action == reconciler.ActionAbort:
		return refuse("there is no rollout under way from this pull request (nothing to abort)")
	case len(targets) == 0:
		return refuse("there is no paused rollout from this pull request (nothing is paused)")
	case !in.checked:
		return refuse("molt cannot tell which pull request the paused rollout came from (it has no GitHub token); nothing was recorded")
	case in.prsErr != nil:
		return refuse("molt could not read which pull request the paused rollout came from (GitHub answered with an error); nothing was recorded, try again")
	case !slices.Contains(in.prs, ev.PRNumber):
		return refuse("there is no paused rollout from this pull request (the paused rollout is of %s, from %s)",
			reconciler.ShortRevision(in.last.revision), pullList(in.prs))
	}
	paused := slices.Sorted(maps.Keys(targets))
	services := paused
	if cmd.Service != "" {
		if _, ok := targets[cmd.Service]; !ok {
			what := "paused"
			if action == reconciler.ActionAbort {
				what = "under way"
			}
			return refuse("%s has no rollout %s from this pull request (%s: %s)", cmd.Service, what, what, strings.Join(paused, ", "))
		}
		services = []string{cmd.Service}
	}
	d := commentDecision{}
	for _, s := range services {
		d.record = append(d.record, reconciler.Decision{Fleet: in.last.fleet, Service: s, Action: action,
			Hash: targets[s], By: "github:" + ev.Author, At: now.UTC()})
	}
	names := strings.Join(services, ", ")
	if action == reconciler.ActionPromote {
		d.reply = fmt.Sprintf("promoted %s (by @%s): molt goes on with the rollout", names, ev.Author)
	} else {
		d.reply = fmt.Sprintf("aborting %s (by @%s): molt rolls the rollout back", names, ev.Author)
	}
	return d
}

// pullList names pull requests for a reply: "#4", "#4, #7", or "no pull
// request".
func pullList(prs []int) string {
	if len(prs) == 0 {
		return "no pull request"
	}
	out := make([]string, len(prs))
	for i, n := range prs {
		out[i] = fmt.Sprintf("#%d", n)
	}
	return strings.Join(out, ", ")
}

// githubLogin is what GitHub accepts as a login (and an app's bot,
// "name[bot]").
var githubLogin = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}(?:\[bot\])?$`)

// parseAllowList reads the values of --github-allow (each a login or a
// comma-separated list).
func parseAllowList(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, login := range strings.Split(v, ",") {
			login = strings.TrimPrefix(strings.TrimSpace(login), "@")
			if login == "" {
				continue
			}
			if !githubLogin.MatchString(login) {
				return nil, fmt.Errorf("--github-allow: %q is not a GitHub login", login)
			}
			out = append(out, login)
		}
	}
	return out, nil
}
