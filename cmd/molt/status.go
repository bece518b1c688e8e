package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/github"
	"github.com/molt-dev/molt/targets"
)

// The status document (apiStatus): what runs, what is rolling out, and
// how the last reconcile ended. fleetStatus builds it from plain values
// (the plan, the live instances with their health, the routes, the
// events); statusBoard gathers those in serve, localStatus from a state
// directory alone.

// fleetInput is everything the status of one fleet is made from.
type fleetInput struct {
	name, source, branch string
	repo                 github.RepoRef
	spec                 *schema.Fleet    // nil: unknown
	plan                 *reconciler.Plan // the last pass's plan; nil: none
	instances            []reconciler.Observed
	routes               []targets.Route
	events               []apiEvent // newest first
	// rollouts are the starts of the rollouts under way, by service, as
	// serve saw them (when known).
	rollouts      map[string]rolloutStart
	lastReconcile time.Time
	lastResult    string
	lastError     string
	now           time.Time
}

// fleetStatus builds the status of one fleet. It is pure.
func fleetStatus(v fleetInput) apiFleet {
	f := apiFleet{Name: v.name, Source: v.source, Branch: v.branch, LastResult: v.lastResult, LastError: v.lastError, Services: []apiService{}}
	if !v.lastReconcile.IsZero() {
		t := v.lastReconcile
		f.LastReconcile = &t
	}
	if v.plan != nil && v.plan.Revision != "" {
		f.Revision, f.Commit, f.CommitURL = v.plan.Revision, sha(v.plan.Revision), v.commitURL(v.plan.Revision)
	}
	plans := map[string]*reconciler.ServicePlan{}
	names := map[string]bool{}
	if v.plan != nil {
		for i := range v.plan.Services {
			plans[v.plan.Services[i].Service] = &v.plan.Services[i]
			names[v.plan.Services[i].Service] = true
		}
	}
	if v.spec != nil {
		for n := range v.spec.Services {
			names[n] = true
		}
	}
	byService := map[string][]reconciler.Observed{}
	for _, o := range v.instances {
		byService[o.Labels.Service] = append(byService[o.Labels.Service], o)
		names[o.Labels.Service] = true
	}
	traffic := reconciler.TrafficOf(v.routes)
	routes := map[string]targets.Route{}
	for _, r := range v.routes {
		routes[r.Service] = r
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		var svc *schema.Service
		if v.spec != nil {
			svc = v.spec.Services[name]
		}
		f.Services = append(f.Services, v.service(name, svc, plans[name], byService[name], traffic[name], routes[name]))
	}
	return f
}

func (v fleetInput) commitURL(revision string) string {
	if v.repo.IsZero() || !strings.Contains(revision, "sha1:") {
		return ""
	}
	return v.repo.CommitURL(sha(revision))
}

func (v fleetInput) revision(revision, hash string) apiRevision {
	r := apiRevision{Revision: revision, Generation: generation(hash), SpecHash: hash}
	if strings.Contains(revision, "sha1:") {
		r.Commit, r.CommitURL = sha(revision), v.commitURL(revision)
	}
	return r
}

// health names an instance's health as the status shows it.
func health(o reconciler.Observed, svc *schema.Service, now time.Time) string {
	switch {
	case o.State != targets.Running:
		return "dead"
	case o.Health == reconciler.Healthy:
		return "healthy"
	case o.Health == reconciler.Unhealthy:
		return "unhealthy"
	case svc != nil && now.Before(o.Labels.CreatedAt.Add(svc.Health.Grace)):
		return "starting"
	}
	return "unknown"
}

// service builds one service's status.
func (v fleetInput) service(name string, svc *schema.Service, sp *reconciler.ServicePlan, insts []reconciler.Observed, tr reconciler.Traffic, route targets.Route) apiService {
	s := apiService{Name: name, Instances: []apiInstance{}}
	if svc != nil {
		s.Strategy, s.Replicas = string(svc.Rollout.Strategy), svc.Replicas
	}
	if sp != nil {
		s.Strategy = cmp.Or(string(sp.Strategy), s.Strategy)
		s.Replicas = sp.Replicas
		s.Desired = v.revision(sp.ToRevision, sp.To)
		s.Degraded, s.Paused = sp.Degraded, sp.Paused
	}
	active := tr.Active
	if active == "" && sp != nil {
		active = sp.From
	}
	weights, total := map[string]int{}, 0
	for _, b := range route.Backends {
		w := max(b.Weight, 1)
		weights[b.Instance] = w
		total += w
	}
	slices.SortFunc(insts, func(a, b reconciler.Observed) int {
		return cmp.Or(a.Labels.CreatedAt.Compare(b.Labels.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	liveRev := ""
	for _, o := range insts {
		in := apiInstance{ID: o.ID, Generation: generation(o.Labels.SpecHash), Revision: o.Labels.Revision, Target: "process",
			StartedAt: o.Labels.CreatedAt, AgeSeconds: v.now.Sub(o.Labels.CreatedAt).Seconds(), Health: health(o, svc, v.now)}
		if strings.Contains(o.ID, "/") {
			in.Target = "docker"
		}
		for _, port := range slices.Sorted(maps.Keys(o.Endpoints)) {
			if svc != nil && svc.Expose != nil && svc.Expose.Port != port {
				continue
			}
			in.Address = o.Endpoints[port]
			break
		}
		h := o.Labels.SpecHash
		inTraffic := weights[o.ID] > 0
		switch {
		case o.State != targets.Running && !inTraffic:
			in.Role = "retiring" // it is gone: replaced, then retired
		case tr.Canary != nil && tr.Canary.Hash == h && tr.Canary.Verdict == "":
			in.Role = "canary"
		case h == active && (inTraffic || len(route.Backends) == 0):
			in.Role = "active"
		case h == tr.Previous:
			in.Role = "previous"
		case sp != nil && h == sp.To:
			in.Role = "new"
		case h == active:
			in.Role = "active"
		default:
			in.Role = "retiring"
		}
		if inTraffic && total > 0 {
			in.Weight = (100*weights[o.ID] + total/2) / total
		}
		if h == active {
			liveRev = cmp.Or(liveRev, o.Labels.Revision)
			if in.Health == "healthy" && (inTraffic || len(route.Backends) == 0) {
				s.Healthy++
			}
		}
		s.Instances = append(s.Instances, in)
	}
	if active != "" {
		if sp != nil && sp.From == active && sp.FromRevision != "" {
			liveRev = sp.FromRevision
		}
		s.Live = v.revision(liveRev, active)
	}
	if sp != nil && sp.To != "" && sp.To != active && !sp.Converged() {
		s.Rollout = v.rollout(sp, svc, insts)
	}
	if c := tr.Canary; c != nil && c.Verdict == "" {
		ac := &apiCanary{Weight: c.Weight, Since: c.Since, Until: c.Since}
		if svc != nil && svc.Rollout.Canary != nil {
			ac.Until = c.Since.Add(svc.Rollout.Canary.Duration)
		}
		if sp != nil && sp.Judgement != nil {
			ac.Requests = sp.Judgement.Requests
		}
		s.Canary = ac
	}
	if vs := tr.Verify; vs != nil {
		w := &apiWindow{Since: vs.Since, Until: vs.Since}
		if svc != nil {
			w.Until = vs.Since.Add(svc.Rollout.VerifyFor)
		}
		if w.Until.After(v.now) || svc == nil {
			s.Verify = w
		}
	}
	s.LastOutcome = lastOutcome(v.events, v.name, name)
	return s
}

// rollout describes the rollout in progress.
func (v fleetInput) rollout(sp *reconciler.ServicePlan, svc *schema.Service, insts []reconciler.Observed) *apiRollout {
	r := &apiRollout{From: generation(sp.From), To: generation(sp.To), Wanted: sp.Replicas, Step: stepText(sp)}
	var progress time.Time
	for _, o := range insts {
		if o.Labels.SpecHash != sp.To {
			continue
		}
		if r.StartedAt.IsZero() || o.Labels.CreatedAt.Before(r.StartedAt) {
			r.StartedAt = o.Labels.CreatedAt
		}
		progress = latest(progress, o.Labels.CreatedAt)
		if o.State == targets.Running && o.Health == reconciler.Healthy {
			r.Healthy++
			progress = latest(progress, o.HealthySince)
		}
	}
	if st, ok := v.rollouts[sp.Service]; ok && st.to == sp.To {
		r.StartedAt = st.at
	}
	if svc != nil && svc.Rollout.ProgressDeadline > 0 {
		r.Deadline = latest(progress, r.StartedAt).Add(svc.Rollout.ProgressDeadline)
	}
	return r
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// stepText says what molt does or waits for now.
func stepText(sp *reconciler.ServicePlan) string {
	switch {
	case sp.Failed != "":
		return "rolling back: " + sp.Failed
	case sp.Paused != "":
		return sp.Paused
	case !sp.Deferred.IsZero():
		return "waiting for the deploy window until " + sp.Deferred.UTC().Format(time.RFC3339)
	case len(sp.Step.Provision)+len(sp.Step.Retire) > 0:
		return fmt.Sprintf("provisioning %d, retiring %d", len(sp.Step.Provision), len(sp.Step.Retire))
	case sp.Waiting != "":
		return "waiting: " + sp.Waiting
	case sp.Route != nil:
		return "shifting traffic"
	}
	return fmt.Sprintf("%d to provision, %d to retire", sp.Provision, sp.Retire)
}

// outcomeResults are the events that end a rollout or a state, and the
// result they stand for.
var outcomeResults = map[string]string{
	"deploy": "converged", "rollback": "rolled-back", "degraded": "degraded", "paused": "paused",
	"promote": "promoted", "abort": "aborted",
}

// lastOutcome is the newest event of the service that ends a rollout or
// begins a lasting state.
func lastOutcome(events []apiEvent, fleet, service string) *apiOutcome {
	for _, ev := range events {
		if ev.Fleet != fleet || ev.Service != service {
			continue
		}
		if res, ok := outcomeResults[ev.Kind]; ok {
			return &apiOutcome{Result: res, Reason: cmp.Or(ev.Reason, ev.Message), At: ev.Time}
		}
	}
	return nil
}

// statusBoard keeps what serve knows of each fleet (its last pass's plan
// and spec, its last outcome) and builds the status from that and a live
// observation (instances, their health by its own prober, the routes).
// It is safe for concurrent use.
type statusBoard struct {
	target targets.Target
	front  reconciler.Front
	events *eventStore
	o      boardOptions

	mu     sync.Mutex
	fleets map[string]*boardFleet
	subs   []func()
}

// boardOptions say where the fleets come from, for people.
type boardOptions struct {
	source string // the repository (and path)
	branch string
	repo   github.RepoRef // commit links; zero: none
	log    *slog.Logger
}

type boardFleet struct {
	plan     reconciler.Plan
	spec     *schema.Fleet
	outcome  *reconciler.Outcome
	rollouts map[string]rolloutStart
	prober   *reconciler.Prober // its own: status never disturbs the loop's verdicts
}

// newStatusBoard returns a board over the world's target and router;
// events (nil: none) give the last outcomes.
func newStatusBoard(w *world, events *eventStore, o boardOptions) *statusBoard {
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return &statusBoard{target: w.target, front: w.readFront(), events: events, o: o, fleets: map[string]*boardFleet{}}
}

func (b *statusBoard) fleet(name string) *boardFleet {
	f := b.fleets[name]
	if f == nil {
		f = &boardFleet{rollouts: map[string]rolloutStart{}, prober: reconciler.NewProber()}
		b.fleets[name] = f
	}
	return f
}

// onPass keeps the pass's plan, and the fleet's spec when known (nil
// keeps the one before), then tells the subscribers.
func (b *statusBoard) onPass(p reconciler.Plan, spec *schema.Fleet) {
	if p.Fleet == "" {
		return
	}
	b.mu.Lock()
	f := b.fleet(p.Fleet)
	f.plan = p
	if spec != nil && spec.Name == p.Fleet {
		f.spec = spec
	}
	for _, sp := range p.Services {
		if sp.To == "" || sp.To == sp.From || sp.Converged() {
			delete(f.rollouts, sp.Service)
			continue
		}
		if st, ok := f.rollouts[sp.Service]; !ok || st.to != sp.To {
			f.rollouts[sp.Service] = rolloutStart{from: sp.From, to: sp.To, at: time.Now()}
		}
	}
	b.mu.Unlock()
	b.notify()
}

// onResult keeps the outcome of a reconcile, then tells the subscribers.
func (b *statusBoard) onResult(o reconciler.Outcome) {
	b.mu.Lock()
	if o.Fleet == "" {
		for name := range b.fleets { // a fault before the fleet was read
			o.Fleet = name
		}
	}
	if o.Fleet != "" {
		b.fleet(o.Fleet).outcome = &o
	}
	b.mu.Unlock()
	b.notify()
}

// subscribe calls f after every pass and every reconcile's end, on the
// reconcile's goroutine: f must be quick (read the status elsewhere).
func (b *statusBoard) subscribe(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, f)
}

func (b *statusBoard) notify() {
	b.mu.Lock()
	subs := slices.Clone(b.subs)
	b.mu.Unlock()
	for _, f := range subs {
		f()
	}
}

// status observes the live fleets (instances and health, routes) and
// builds the status. It changes nothing; its probes are its own.
func (b *statusBoard) status(ctx context.Context) (apiStatus, error) {
	now := time.Now()
	all, err := b.target.List(ctx)
	if err != nil {
		return apiStatus{}, fmt.Errorf("list instances: %w", err)
	}
	var evs []apiEvent
	if b.events != nil {
		evs = b.events.recent(0)
	}
	b.mu.Lock()
	type snap struct {
		name string
		f    boardFleet
	}
	var fleets []snap
	for _, name := range slices.Sorted(maps.Keys(b.fleets)) {
		f := *b.fleets[name]
		f.rollouts = maps.Clone(f.rollouts)
		fleets = append(fleets, snap{name, f})
	}
	b.mu.Unlock()
	st := apiStatus{GeneratedAt: now.UTC(), Fleets: []apiFleet{}}
	for _, s := range fleets {
		var mine []targets.Instance
		for _, in := range all {
			if in.Labels.Fleet == s.name {
				mine = append(mine, in)
			}
		}
		spec := s.f.spec
		obs := s.f.prober.Observe(ctx, now, mine, func(service string) *schema.Service {
			if spec == nil {
				return nil
			}
			return spec.Services[service]
		})
		if spec == nil {
			unprobed(obs)
		}
		routes, err := b.front.Routes(ctx, s.name)
		if err != nil {
			return apiStatus{}, fmt.Errorf("read routes: %w", err)
		}
		v := fleetInput{name: s.name, source: b.o.source, branch: b.o.branch, repo: b.o.repo, spec: spec, instances: obs,
			routes: routes, events: evs, rollouts: s.f.rollouts, now: now}
		if s.f.plan.Fleet != "" {
			p := s.f.plan
			v.plan = &p
		}
		if o := s.f.outcome; o != nil {
			v.lastReconcile, v.lastResult = o.Finished, reconcileResult(*o)
			if o.Err != nil {
				v.lastError = o.Err.Error()
			}
		}
		st.Fleets = append(st.Fleets, fleetStatus(v))
	}
	return st, nil
}

// unprobed forgets the verdicts of instances whose checks are not known
// (the prober takes a service without a check as healthy once running).
func unprobed(obs []reconciler.Observed) {
	for i := range obs {
		obs[i].Health, obs[i].HealthySince = reconciler.HealthUnknown, time.Time{}
	}
}

// localStatus builds the status of the fleets a state directory deploys
// without serve: the live instances (probed by a prober of its own), the
// routes of a running router, the revision record, the events. It starts
// and changes nothing. The fleet's spec is read back from the Git cache
// at the newest revision the events or the instances name, when the state
// directory is not in use (serve or apply hold its lock, and a cache being
// fetched is not to be read); without it, health is not probed.
func localStatus(ctx context.Context, stateDir string, log *slog.Logger) (apiStatus, error) {
	st := apiStatus{GeneratedAt: time.Now().UTC(), Fleets: []apiFleet{}}
	if _, err := os.Stat(stateDir); err != nil {
		if os.IsNotExist(err) {
			return st, nil
		}
		return st, err
	}
	entries, err := readFleets(stateDir)
	if err != nil {
		return st, err
	}
	evs, err := readEvents(stateDir, 0)
	if err != nil {
		return st, err
	}
	w, err := openWorld(ctx, worldOptions{stateDir: stateDir, log: log})
	if err != nil {
		return st, err
	}
	defer w.close()
	// The lock: only when no one else acts on the state directory is the
	// Git cache read.
	release, lerr := lockState(stateDir)
	if lerr == nil {
		defer release()
	}
	all, err := w.target.List(ctx)
	if err != nil {
		return st, fmt.Errorf("list instances: %w", err)
	}
	for _, e := range entries {
		var mine []targets.Instance
		for _, in := range all {
			if in.Labels.Fleet == e.name {
				mine = append(mine, in)
			}
		}
		revision := fleetRevision(evs, e.name, mine)
		var d desiredState
		ok := false
		if lerr == nil && revision != "" {
			var closeRepo func()
			if d, closeRepo, ok = cachedFleet(ctx, stateDir, e.source, revision, log); ok {
				defer closeRepo()
			}
		}
		v := fleetInput{name: e.name, source: e.source, events: evs, now: time.Now()}
		x := *w.exec
		x.Front = readOnlyFront{w.router}
		x.Prober = reconciler.NewProber()
		x.Prober.Eager = true
		if ok && d.fleet.Name == e.name {
			x.Specs = d.specs
			p, err := x.Plan(ctx, d.fleet, d.revision)
			if err != nil {
				return st, err
			}
			v.plan, v.spec = &p, d.fleet
			obs, routes, err := x.Observe(ctx, d.fleet, nil)
			if err != nil {
				return st, err
			}
			v.instances, v.routes = obs, routes
		} else {
			v.instances = x.Prober.Observe(ctx, v.now, mine, func(string) *schema.Service { return nil })
			unprobed(v.instances)
			if v.routes, err = x.Front.Routes(ctx, e.name); err != nil {
				return st, err
			}
			if revision != "" {
				v.plan = &reconciler.Plan{Fleet: e.name, Revision: revision}
			}
		}
		if len(evs) > 0 {
			for _, ev := range evs {
				if ev.Fleet == e.name {
					v.lastReconcile = ev.Time
					break
				}
			}
		}
		st.Fleets = append(st.Fleets, fleetStatus(v))
	}
	return st, nil
}

// fleetRevision is the newest revision that apply or serve worked on for
// the fleet, as the events say, else the newest instance's.
func fleetRevision(evs []apiEvent, fleet string, insts []targets.Instance) string {
	for _, ev := range evs {
		if ev.Fleet == fleet && ev.Service != "" && strings.Contains(ev.Revision, "sha1:") {
			return ev.Revision
		}
	}
	var newest targets.Instance
	for _, in := range insts {
		if in.Labels.CreatedAt.After(newest.Labels.CreatedAt) {
			newest = in
		}
	}
	return newest.Labels.Revision
}

// cachedFleet reads the fleet at revision from the state directory's Git
// cache of source ("repository#path", see fleetSource), without a fetch;
// close closes the cache (the spec source reads it).
func cachedFleet(ctx context.Context, stateDir, source, revision string, log *slog.Logger) (d desiredState, close func(), ok bool) {
	i := strings.LastIndex(source, "#")
	if i < 0 {
		return desiredState{}, nil, false
	}
	url, path := source[:i], cmp.Or(source[i+1:], ".")
	cache := filepath.Join(stateDir, "git")
	if _, err := os.Stat(cache); err != nil {
		return desiredState{}, nil, false
	}
	repo, err := git.Open(ctx, git.Options{URL: repoURL(url), CacheDir: cache, Logger: log})
	if err != nil {
		log.Debug("status: no Git cache", "error", err)
		return desiredState{}, nil, false
	}
	d, err = snapshotAt(ctx, defaultLoader(log), repo, sha(revision), path)
	if err != nil {
		repo.Close()
		log.Debug("status: cannot read the fleet back", "revision", revision, "error", err)
		return desiredState{}, nil, false
	}
	d.revision = revision
	return d, func() { repo.Close() }, true
}

// ServeHTTP answers GET /api/v1/status with the status document.
func (b *statusBoard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, err := b.status(ctx)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	apiJSON(w, st)
}

// apiJSON writes v as the JSON answer of an API call.
func apiJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = writeJSON(w, v)
}

// apiError answers an API call with an error, as -o json writes one.
func apiError(w http.ResponseWriter, status int, err error) {
	var doc jsonError
	doc.Error.Message, doc.Error.ExitCode = err.Error(), 1
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = writeJSON(w, doc)
}
