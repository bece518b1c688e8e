package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/router"
	"github.com/spf13/cobra"
)

func newPlanCmd(e *env) *cobra.Command {
	var src sourceFlags
	var stateDir, output, level string
	var engines []string
	var haproxyAddr string
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what applying a commit, or a working tree, would change, per service",
		Long: `plan validates the fleet and compares it with the live fleet of the state
directory. It changes nothing.

Without DIR it plans a commit of a repository (--repo, default the Git
repository in the working directory, at --ref, default the remote's default
branch), and says on stderr which commit it planned; uncommitted edits are
not in a commit, and plan says so when the working tree has some. With DIR
it plans the fleet in that directory as it is on disk, uncommitted edits
included, as terraform plan does.

Exit status: 0 nothing would change, 2 something would, 1 error (an invalid
fleet prints its errors as FILE:LINE:COL: message), 64 usage error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := logger(e, level)
			var write func(reconciler.Plan) error
			switch output {
			case "text":
				write = func(p reconciler.Plan) error { return p.WriteText(e.stdout) }
			case "json":
				write = func(p reconciler.Plan) error { return p.WriteJSON(e.stdout) }
			case "markdown", "md":
				write = func(p reconciler.Plan) error { return p.WriteMarkdown(e.stdout) }
			default:
				return &usageError{fmt.Errorf("unknown output %q: want text, json or markdown", output)}
			}
			var d desiredState
			var err error
			if len(args) == 1 {
				if cmd.Flags().Changed("repo") || cmd.Flags().Changed("ref") || cmd.Flags().Changed("path") {
					return &usageError{errors.New("plan takes a DIR or --repo/--ref/--path, not both")}
				}
				d, err = loadWorkingTree(ctx, src.eval, args[0], log)
			} else {
				d, err = loadDesired(ctx, src, filepath.Join(stateDir, "git"), log)
				if err == nil && output == "text" {
					fmt.Fprintf(e.stderr, "planning %s of %s: %q\n", d.commit.Revision(), src.repo, subject(d.commit.Message))
					if dirty := uncommitted(src.repo, src.path); dirty != "" {
						fmt.Fprintf(e.stderr, "note: %s has uncommitted changes (%s) that this plan does not include; molt plan DIR plans the working tree\n", src.repo, dirty)
					}
				}
			}
			if err := invalid(e, err); err != nil {
				return err
			}
			p, err := planOnce(ctx, worldOptions{stateDir: stateDir, log: log, dockerEngines: engines, haproxy: haproxyAddr}, d)
			if err != nil {
				return err
			}
			if err := write(p); err != nil {
				return err
			}
			if p.Changes() {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	src.register(cmd.Flags(), ".")
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	registerDocker(cmd.Flags(), &engines)
	registerHAProxy(cmd.Flags(), &haproxyAddr)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, json or markdown (json: one document on stdout, errors included)")
	cmd.Flags().StringVar(&level, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

// subject is the first line of a commit message.
func subject(msg string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return s
}

// loadWorkingTree validates the fleet in dir as it is on disk. Its
// revision names the directory: it is no commit, so nothing can be read
// back from it later.
func loadWorkingTree(ctx context.Context, ev evalFlags, dir string, log *slog.Logger) (desiredState, error) {
	ld, err := ev.loader(log)
	if err != nil {
		return desiredState{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return desiredState{}, err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return desiredState{}, &usageError{fmt.Errorf("%s is not a directory", dir)}
	}
	fleet, err := ld.LoadContext(ctx, os.DirFS(abs), ".")
	if err != nil {
		return desiredState{}, err
	}
	return desiredState{fleet: fleet, revision: "worktree:" + abs}, nil
}

// uncommitted describes the uncommitted changes under path of the local
// repository at repo ("3 file(s)"), or "" when there are none or repo is
// not a local working tree.
func uncommitted(repo, path string) string {
	if strings.Contains(repo, "://") || strings.Contains(repo, "@") {
		return ""
	}
	r, err := gogit.PlainOpenWithOptions(repo, &gogit.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return ""
	}
	wt, err := r.Worktree()
	if err != nil {
		return ""
	}
	st, err := wt.Status()
	if err != nil {
		return ""
	}
	absRepo, _ := filepath.Abs(repo)
	prefix, _ := filepath.Rel(wt.Filesystem.Root(), filepath.Join(absRepo, path))
	prefix = filepath.ToSlash(prefix)
	n := 0
	for file, fs := range st {
		if fs.Worktree == gogit.Unmodified && fs.Staging == gogit.Unmodified {
			continue
		}
		if prefix == "." || file == prefix || strings.HasPrefix(file, prefix+"/") {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d file(s)", n)
}

// invalid turns the issues of an invalid fleet into exit status 1 (the
// issues printed on stderr, or in the JSON error); other errors pass
// through.
func invalid(e *env, err error) error {
	var inv *schema.InvalidError
	if errors.As(err, &inv) {
		return &exitError{code: 1, err: &invalidFleet{where: "invalid fleet", issues: inv.Issues}}
	}
	return err
}

// planOnce observes the live fleet (without starting anything) and plans.
func planOnce(ctx context.Context, o worldOptions, d desiredState) (reconciler.Plan, error) {
	w, err := openWorld(ctx, o)
	if err != nil {
		return reconciler.Plan{}, err
	}
	defer w.close()
	return planWith(ctx, w, d)
}

// planWith plans d against the live fleet of w without changing anything:
// its own prober, and a front it only reads. It is the executor's own
// first pass, so it shows what apply would do first.
func planWith(ctx context.Context, w *world, d desiredState) (reconciler.Plan, error) {
	x := *w.exec
	x.Front = w.readFront()
	x.Prober = reconciler.NewProber()
	x.Prober.Eager = true // verdicts as apply would reach them
	x.Specs = d.specs
	p, err := x.Plan(ctx, d.fleet, d.revision)
	if err != nil {
		return p, err
	}
	noteListenConflicts(ctx, w.router, &p)
	return p, nil
}

// noteListenConflicts says, in the plan, where a route of the plan would
// listen on an address a route of another fleet holds: apply would be
// refused there (the router serves one route per address).
func noteListenConflicts(ctx context.Context, rc *router.Client, p *reconciler.Plan) {
	if rc.Ping(ctx) != nil {
		return
	}
	fleets, err := rc.Fleets(ctx)
	if err != nil {
		return
	}
	held := map[string]string{}
	for _, f := range fleets {
		if f == p.Fleet {
			continue
		}
		routes, err := rc.Routes(ctx, f)
		if err != nil {
			continue
		}
		for _, r := range routes {
			if r.Listen != "" {
				held[r.Listen] = fmt.Sprintf("fleet %s, service %s", f, r.Service)
			}
		}
	}
	for i := range p.Services {
		sp := &p.Services[i]
		if sp.Route == nil || sp.Route.Listen == "" {
			continue
		}
		if who, ok := held[sp.Route.Listen]; ok {
			sp.Notes = append(sp.Notes, fmt.Sprintf("listen %s is used by %s: apply will refuse this route", sp.Route.Listen, who))
		}
	}
}

// readOnlyFront reads the fleet's routes when a router runs and none
// otherwise; it never changes anything.
type readOnlyFront struct{ c *router.Client }

func (r readOnlyFront) Routes(ctx context.Context, fleet string) ([]targets.Route, error) {
	if r.c.Ping(ctx) != nil {
		return nil, nil
	}
	return r.c.Routes(ctx, fleet)
}

func (readOnlyFront) SetRoutes(context.Context, string, []targets.Route) error {
	return errors.New("read-only")
}

func (readOnlyFront) Drain(context.Context, []string) error { return errors.New("read-only") }

// Counts reads the router's counts (canary and verification decisions are
// planned from them as apply would).
func (r readOnlyFront) Counts(ctx context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error) {
	if r.c.Ping(ctx) != nil {
		return nil, since, nil
	}
	return r.c.Counts(ctx, fleet, since)
}

var (
	_ reconciler.Front   = readOnlyFront{}
	_ reconciler.Counter = readOnlyFront{}
	_ reconciler.Counter = (*router.Client)(nil)
)
