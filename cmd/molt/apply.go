package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/git"
	"github.com/molt-dev/molt/sources/github"
	"github.com/spf13/cobra"
)

func newApplyCmd(e *env) *cobra.Command {
	var src sourceFlags
	var stateDir, level, output string
	var timeout time.Duration
	var retry bool
	var engines []string
	var haproxyAddr string
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Converge the live fleet to a commit once, then exit",
		Long: `apply validates the fleet at a commit, then provisions new instances and
retires old ones, one step at a time, until the live fleet matches it. The
instances and the router keep running after apply exits. A rollout that
fails (an instance that dies or fails its health check, or a missed
progressDeadline) is rolled back, and the revision is recorded as failed:
apply does not try it again unless --retry is given.

apply can be killed at any moment: the next apply picks up where it was.

Exit status: 0 converged, 1 the rollout failed and was rolled back, a
service is degraded (fewer healthy instances than it wants, and nothing
molt can do about it before a new commit), or an error, 3 a rollout waits for a deploy window or is paused (rollout.pause) (run apply again then, or let
molt serve do it), 64 usage error.

-o json prints one document at the end instead of progress: {"revision",
"fleet", "outcome" (converged, rolled-back, degraded, paused or deferred),
"provisioned", "retired", "durationSeconds", "rolledBack": [{"service",
"reason"}], "degraded": [{"service", "healthy", "replicas", "reason"}],
"paused": [{"service", "reason"}], "deferred": [{"service", "until"}],
"judgements": {SERVICE: {"verdict", "finding", "message", ...}}}; an error
is {"error": {"message", "exitCode"}}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := logger(e, level)
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			release, err := lockState(stateDir)
			if err != nil {
				return err
			}
			defer release()
			d, err := loadDesired(ctx, src, filepath.Join(stateDir, "git"), log)
			if err := invalid(e, err); err != nil {
				return err
			}
			renamed, err := recordFleet(stateDir, d.fleet.Name, fleetSource(src.repo, src.path))
			if err != nil {
				return err
			}
			w, err := openWorld(ctx, worldOptions{stateDir: stateDir, log: log, startRouter: true, dockerEngines: engines, haproxy: haproxyAddr})
			if err != nil {
				return err
			}
			defer w.close()
			w.exec.Specs = d.specs
			if err := pruneRenamed(ctx, w, stateDir, renamed, func(s string) { fmt.Fprintln(e.stdout, s) }); err != nil {
				return err
			}
			if retry {
				n, err := w.exec.Revisions.Clear(d.fleet.Name, d.revision)
				if err != nil {
					return err
				}
				if n > 0 {
					log.Info("retrying a failed revision", "revision", d.revision)
				}
			}
			text := output == "text"
			if text && isTerminal(e.stdout) {
				w.exec.OnPass = progress(e)
			}
			// The history (molt history, serve's events) hears of this apply too.
			events, err := openEvents(stateDir, log)
			if err != nil {
				return err
			}
			rec := newEventRecorder(events, github.RepoRef{}, func(rev string) (git.Commit, bool) { return d.commit, sha(rev) == d.commit.Hash })
			show := w.exec.OnPass
			w.exec.OnPass = func(p reconciler.Plan) {
				rec.onPass(p)
				if show != nil {
					show(p)
				}
			}
			began := time.Now()
			if text {
				fmt.Fprintf(e.stdout, "applying %s (fleet %s)\n", d.commit.Revision(), d.fleet.Name)
			}
			actx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			res, err := w.exec.Apply(actx, d.fleet, d.revision)
			rec.onResult(reconciler.Outcome{Reason: "apply", Fleet: d.fleet.Name, Revision: d.revision, Message: d.commit.Message,
				Result: res, Err: err, Started: began, Finished: time.Now()})
			if err != nil {
				return err
			}
			doc := applyDoc(d, res)
			if !text {
				if err := writeJSON(e.stdout, doc); err != nil {
					return err
				}
				switch doc.Outcome {
				case "rolled-back", "degraded":
					return &exitError{code: 1}
				case "paused", "deferred":
					return &exitError{code: 3}
				}
				return nil
			}
			fmt.Fprintf(e.stdout, "provisioned %d, retired %d in %s\n", res.Provisioned, res.Retired, res.Duration.Round(time.Millisecond))
			for _, name := range slices.Sorted(maps.Keys(res.Judgements)) {
				j := res.Judgements[name]
				fmt.Fprintf(e.stdout, "judged %s: %s (%s): %s\n", name, j.Verdict, j.Finding, j.Message)
			}
			switch doc.Outcome {
			case "rolled-back":
				for _, f := range doc.RolledBack {
					fmt.Fprintf(e.stdout, "rolled back %s: %s\n", f.Service, f.Reason)
				}
				return &exitError{code: 1, err: fmt.Errorf("%s: %w (apply --retry tries it again)", d.commit.Revision(), reconciler.ErrFailed)}
			case "degraded":
				for _, sp := range doc.Degraded {
					fmt.Fprintf(e.stdout, "degraded %s (%d/%d healthy): %s\n", sp.Service, *sp.Healthy, *sp.Replicas, sp.Reason)
				}
				return &exitError{code: 1, err: fmt.Errorf("%s: %d service(s) %w", d.commit.Revision(), len(doc.Degraded), reconciler.ErrDegraded)}
			case "paused":
				for _, sp := range doc.Paused {
					fmt.Fprintf(e.stdout, "%s: %s\n", sp.Service, sp.Reason)
				}
				return &exitError{code: 3}
			case "deferred":
				for _, sp := range doc.Deferred {
					fmt.Fprintf(e.stdout, "%s: outside the deploy window; the rollout waits until %s\n", sp.Service, sp.Until.Format(time.RFC3339))
				}
				return &exitError{code: 3}
			}
			fmt.Fprintf(e.stdout, "converged to %s\n", d.commit.Revision())
			return nil
		},
	}
	src.register(cmd.Flags(), ".")
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up (leaving everything as it is) after this long")
	outputFlag(cmd, &output, "text", "json")
	registerDocker(cmd.Flags(), &engines)
	registerHAProxy(cmd.Flags(), &haproxyAddr)
	cmd.Flags().BoolVar(&retry, "retry", false, "try a revision again even though its rollout failed before")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// progress prints one line per service whenever its progress changes.
// applied is what apply -o json prints; the text output says the same.
type applied struct {
	Revision        string                          `json:"revision"`
	Fleet           string                          `json:"fleet"`
	Outcome         string                          `json:"outcome"`
	Provisioned     int                             `json:"provisioned"`
	Retired         int                             `json:"retired"`
	DurationSeconds float64                         `json:"durationSeconds"`
	RolledBack      []appliedService                `json:"rolledBack"`
	Degraded        []appliedService                `json:"degraded"`
	Paused          []appliedService                `json:"paused"`
	Deferred        []appliedService                `json:"deferred"`
	Judgements      map[string]reconciler.Judgement `json:"judgements"`
}

type appliedService struct {
	Service  string     `json:"service"`
	Reason   string     `json:"reason,omitempty"`
	Healthy  *int       `json:"healthy,omitempty"`
	Replicas *int       `json:"replicas,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
}

// applyDoc sums up a result: the outcome is the first of rolled-back,
// degraded, paused, deferred and converged that applies.
func applyDoc(d desiredState, res reconciler.Result) applied {
	doc := applied{Revision: d.revision, Fleet: d.fleet.Name, Provisioned: res.Provisioned, Retired: res.Retired,
		DurationSeconds: res.Duration.Seconds(), Judgements: res.Judgements,
		RolledBack: []appliedService{}, Degraded: []appliedService{}, Paused: []appliedService{}, Deferred: []appliedService{}}
	if doc.Judgements == nil {
		doc.Judgements = map[string]reconciler.Judgement{}
	}
	for _, f := range res.Held {
		doc.RolledBack = append(doc.RolledBack, appliedService{Service: f.Service, Reason: f.Reason})
	}
	for _, sp := range res.Degraded {
		doc.Degraded = append(doc.Degraded, appliedService{Service: sp.Service, Reason: sp.Degraded, Healthy: &sp.Healthy, Replicas: &sp.Replicas})
	}
	for _, sp := range res.Paused {
		doc.Paused = append(doc.Paused, appliedService{Service: sp.Service, Reason: sp.Paused})
	}
	if !res.Deferred.IsZero() {
		for _, sp := range res.Plan.Services {
			if !sp.Deferred.IsZero() {
				doc.Deferred = append(doc.Deferred, appliedService{Service: sp.Service, Until: &sp.Deferred})
			}
		}
	}
	switch {
	case len(doc.RolledBack) > 0:
		doc.Outcome = "rolled-back"
	case len(doc.Degraded) > 0:
		doc.Outcome = "degraded"
	case len(doc.Paused) > 0:
		doc.Outcome = "paused"
	case !res.Deferred.IsZero():
		doc.Outcome = "deferred"
	default:
		doc.Outcome = "converged"
	}
	return doc
}

func progress(e *env) func(reconciler.Plan) {
	last := map[string]string{}
	return func(p reconciler.Plan) {
		for _, sp := range p.Services {
			var b strings.Builder
			fmt.Fprintf(&b, "%s: ", sp.Service)
			switch {
			case sp.Failed != "":
				fmt.Fprintf(&b, "failed (%s), rolling back", sp.Failed)
			case sp.Converged():
				b.WriteString("converged")
			case sp.Paused != "":
				fmt.Fprintf(&b, "%s", sp.Paused)
			case sp.Degraded != "":
				fmt.Fprintf(&b, "degraded (%d/%d healthy): %s", sp.Healthy, sp.Replicas, sp.Degraded)
			default:
				fmt.Fprintf(&b, "%d to provision, %d to retire", sp.Provision, sp.Retire)
				if sp.Waiting != "" {
					fmt.Fprintf(&b, "; waiting: %s", sp.Waiting)
				}
			}
			if line := b.String(); last[sp.Service] != line {
				last[sp.Service] = line
				fmt.Fprintln(e.stdout, line)
			}
		}
	}
}
