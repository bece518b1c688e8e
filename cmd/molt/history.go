package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// molt status and molt history: the status and events documents (api.go)
// read from a running serve (--server) or from a state directory.

// readFlags say where molt status and molt history read from.
type readFlags struct {
	server   string
	stateDir string
	output   string
	level    string
}

func (f *readFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "a running molt serve (`URL` of its --listen, e.g. http://127.0.0.1:7070)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", stateDirDefault(), "molt's state directory (when no --server)")
	cmd.Flags().StringVar(&f.level, "log-level", "warn", "debug, info, warn or error")
	outputFlag(cmd, &f.output, "text", "json")
}

func (f *readFlags) check(cmd *cobra.Command) error {
	if err := checkOutput(f.output, "text", "json"); err != nil {
		return err
	}
	if f.server != "" && cmd.Flags().Changed("state-dir") {
		return &usageError{errors.New("--server and --state-dir: give one")}
	}
	if f.server != "" {
		u, err := url.Parse(f.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &usageError{fmt.Errorf("--server %q: want an http:// or https:// URL", f.server)}
		}
	}
	return nil
}

// get reads one document of serve's API into v.
func (f *readFlags) get(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(f.server, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", f.server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("ask %s: %w", f.server, err)
	}
	if resp.StatusCode != http.StatusOK {
		var doc jsonError
		if json.Unmarshal(body, &doc) == nil && doc.Error.Message != "" {
			return fmt.Errorf("%s: %s: %s", f.server, resp.Status, doc.Error.Message)
		}
		return fmt.Errorf("%s: %s", f.server, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: not a molt answer: %w", f.server, err)
	}
	return nil
}

func newStatusCmd(e *env) *cobra.Command {
	var f readFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what runs: per fleet and service, its revisions, instances and rollout",
		Long: `status shows, per fleet and service, the live and desired revision and
generation (short spec hash), how many instances are healthy of how many
wanted, the rollout in progress, and each instance below its service (id,
generation, health, role in traffic and weight, address, age).

With --server it asks a running molt serve (GET /api/v1/status). Otherwise
it observes the state directory: the instances, the router's routes, the
revision record and the events, probing health on its own; it starts and
changes nothing. While serve or apply holds the state directory, the
fleet's spec is not read back from the Git cache there, and health is not
probed: ask serve with --server instead.

-o json prints the status document (see GET /api/v1/status).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			var st apiStatus
			var err error
			if f.server != "" {
				err = f.get(cmd.Context(), "/api/v1/status", &st)
			} else {
				st, err = localStatus(cmd.Context(), f.stateDir, logger(e, f.level))
			}
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(e.stdout, st)
			}
			return writeStatus(e.stdout, st)
		},
	}
	f.register(cmd)
	return cmd
}

// writeStatus prints the status as a table, each service's instances
// indented below it.
func writeStatus(w io.Writer, st apiStatus) error {
	if len(st.Fleets) == 0 {
		_, err := fmt.Fprintln(w, "no fleet")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLEET\tSERVICE\tSTRATEGY\tHEALTHY\tLIVE\tDESIRED\tROLLOUT")
	for _, fl := range st.Fleets {
		for _, s := range fl.Services {
			rollout := "-"
			switch {
			case s.Rollout != nil:
				rollout = fmt.Sprintf("%s→%s %d/%d: %s", orDash(s.Rollout.From), s.Rollout.To, s.Rollout.Healthy, s.Rollout.Wanted, s.Rollout.Step)
			case s.Paused != "":
				rollout = "paused"
			case s.Degraded != "":
				rollout = "degraded: " + s.Degraded
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", fl.Name, s.Name, orDash(s.Strategy), s.Healthy, s.Replicas,
				revisionText(s.Live), revisionText(s.Desired), rollout)
			for _, in := range s.Instances {
				role := orDash(in.Role)
				if in.Weight > 0 {
					role += fmt.Sprintf(" %d%%", in.Weight)
				}
				fmt.Fprintf(tw, "\t  %s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Generation, in.Health, role, orDash(in.Address),
					(time.Duration(in.AgeSeconds) * time.Second).String())
			}
		}
	}
	return tw.Flush()
}

func revisionText(r apiRevision) string {
	if r.Generation == "" && r.Revision == "" {
		return "-"
	}
	rev := shortRev(r.Revision)
	if rev == "" {
		return r.Generation
	}
	return r.Generation + " " + rev
}

// shortRev is a revision with its hash cut to 12 digits.
func shortRev(rev string) string {
	if i := strings.LastIndex(rev, "sha1:"); i >= 0 && len(rev) > i+5+12 {
		return rev[:i+5+12]
	}
	return rev
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// historyKinds are the events molt history lists without --all.
var historyKinds = map[string]bool{"deploy": true, "rollback": true, "abort": true}

func newHistoryCmd(e *env) *cobra.Command {
	var f readFlags
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the deploys and rollbacks, newest first",
		Long: `history lists the deploys, rollbacks and aborts that molt apply and molt
serve made, newest first, with the time, fleet, service, kind, revision,
commit author, duration and what happened (a rollback's reason and
figures). --all lists every event (self-heals, drift replacements,
recycles, degraded and paused services, promotions, failures).

With --server it asks a running molt serve (GET /api/v1/events);
otherwise it reads the state directory's events (events.jsonl), without
taking its lock.

-o json prints {"events": [...]} (see GET /api/v1/events).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if limit < 1 {
				return &usageError{fmt.Errorf("--limit %d: want a positive number", limit)}
			}
			var evs apiEvents
			var err error
			if f.server != "" {
				err = f.get(cmd.Context(), "/api/v1/events?limit="+strconv.Itoa(maxEvents), &evs)
			} else {
				evs.Events, err = readEvents(f.stateDir, 0)
			}
			if err != nil {
				return err
			}
			out := apiEvents{Events: []apiEvent{}}
			for _, ev := range evs.Events {
				if (all || historyKinds[ev.Kind]) && len(out.Events) < limit {
					out.Events = append(out.Events, ev)
				}
			}
			if f.output == "json" {
				return writeJSON(e.stdout, out)
			}
			return writeHistory(e.stdout, out.Events)
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "list at most this many")
	cmd.Flags().BoolVar(&all, "all", false, "every event, not only deploys, rollbacks and aborts")
	return cmd
}

// writeHistory prints events as a table.
func writeHistory(w io.Writer, evs []apiEvent) error {
	if len(evs) == 0 {
		_, err := fmt.Fprintln(w, "no history")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tFLEET\tSERVICE\tKIND\tREVISION\tAUTHOR\tDURATION\tWHAT")
	for _, ev := range evs {
		took := "-"
		if ev.DurationSecs > 0 {
			took = time.Duration(ev.DurationSecs * float64(time.Second)).Round(time.Millisecond).String()
		}
		what := ev.Message
		if ev.PullRequest > 0 {
			what += fmt.Sprintf(" (#%d)", ev.PullRequest)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Fleet, orDash(ev.Service),
			ev.Kind, orDash(shortRev(ev.Revision)), orDash(ev.Author), took, what)
	}
	return tw.Flush()
}
