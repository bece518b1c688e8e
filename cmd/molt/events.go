package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/github"
)

// The event store: what happened to the fleets of a state directory
// (deploys, rollbacks, self-heals, ...), kept in STATE/events.jsonl, one
// JSON document a line, oldest first, so that history survives a restart.
//
//   - Bounded: once the file holds more than maxEvents+maxEvents/2 events
//     or maxEventBytes bytes, it is rewritten atomically (a temporary file
//     renamed over it) with the newest maxEvents that fit in half of
//     maxEventBytes.
//   - Crash-safe: a line is appended with one write; a torn last line (a
//     crash mid-write) is skipped by readers and cut off by the next
//     writer, never fatal. A line that cannot be read is skipped.
//   - One writer: apply and serve take the state directory's lock before
//     they open the store for writing; readers (molt status and molt
//     history --state-dir) take no lock and never write.
//   - Ids increase by one per event and go on from the newest id in the
//     file (a deleted file starts again at 1).
const (
	eventsFile    = "events.jsonl"
	maxEvents     = 1000
	maxEventBytes = 1 << 20
)

// eventStore is the writer's side of the store.
type eventStore struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	events []apiEvent // oldest first, at most what the file holds
	size   int64      // bytes in the file
	lines  int        // lines in the file
	next   int64
	subs   []func(apiEvent)

	// onWrite hears the outcome of every write of the file (nil: a
	// failed one is logged); set before the store is used.
	onWrite func(path string, err error)
}

// openEvents opens (creating it when needed) the store of stateDir for
// writing; the caller holds the state directory's lock. A torn last line
// is cut off.
func openEvents(stateDir string, log *slog.Logger) (*eventStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	s := &eventStore{path: filepath.Join(stateDir, eventsFile), log: log, next: 1}
	raw, err := os.ReadFile(s.path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("events: %w", err)
	}
	if i := bytes.LastIndexByte(raw, '\n'); i+1 < len(raw) {
		// A crash mid-write left a partial line: cut it off, so that the
		// next line starts on a line of its own.
		log.Warn("events: skipping a torn last line", "file", s.path, "bytes", len(raw)-i-1)
		raw = raw[:i+1]
		if err := os.Truncate(s.path, int64(len(raw))); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
	}
	s.events, s.lines = parseEvents(raw, log)
	s.size = int64(len(raw))
	for _, ev := range s.events {
		s.next = max(s.next, ev.ID+1)
	}
	return s, nil
}

// parseEvents reads the lines of the store, skipping (with a warning)
// those that cannot be read; it returns the events, oldest first, and the
// number of lines.
func parseEvents(raw []byte, log *slog.Logger) ([]apiEvent, int) {
	var out []apiEvent
	lines, bad := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64*1024), maxEventBytes)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		lines++
		var ev apiEvent
		if err := json.Unmarshal(line, &ev); err != nil || ev.ID == 0 {
			bad++
			continue
		}
		out = append(out, ev)
	}
	if bad > 0 && log != nil {
		log.Warn("events: skipped lines that cannot be read", "lines", bad)
	}
	return out, lines
}

// readEvents reads the store of stateDir without taking the lock or
// changing anything (for molt status and molt history): newest first, at
// most n (n <= 0: all). A missing store has no events.
func readEvents(stateDir string, n int) ([]apiEvent, error) {
	raw, err := os.ReadFile(filepath.Join(stateDir, eventsFile))
	if os.IsNotExist(err) {
		return []apiEvent{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if i := bytes.LastIndexByte(raw, '\n'); i+1 < len(raw) {
		raw = raw[:i+1] // a line being written, or torn
	}
	evs, _ := parseEvents(raw, nil)
	return newestFirst(evs, n), nil
}

// newestFirst returns the last n of evs (all when n <= 0), newest first,
// as a new slice.
func newestFirst(evs []apiEvent, n int) []apiEvent {
	if n <= 0 || n > len(evs) {
		n = len(evs)
	}
	out := make([]apiEvent, 0, n)
	for i := len(evs) - 1; i >= len(evs)-n; i-- {
		out = append(out, evs[i])
	}
	return out
}

// append stores ev with the next id (and the time now, when it has none)
// and hands it to every subscriber. An event that cannot be written to
// the file (a read-only or full state directory) is kept in memory only,
// and reported (or logged): history never stops a reconcile.
func (s *eventStore) append(ev apiEvent) apiEvent {
	s.mu.Lock()
	ev.ID = s.next
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	line, err := json.Marshal(ev)
	if err != nil {
		s.mu.Unlock()
		s.log.Warn("events: cannot record an event", "kind", ev.Kind, "service", ev.Service, "error", err)
		return ev
	}
	line = append(line, '\n')
	werr := s.write(line)
	switch {
	case s.onWrite != nil:
		s.onWrite(s.path, werr)
	case werr != nil:
		s.log.Warn("events: cannot write an event to the file: kept in memory only", "kind", ev.Kind, "service", ev.Service, "error", werr)
	}
	s.next++
	s.events = append(s.events, ev)
	if werr == nil {
		s.size += int64(len(line))
		s.lines++
	}
	if len(s.events) > 2*maxEvents { // the file could not be compacted: memory stays bounded
		s.events = slices.Clone(s.events[len(s.events)-maxEvents:])
	}
	if s.lines > maxEvents+maxEvents/2 || s.size > maxEventBytes {
		if err := s.compact(); err != nil {
			s.log.Warn("events: cannot compact the store", "error", err)
		}
	}
	subs := slices.Clone(s.subs)
	s.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
	return ev
}

// write appends one line with a single write call.
func (s *eventStore) write(line []byte) error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// compact rewrites the file with the newest events that fit the bounds,
// atomically: readers see the old file or the new one.
func (s *eventStore) compact() error {
	keep := s.events[max(0, len(s.events)-maxEvents):]
	var b bytes.Buffer
	var lines [][]byte
	total := 0
	for i := len(keep) - 1; i >= 0; i-- {
		line, err := json.Marshal(keep[i])
		if err != nil {
			continue
		}
		if total+len(line)+1 > maxEventBytes/2 {
			keep = keep[i+1:]
			break
		}
		total += len(line) + 1
		lines = append(lines, line)
	}
	for i := len(lines) - 1; i >= 0; i-- {
		b.Write(lines[i])
		b.WriteByte('\n')
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return err
	}
	s.events = slices.Clone(keep)
	s.size, s.lines = int64(b.Len()), len(lines)
	return nil
}

// recent returns the newest n events (all kept in memory when n <= 0),
// newest first.
func (s *eventStore) recent(n int) []apiEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return newestFirst(s.events, n)
}

// subscribe calls f with every event appended from now on, on the
// goroutine that appends it (the reconcile's): f must be quick.
func (s *eventStore) subscribe(f func(apiEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, f)
}

// eventRecorder turns what the executor does (each pass's plan) and how
// each reconcile or apply ends (its outcome) into events, once each: a
// state that lasts over many passes (degraded, paused) is recorded when it
// begins, a deploy when a service converges to a generation other than
// the one it was last deployed or rolled back to. Its methods run on the
// reconcile's goroutine.
type eventRecorder struct {
	store *eventStore
	// repo makes commit and pull-request links (zero: no links).
	repo github.RepoRef
	// commit finds a revision's commit, for its author and pull request
	// (nil, or false: unknown). It must be cheap: no network.
	commit func(revision string) (git.Commit, bool)
	now    func() time.Time

	fleet    string                  // the last fleet seen, for faults before any
	lastTo   map[string]string       // fleet/service -> generation last deployed or rolled back to
	rollouts map[string]rolloutStart // fleet/service -> the rollout under way
	state    map[string]string       // fleet/service/kind -> what was recorded of a lasting state
	told     map[string]bool         // instances whose retire was recorded
}

type rolloutStart struct {
	from, to string // spec hashes
	at       time.Time
}

func newEventRecorder(store *eventStore, repo github.RepoRef, commit func(string) (git.Commit, bool)) *eventRecorder {
	r := &eventRecorder{store: store, repo: repo, commit: commit, now: time.Now,
		lastTo: map[string]string{}, rollouts: map[string]rolloutStart{}, state: map[string]string{}, told: map[string]bool{}}
	// What is recorded already is not recorded again after a restart.
	evs := store.recent(0)
	newest := map[string]apiEvent{}
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		key := ev.Fleet + "/" + ev.Service
		switch ev.Kind {
		case "deploy", "rollback":
			r.lastTo[key] = ev.To
		}
		newest[key] = ev
	}
	for key, ev := range newest {
		switch ev.Kind {
		case "degraded", "paused":
			r.state[key+"/"+ev.Kind] = ev.To + " " + ev.Reason
		}
	}
	return r
}

// generation is the short form of a spec hash that events and the status
// show.
func generation(hash string) string {
	if len(hash) > 8 {
		return hash[:8]
	}
	return hash
}

var (
	mergePRRE  = regexp.MustCompile(`^Merge pull request #([0-9]+)`)
	squashPRRE = regexp.MustCompile(`\(#([0-9]+)\)\s*$`)
)

// base is an event of the fleet's service at revision, with the commit's
// links, author and pull request where known.
func (r *eventRecorder) base(kind, fleet, service, revision string) apiEvent {
	ev := apiEvent{Kind: kind, Fleet: fleet, Service: service, Revision: revision, Time: r.now().UTC()}
	if revision == "" {
		return ev
	}
	ev.Commit = sha(revision)
	if !r.repo.IsZero() {
		ev.CommitURL = r.repo.CommitURL(ev.Commit)
	}
	if r.commit == nil {
		return ev
	}
	c, ok := r.commit(revision)
	if !ok {
		return ev
	}
	ev.Author = strings.TrimSpace(strings.Split(c.Author, " <")[0])
	subj := subject(c.Message)
	for _, re := range []*regexp.Regexp{mergePRRE, squashPRRE} {
		if m := re.FindStringSubmatch(subj); m != nil {
			ev.PullRequest, _ = strconv.Atoi(m[1])
			if !r.repo.IsZero() {
				ev.PullRequestURL = r.repo.PullURL(ev.PullRequest)
			}
			break
		}
	}
	return ev
}

// figures are a judgement's numbers.
func figures(j *reconciler.Judgement) map[string]float64 {
	if j == nil {
		return nil
	}
	f := map[string]float64{"requests": float64(j.Requests), "errorRate": j.ErrorRate}
	if j.P99 > 0 {
		f["p99Seconds"] = j.P99.Seconds()
	}
	if j.BaselineRequests > 0 {
		f["baselineRequests"] = float64(j.BaselineRequests)
		f["baselineErrorRate"] = j.BaselineErrorRate
	}
	if j.BaselineP99 > 0 {
		f["baselineP99Seconds"] = j.BaselineP99.Seconds()
	}
	return f
}

// retireKinds are the retire reasons that make an event, by kind.
var retireKinds = map[reconciler.Reason]string{
	reconciler.ReasonDrift:          "drift",
	reconciler.ReasonRecycle:        "recycle",
	reconciler.ReasonExited:         "selfheal",
	reconciler.ReasonUnhealthy:      "selfheal",
	reconciler.ReasonLivenessFailed: "selfheal",
}

// onPass records what a pass begins: drift replacements, recycles and
// self-heals (one event per service and kind, when its instances are
// retired), canary promotions, operators' promotions and aborts, and
// degraded and paused services.
func (r *eventRecorder) onPass(p reconciler.Plan) {
	if p.Fleet == "" {
		return
	}
	r.fleet = p.Fleet
	if len(r.told) > 10000 {
		r.told = map[string]bool{}
	}
	for i := range p.Services {
		sp := &p.Services[i]
		key := p.Fleet + "/" + sp.Service
		if sp.To != "" && sp.From != sp.To && !sp.Rollback {
			if st, ok := r.rollouts[key]; !ok || st.to != sp.To {
				r.rollouts[key] = rolloutStart{from: sp.From, to: sp.To, at: r.now()}
			}
		}
		r.retires(p, sp)
		if j := sp.Judgement; j != nil && j.Verdict == reconciler.Promote && r.once(key+"/promote", sp.To) {
			ev := r.base("promote", p.Fleet, sp.Service, sp.ToRevision)
			ev.From, ev.To, ev.Reason, ev.Figures = generation(sp.From), generation(sp.To), string(j.Finding), figures(j)
			ev.Message = fmt.Sprintf("%s: canary of %s promoted: %s", sp.Service, generation(sp.To), j.Message)
			r.store.append(ev)
		}
		paused := r.state[key+"/paused"]
		switch {
		case sp.Paused != "":
			if r.once(key+"/paused", generation(sp.To)+" ") {
				ev := r.base("paused", p.Fleet, sp.Service, sp.ToRevision)
				ev.From, ev.To, ev.Message = generation(sp.From), generation(sp.To), sp.Service+": "+sp.Paused
				r.store.append(ev)
			}
		case paused != "":
			delete(r.state, key+"/paused")
			if sp.Failed == "" && strings.HasPrefix(paused, generation(sp.To)+" ") {
				ev := r.base("promote", p.Fleet, sp.Service, sp.ToRevision)
				ev.From, ev.To, ev.Reason = generation(sp.From), generation(sp.To), "Promoted"
				ev.Message = fmt.Sprintf("%s: the paused rollout of %s was promoted", sp.Service, generation(sp.To))
				r.store.append(ev)
			}
		}
		if strings.HasPrefix(sp.Failed, "aborted by ") && r.once(key+"/abort", sp.To) {
			ev := r.base("abort", p.Fleet, sp.Service, sp.ToRevision)
			ev.From, ev.To, ev.Reason = generation(sp.From), generation(sp.To), sp.Failed
			ev.Message = fmt.Sprintf("%s: the rollout of %s was %s", sp.Service, generation(sp.To), sp.Failed)
			r.store.append(ev)
		}
		if sp.Degraded != "" {
			if r.once(key+"/degraded", generation(sp.To)+" "+string(sp.DegradedReason)) {
				ev := r.base("degraded", p.Fleet, sp.Service, sp.ToRevision)
				ev.To, ev.Reason = generation(sp.To), string(sp.DegradedReason)
				ev.Message = fmt.Sprintf("%s degraded (%d/%d healthy): %s", sp.Service, sp.Healthy, sp.Replicas, sp.Degraded)
				r.store.append(ev)
			}
		} else {
			delete(r.state, key+"/degraded")
		}
	}
}

// once reports whether the lasting state key has not been recorded as
// sig yet, and records that it now is.
func (r *eventRecorder) once(key, sig string) bool {
	if r.state[key] == sig {
		return false
	}
	r.state[key] = sig
	return true
}

// retires records the retires of the serving generation that replace an
// instance: drift, recycle, self-heal.
func (r *eventRecorder) retires(p reconciler.Plan, sp *reconciler.ServicePlan) {
	if sp.Failed != "" {
		return
	}
	byKind := map[string][]reconciler.Retire{}
	for _, rt := range sp.Step.Retire {
		kind, ok := retireKinds[rt.Reason]
		if !ok || r.told[rt.Instance] || (rt.SpecHash != sp.From && rt.Reason != reconciler.ReasonDrift && rt.Reason != reconciler.ReasonRecycle) {
			continue
		}
		r.told[rt.Instance] = true
		byKind[kind] = append(byKind[kind], rt)
	}
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		rts := byKind[kind]
		ev := r.base(kind, p.Fleet, sp.Service, sp.FromRevision)
		ev.From = generation(rts[0].SpecHash)
		var why []string
		for _, rt := range rts {
			ev.Instances = append(ev.Instances, rt.Instance)
			w := rt.Reason.Text()
			if rt.Detail != "" {
				w += ": " + rt.Detail
			}
			why = append(why, rt.Instance+" ("+w+")")
		}
		ev.Reason = string(rts[0].Reason)
		what := map[string]string{"drift": "replacing drifted", "recycle": "recycling", "selfheal": "replacing"}[kind]
		ev.Message = fmt.Sprintf("%s: %s %s", sp.Service, what, strings.Join(why, ", "))
		r.store.append(ev)
	}
}

// onResult records how a reconcile (or an apply) ended: deploys,
// rollbacks with their reason and figures, and faults.
func (r *eventRecorder) onResult(o reconciler.Outcome) {
	fleet := cmp.Or(o.Fleet, r.fleet)
	if o.Err != nil {
		if errors.Is(o.Err, context.Canceled) || fleet == "" {
			return
		}
		if r.once(fleet+"//failure", o.Err.Error()) {
			ev := r.base("failure", fleet, "", o.Revision)
			ev.Reason, ev.Message = o.Err.Error(), "reconcile failed: "+o.Err.Error()
			r.store.append(ev)
		}
		return
	}
	delete(r.state, fleet+"//failure")
	res := o.Result
	final := map[string]reconciler.ServicePlan{}
	for _, sp := range res.Plan.Services {
		final[sp.Service] = sp
	}
	failed := map[string]bool{}
	for _, f := range res.Failures {
		failed[f.Service] = true
		key := f.Fleet + "/" + f.Service
		sp := final[f.Service]
		ev := r.base("rollback", f.Fleet, f.Service, f.Revision)
		ev.From, ev.To, ev.Reason = generation(f.Hash), generation(sp.To), f.Reason
		if j, ok := res.Judgements[f.Service]; ok && (j.Verdict == reconciler.Rollback || j.Verdict == reconciler.Fail) {
			ev.Figures = figures(&j)
		}
		if st, ok := r.rollouts[key]; ok && st.to == f.Hash {
			ev.DurationSecs = f.At.Sub(st.at).Seconds()
		}
		ev.Message = fmt.Sprintf("%s: rollout of %s failed and was rolled back to %s: %s", f.Service, generation(f.Hash), orNone(generation(sp.To)), f.Reason)
		r.store.append(ev)
		r.lastTo[key] = ev.To
		delete(r.rollouts, key)
	}
	for _, sp := range res.Plan.Services {
		key := fleet + "/" + sp.Service
		if failed[sp.Service] || sp.Rollback || !sp.Converged() || sp.To == "" || generation(sp.To) == r.lastTo[key] {
			continue
		}
		st, tracked := r.rollouts[key]
		tracked = tracked && st.to == sp.To
		if c := res.PerService[sp.Service]; !tracked && c.Provisioned+c.Retired == 0 {
			continue // nothing happened to it here: it was deployed before
		}
		ev := r.base("deploy", fleet, sp.Service, cmp.Or(sp.ToRevision, o.Revision))
		ev.From, ev.To = r.lastTo[key], generation(sp.To)
		took := res.Duration
		if tracked {
			took = r.now().Sub(st.at)
			if ev.From == "" {
				ev.From = generation(st.from)
			}
		}
		ev.DurationSecs = took.Seconds()
		c := res.PerService[sp.Service]
		ev.Message = fmt.Sprintf("%s: deployed %s", sp.Service, ev.To)
		if ev.From != "" {
			ev.Message += " (from " + ev.From + ")"
		}
		ev.Message += fmt.Sprintf(": +%d provisioned, -%d retired in %s", c.Provisioned, c.Retired, took.Round(time.Millisecond))
		r.store.append(ev)
		r.lastTo[key] = ev.To
		delete(r.rollouts, key)
	}
}

func orNone(s string) string { return cmp.Or(s, "none") }

// defaultEventLimit is how many events GET /api/v1/events returns without
// ?limit.
const defaultEventLimit = 100

// ServeHTTP answers GET /api/v1/events?limit=N: the newest N events
// (default 100, at most all that are kept), newest first.
func (s *eventStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := defaultEventLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a positive integer", v))
			return
		}
	}
	apiJSON(w, apiEvents{Events: s.recent(n)})
}
