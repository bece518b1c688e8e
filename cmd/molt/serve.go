package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/github"
	"github.com/molt-dev/molt/targets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"
)

type serveFlags struct {
	src                sourceFlags
	branch             string
	stateDir           string
	listen             string
	webhookListen      string
	poll               string
	webhookSecretFile  string
	genericTokenFile   string
	maxBody            int64
	hookLimits         hookLimitFlags // see the webhook flags below
	timeout, stopGrace time.Duration
	fetchTimeout       time.Duration
	level              string
	githubRepo         string
	githubTokenFile    string
	githubAPIURL       string
	githubRevertPR     bool
	githubAllow        []string
	dockerEngines      []string
	haproxy            string
	notifyURLs         []string // see notify.go

	// A GitHub App instead of a token, and where statuses link (see
	// github_setup.go).
	githubAppID             int64
	githubAppKeyFile        string
	githubAppInstallationID int64
	publicURL               string
}

func newServeCmd(e *env) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Keep the fleet converged to a branch: poll, take webhooks, reconcile",
		Long: `serve watches one branch of one repository and keeps the fleet converged to
its newest commit. It polls on a cron schedule (--poll, default @every 30s;
an unchanged remote costs one ref advertisement), takes GitHub webhooks on
POST /hooks/github (only with a secret: --webhook-secret-file or
MOLT_WEBHOOK_SECRET) and a bearer-token hook on POST /hooks/generic
(--generic-token-file or MOLT_GENERIC_TOKEN). GitHub does not redeliver a
failed webhook by itself: polling is the safety net, so a lost webhook
delays a deploy by at most one poll interval.

A comment whose first line is "/molt promote [SERVICE]" or "/molt abort
[SERVICE]" on the pull request that a paused rollout came from (see
rollout.pause) promotes or aborts it, as molt promote and molt abort do,
when its author is named by --github-allow (logins, compared without
regard to case; it needs the webhook secret and a GitHub token). Without
SERVICE it acts on every paused service. molt replies on the pull request
either way; a refused comment changes nothing.

Between changes every tick still reconciles: dead or unhealthy instances
are replaced. They are also replaced without waiting for a tick: serve
reconciles when an instance's process exits (or its container dies), and
when a health check, probed at its interval between reconciles, changes
its verdict. A remote that cannot be reached keeps the fleet as it is and
is retried with backoff. SIGTERM lets the step in progress finish and exits;
the instances and the router keep running.

Endpoints: GET /healthz (alive), GET /readyz (fetched once, not stuck, the
router answering: serve starts it again within a second when it dies, and
waits for one it did not start; it says the router's state, the last fetch
and the last reconcile, as JSON with ?format=json),
GET /metrics (Prometheus: reconciles, rollouts, instances by generation
and health, revisions, fetches, webhooks, the GitHub queue, and the
router's requests by service, generation and status class with their
latency, which serve reads from the router at each scrape: the router
serves no metrics of its own; see the README's Metrics), GET /api/v1/status
(what runs and rolls out, as molt status -o json prints it), GET
/api/v1/events?limit=N (the newest events, as molt history -o json; kept in
the state directory, bounded). With --webhook-listen the webhooks (POST
/hooks/*) are served there only, so that --listen can stay private.

The webhooks are bounded, so that a flood of slow or large requests
cannot take serve's memory or starve its other endpoints: at most
--webhook-max-requests (256) are read at once, more are answered 503 with
Retry-After at once; their bodies together hold at most
--webhook-max-inflight (16 MiB), reserved as the bytes arrive (a request
holds what it sent, not the length it claims), past which a request is
answered 503; a body must arrive within --webhook-body-timeout (10s,
GitHub's own limit) or is answered 408; headers within
--webhook-header-timeout (5s); an idle connection is closed after
--webhook-idle-timeout (60s). /healthz, /readyz, /metrics and the
dashboard are never refused for the webhooks' load.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return serve(cmd.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.src.repo, "repo", "", "Git repository: a local path, file://, https:// or ssh:// URL (required)")
	fl.StringVar(&f.branch, "branch", "", "the branch to deploy (default: the remote's default branch, followed if it changes)")
	fl.StringVar(&f.src.path, "path", ".", "sub-directory of the repository that holds the fleet")
	fl.StringVar(&f.stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7070", "address of the HTTP endpoints (API, dashboard, metrics, health; the webhooks too unless --webhook-listen)")
	fl.StringVar(&f.webhookListen, "webhook-listen", "", "a separate, public address for the webhooks (POST /hooks/* only), so that --listen can stay private")
	fl.StringVar(&f.poll, "poll", "@every 30s", "poll schedule (robfig/cron: a 5-field spec or @every DURATION)")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the GitHub webhook secret (or MOLT_WEBHOOK_SECRET)")
	fl.StringVar(&f.genericTokenFile, "generic-token-file", "", "file holding the bearer token of /hooks/generic (or MOLT_GENERIC_TOKEN)")
	f.src.creds.register(fl)
	f.src.eval.register(fl)
	fl.StringVar(&f.githubRepo, "github-repo", "", "owner/name of the repository on GitHub (webhooks for others are ignored)")
	fl.StringVar(&f.githubTokenFile, "github-token-file", "", "file holding a GitHub token for comments and statuses (or MOLT_GITHUB_TOKEN); without one molt logs what it would post")
	fl.StringVar(&f.githubAPIURL, "github-api-url", "", "GitHub API root; derived only for a github.com repository, required for any other host (GitHub Enterprise: e.g. https://ghe.example.com/api/v3/), https unless on this machine")
	fl.Int64Var(&f.githubAppID, "github-app-id", 0, "authenticate as this GitHub App (its App ID) instead of with a token; needs --github-app-key-file")
	fl.StringVar(&f.githubAppKeyFile, "github-app-key-file", "", "the GitHub App's private key (PEM, PKCS#1 or PKCS#8 RSA)")
	fl.Int64Var(&f.githubAppInstallationID, "github-app-installation-id", 0, "the GitHub App's installation on the repository (default: found from the repository)")
	fl.StringVar(&f.publicURL, "public-url", "", "serve's address as the outside sees it (`URL`): where molt/deploy commit statuses link (default: the outcome comment)")
	fl.BoolVar(&f.githubRevertPR, "github-revert-pr", false, "after an automatic rollback, open a pull request that reverts the failed commit")
	fl.StringSliceVar(&f.githubAllow, "github-allow", nil, "the GitHub users (`LOGIN[,LOGIN...]`, without regard to case) who may /molt promote and /molt abort in pull-request comments (repeatable)")
	registerDocker(fl, &f.dockerEngines)
	registerHAProxy(fl, &f.haproxy)
	fl.StringArrayVar(&f.notifyURLs, "notify-url", nil, "post every event to this URL as JSON, or as a Slack message for hooks.slack.com or a slack+https:// URL; retried until delivered, in order (repeatable)")
	fl.Int64Var(&f.maxBody, "webhook-max-body", 1<<20, "largest webhook body accepted, in bytes")
	f.hookLimits.register(fl)
	fl.DurationVar(&f.timeout, "reconcile-timeout", 15*time.Minute, "bound on one reconcile")
	fl.DurationVar(&f.fetchTimeout, "fetch-timeout", time.Minute, "bound on one fetch of the repository")
	fl.DurationVar(&f.stopGrace, "stop-grace", 30*time.Second, "on SIGTERM, how long the step in progress may go on")
	fl.StringVar(&f.level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func serve(ctx context.Context, e *env, f serveFlags) error {
	log := logger(e, f.level)
	if f.src.repo == "" {
		return &usageError{errors.New("serve needs --repo")}
	}
	sched, err := cron.ParseStandard(f.poll)
	if err != nil {
		return &usageError{fmt.Errorf("--poll %q: %w", f.poll, err)}
	}
	if err := f.hookLimits.validate(); err != nil {
		return &usageError{err}
	}
	hookSecret, err := secret(f.webhookSecretFile, "MOLT_WEBHOOK_SECRET")
	if err != nil {
		return err
	}
	genericToken, err := secret(f.genericTokenFile, "MOLT_GENERIC_TOKEN")
	if err != nil {
		return err
	}
	gopts, err := f.src.gitOptions(filepath.Join(f.stateDir, "git"), log)
	if err != nil {
		return err
	}
	ld, err := f.src.eval.loader(log) // every fleet is evaluated in a child (evaluate.go)
	if err != nil {
		return err
	}
	allow, err := parseAllowList(f.githubAllow)
	if err != nil {
		return &usageError{err}
	}
	if len(allow) > 0 {
		if hookSecret == nil {
			return &usageError{errors.New("--github-allow needs the webhook secret (--webhook-secret-file or MOLT_WEBHOOK_SECRET): comments come as webhooks")}
		}
		if ok, err := githubCredentials(f); err != nil {
			return err
		} else if !ok {
			return &usageError{errors.New("--github-allow needs GitHub credentials (--github-token-file or MOLT_GITHUB_TOKEN, or a GitHub App): molt reads which pull request a rollout came from, and replies there")}
		}
	}
	// The GitHub flags are checked before anything starts.
	if _, err := chooseGitHub(f, strings.TrimSpace(os.Getenv("MOLT_GITHUB_TOKEN")) != ""); err != nil {
		return err
	}
	release, err := lockState(f.stateDir)
	if err != nil {
		return err
	}
	defer release()

	// The HTTP endpoints come up first, so that /healthz answers while the
	// first fetch runs.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)

	w, err := openWorld(ctx, worldOptions{stateDir: f.stateDir, log: log, startRouter: true, dockerEngines: f.dockerEngines, haproxy: f.haproxy})
	if err != nil {
		ln.Close()
		return err
	}
	defer w.close()
	rep, client, err := newReporter(f, w, log)
	if err != nil {
		ln.Close()
		return err
	}
	if client != nil {
		m.githubRefusals(client)
	}
	m.githubQueue(rep.queue)
	m.routerCounts(w.router)
	// A state directory that cannot be written (read-only, full) is said
	// once, counted and shown on /readyz, and serve goes on from memory
	// (statewrites.go).
	writes := newStateWrites(w.stateDir, log)
	writes.register(reg)
	w.exec.Revisions.ReportWrites(writes.report)
	w.exec.Decisions.ReportWrites(writes.report)
	rep.queue.ReportWrites(writes.report)
	// The loop's first reconcile fetches: an unreachable remote at start is
	// a fault like any other, retried with backoff. Only a bad URL stops here.
	repo, err := git.Open(ctx, gopts)
	if err != nil {
		ln.Close()
		return err
	}
	src := &gitSource{repo: repo, opts: gopts, branch: f.branch, path: f.src.path, fetchTimeout: f.fetchTimeout, stateDir: f.stateDir, metrics: m,
		source: fleetSource(f.src.repo, f.src.path),
		loader: ld,
		prune:  func(ctx context.Context, names []string) error { return pruneRenamed(ctx, w, f.stateDir, names, nil) }}
	defer func() { src.repo.Close() }()
	var comments *commentHandler
	obs := &observers{}
	loop := &reconciler.Loop{
		Source: src, Executor: w.exec, Schedule: sched, Logger: log,
		Timeout: f.timeout, StepGrace: f.stopGrace,
		OnResult: obs.onResult,
		// An instance that turns unhealthy between polls is replaced then.
		WatchHealth: true,
	}
	var pulls pullFinder
	if client != nil {
		pulls = client
	}
	comments = newCommentHandler(allow, w.exec.Decisions, pulls, rep.queue, loop.Trigger, log)
	// What happens goes to every observer, in this order: each pass (one
	// step of a rollout) and each reconcile's end.
	w.exec.OnObserve = m.onObserve
	obs.onPassDo(m.onPass)
	obs.onResultDo(func(o reconciler.Outcome) { m.observe(o, log) })
	obs.onPassDo(rep.onPass)
	obs.onResultDo(rep.onResult)
	obs.onPassDo(comments.onPass)
	obs.onResultDo(comments.onResult)
	// The event history and the status board (see events.go, status.go).
	events, err := openEvents(f.stateDir, log)
	if err != nil {
		ln.Close()
		return err
	}
	notify, err := newNotifier(f.notifyURLs, f.stateDir, log)
	if err != nil {
		ln.Close()
		return err
	}
	events.onWrite, notify.onWrite = writes.report, writes.report
	events.subscribe(notify.enqueue)
	rec := newEventRecorder(events, rep.repo, func(rev string) (git.Commit, bool) {
		c, err := src.repo.Resolve(ctx, sha(rev)) // the cache only, on the reconcile's goroutine as src is
		return c, err == nil
	})
	board := newStatusBoard(w, events, boardOptions{source: repo.URL(), branch: f.branch, repo: rep.repo, log: log})
	obs.onPassDo(rec.onPass)
	obs.onResultDo(rec.onResult)
	obs.onPassDo(func(p reconciler.Plan) {
		var spec *schema.Fleet
		if src.snap.Revision == p.Revision { // src is only touched on the reconcile's goroutine, as here
			spec = src.snap.Fleet
		}
		board.onPass(p, spec)
	})
	obs.onResultDo(board.onResult)
	w.exec.OnPass = obs.onPass

	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/status", board)
	mux.Handle("GET /api/v1/events", events)
	// The dashboard (dashboard.go): the page and its live stream, woken
	// after each pass and each event.
	dash, err := newDashboard(board, events, log, dashboardOptions{})
	if err != nil {
		ln.Close()
		return err
	}
	board.subscribe(dash.notify)
	events.subscribe(func(apiEvent) { dash.notify() })
	mux.Handle("GET /{$}", dash)
	mux.Handle("GET /api/v1/stream", dash.stream())
	// The webhooks go on --listen, or alone on --webhook-listen.
	hooks := mux
	separate := f.webhookListen != "" && f.webhookListen != f.listen
	if separate {
		hooks = http.NewServeMux()
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	// /readyz (readyz.go): the loop, the router's checks, the last fetch
	// and the last reconcile.
	ready := &readiness{loop: loop.Status, router: w.health.get, timeout: f.timeout, state: writes.problem}
	m.onFetch = ready.fetched
	obs.onResultDo(ready.onResult)
	// The fleet this serve manages, once a reconcile named it: the
	// engine's deaths of other fleets' containers wake no reconcile.
	var fleetName atomic.Pointer[string]
	obs.onResultDo(func(o reconciler.Outcome) {
		if o.Fleet != "" {
			fleetName.Store(&o.Fleet)
		}
	})
	mux.Handle("GET /readyz", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// One gate bounds every webhook route together (limits.go of
	// sources/github); the other routes are outside it.
	gate, err := f.hookLimits.gate(log, reg)
	if err != nil {
		ln.Close()
		return err
	}
	if hookSecret != nil {
		recv, err := github.NewReceiver(github.ReceiverOptions{
			Secret: hookSecret, Repo: f.githubRepo, Branch: f.branch, MaxBody: f.maxBody, Logger: log,
			DedupFile:     filepath.Join(f.stateDir, "github-deliveries"), // a redelivery after a restart is still one
			OnWrite:       writes.report,
			OnPush:        func(github.Event) { loop.Trigger("push") },
			OnPullRequest: rep.onPullRequest,
			OnComment:     comments.onComment,
		})
		if err != nil {
			ln.Close()
			return err
		}
		m.webhookCounts("github", recv.EventCounts)
		hooks.Handle("POST /hooks/github", gate.Wrap(recv))
	} else {
		log.Warn("no webhook secret: /hooks/github is disabled (set --webhook-secret-file or MOLT_WEBHOOK_SECRET)")
	}
	if genericToken != nil {
		gen, err := github.NewGeneric(github.GenericOptions{Token: genericToken, Logger: log,
			OnTrigger: func() { loop.Trigger("generic hook") }})
		if err != nil {
			ln.Close()
			return err
		}
		hooks.Handle("POST /hooks/generic", gate.Wrap(gen))
	}
	srv := f.hookLimits.server(mux)
	srv.RegisterOnShutdown(dash.close) // the dashboard's streams never go idle by themselves
	propts := gopts
	propts.CacheDir = filepath.Join(f.stateDir, "git-pr")
	prRepo, err := git.Open(ctx, propts)
	if err != nil {
		ln.Close()
		return err
	}
	defer prRepo.Close()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		_ = rep.queue.Run(bg)
	}()
	go func() {
		defer wg.Done()
		comments.run(bg)
	}()
	go func() {
		defer wg.Done()
		rep.runPullRequests(bg, &prPlanner{repo: prRepo, path: f.src.path, world: w, log: log, loader: ld})
	}()
	wg.Add(3)
	go func() {
		defer wg.Done()
		// A router that died is started again at once, not at the next
		// reconcile (nor never, as before).
		w.superviseRouter(bg, time.Second, log)
	}()
	go func() {
		defer wg.Done()
		notify.run(bg) // the queue is persisted too
	}()
	go func() {
		defer wg.Done()
		w.process.RunLogRotation(bg, 10*time.Second)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A dead instance is replaced on its exit, not at the next poll.
		_ = w.process.WatchExits(bg, func(ids []string) { loop.Exited(ids...) })
	}()
	if w.docker != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ours := func(l targets.Labels) bool {
				name := fleetName.Load()
				return name == nil || l.Fleet == *name // before the first reconcile: every fleet's
			}
			_ = w.docker.WatchExitsOf(bg, ours, func(ids []string) { loop.Exited(ids...) })
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		writes.run(bg, 2*time.Second) // a probe: sees a read-only or full state directory when nothing else writes
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "error", err)
		}
	}()
	hookSrv := f.hookLimits.server(hooks)
	if separate {
		hln, err := net.Listen("tcp", f.webhookListen)
		if err != nil {
			stopBG()
			_ = srv.Close()
			wg.Wait()
			return fmt.Errorf("webhook listen: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hookSrv.Serve(hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("webhook http server", "error", err)
			}
		}()
		log.Info("webhooks on their own listener", "webhook-listen", hln.Addr().String(), "listen", ln.Addr().String())
		fmt.Fprintf(e.stdout, "molt serve: webhooks on %s\n", hln.Addr())
	} else {
		log.Info("the webhooks and the API, dashboard and metrics share one listener (--webhook-listen separates them)", "listen", ln.Addr().String())
	}
	log.Info("serving", "repo", repo.URL(), "branch", orDefaultBranch(f.branch), "listen", ln.Addr().String(), "poll", f.poll)
	fmt.Fprintf(e.stdout, "molt serve: listening on %s\n", ln.Addr())

	err = loop.Run(ctx)

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = hookSrv.Shutdown(sctx)
	stopBG() // the queue is persisted: what is pending goes out after a restart
	wg.Wait()
	log.Info("stopped; instances and the router keep running")
	return err
}

// gitSource is the loop's view of the tracked branch: fetch (one ref
// advertisement when nothing moved), resolve, and validate, reusing the
// last snapshot when the branch still points at the same commit.
type gitSource struct {
	repo         *git.Repo
	opts         git.Options // to open the cache again after a fault
	branch       string
	path         string
	fetchTimeout time.Duration
	stateDir     string
	metrics      *serveMetrics
	loader       schema.Loader
	broken       bool // the last attempt failed: reopen (and so check) the cache first

	hash string
	snap reconciler.Snapshot
	err  error
	// source names the repository and path (see fleetSource); prune
	// retires the fleets renamed away from it.
	source string
	prune  func(ctx context.Context, names []string) error
}

func (s *gitSource) Latest(ctx context.Context) (reconciler.Snapshot, error) {
	snap, err := s.latest(ctx)
	var inv *schema.InvalidError
	s.broken = err != nil && !errors.As(err, &inv)
	return snap, err
}

func (s *gitSource) latest(ctx context.Context) (reconciler.Snapshot, error) {
	if s.broken {
		// Opening checks the cache and rebuilds it when it is corrupt.
		repo, err := git.Open(ctx, s.opts)
		if err != nil {
			return reconciler.Snapshot{}, fmt.Errorf("open cache: %w", err)
		}
		s.repo.Close()
		s.repo = repo
	}
	fctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	began := time.Now()
	_, err := s.repo.Fetch(fctx)
	cancel()
	s.metrics.fetched(time.Since(began), err)
	if err != nil {
		return reconciler.Snapshot{}, fmt.Errorf("fetch %s: %w", s.repo.URL(), err)
	}
	c, err := s.repo.Resolve(ctx, s.branch)
	if err != nil {
		return reconciler.Snapshot{}, missingBranch(err, s.branch, s.repo.URL())
	}
	if c.Hash == s.hash {
		return s.snap, s.err
	}
	d, err := snapshotAt(ctx, s.loader, s.repo, c.Hash, s.path)
	var inv *schema.InvalidError
	if err != nil && !errors.As(err, &inv) {
		return reconciler.Snapshot{}, err // transient: do not remember
	}
	if s.branch != "" {
		c.Ref = s.branch
	}
	if err == nil {
		renamed, rerr := recordFleet(s.stateDir, d.fleet.Name, s.source)
		if rerr != nil {
			return reconciler.Snapshot{}, rerr
		}
		if len(renamed) > 0 && s.prune != nil {
			if err := s.prune(ctx, renamed); err != nil {
				return reconciler.Snapshot{}, err
			}
		}
	}
	s.hash, s.err = c.Hash, err
	s.snap = reconciler.Snapshot{Fleet: d.fleet, Revision: labelRevision(c), Specs: d.specs, Message: c.Message}
	return s.snap, s.err
}

// observers fan each pass and each reconcile's outcome out to the parts of
// serve that follow them (metrics, reports, comments, events, the
// dashboard). They run on the reconcile's goroutine: each must be quick.
type observers struct {
	passes  []func(reconciler.Plan)
	results []func(reconciler.Outcome)
}

func (o *observers) onPassDo(f func(reconciler.Plan))      { o.passes = append(o.passes, f) }
func (o *observers) onResultDo(f func(reconciler.Outcome)) { o.results = append(o.results, f) }

func (o *observers) onPass(p reconciler.Plan) {
	for _, f := range o.passes {
		f(p)
	}
}

func (o *observers) onResult(out reconciler.Outcome) {
	for _, f := range o.results {
		f(out)
	}
}

// orDefaultBranch names the branch serve follows, for logs.
func orDefaultBranch(branch string) string {
	if branch == "" {
		return "(the remote's default branch)"
	}
	return branch
}

// missingBranch says clearly that the tracked branch does not exist, and
// what to do about it; other errors pass through.
func missingBranch(err error, branch, url string) error {
	if !errors.Is(err, git.ErrRefNotFound) {
		return err
	}
	msg := fmt.Sprintf("branch %q does not exist in %s: push it, or pass --branch with a branch that exists (without --branch molt follows the remote's default branch)", branch, url)
	if branch == "" {
		msg = fmt.Sprintf("the remote %s names no default branch (it is empty, or its HEAD names no branch): push a branch, or pass --branch", url)
	}
	return &branchError{msg: msg, err: err}
}

type branchError struct {
	msg string
	err error
}

func (e *branchError) Error() string { return e.msg }
func (e *branchError) Unwrap() error { return e.err }

// Moved reports whether the branch now points elsewhere than revision
// (one ref advertisement when it does not).
func (s *gitSource) Moved(ctx context.Context, revision string) (bool, error) {
	if s.broken {
		return true, nil // let the next reconcile repair the cache
	}
	fctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	defer cancel()
	began := time.Now()
	_, err := s.repo.Fetch(fctx)
	s.metrics.fetched(time.Since(began), err)
	if err != nil {
		return false, err
	}
	c, err := s.repo.Resolve(ctx, s.branch)
	if err != nil {
		return false, missingBranch(err, s.branch, s.repo.URL())
	}
	return c.Hash != sha(revision), nil
}
