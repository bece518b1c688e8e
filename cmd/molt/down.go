package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/molt-dev/molt/targets/router"
	"github.com/spf13/cobra"
)

func newDownCmd(e *env) *cobra.Command {
	var stateDir, fleet, level, haproxyAddr string
	var assumeYes bool
	var engines []string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Retire every instance of the state directory and stop the router",
		Long: `down takes every service out of traffic, retires every instance molt
created for the state directory — its processes, and the containers of the
fleets it deployed (containers of other fleets on a shared engine are left
alone) — and stops the router. With --fleet it removes only that fleet's
routes and retires only its instances, and keeps the router serving the
other fleets. On a terminal it asks first, unless --yes is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := logger(e, level)
			if !assumeYes {
				if !isTerminal(e.stdin) {
					return &usageError{errors.New("down retires every instance: pass --yes when not on a terminal")}
				}
				if !yes(e, fmt.Sprintf("Retire every instance in %s and stop the router?", stateDir)) {
					return &exitError{code: 1, err: errors.New("cancelled")}
				}
			}
			release, err := lockState(stateDir)
			if err != nil {
				return err
			}
			defer release()
			w, err := openWorld(ctx, worldOptions{stateDir: stateDir, log: log, dockerEngines: engines, haproxy: haproxyAddr})
			if err != nil {
				return err
			}
			defer w.close()
			perr := w.router.Ping(ctx)
			routerUp := perr == nil
			if errors.Is(perr, router.ErrProtocol) {
				// A router of an older molt: its routes cannot be read;
				// it is stopped with the rest.
				if err := w.router.Shutdown(ctx); err != nil {
					return fmt.Errorf("stop router: %w", err)
				}
				fmt.Fprintln(e.stdout, "router of an older molt stopped")
			}
			if routerUp {
				if err := removeRoutes(ctx, w.router, fleet); err != nil {
					return err
				}
			}
			known, err := knownFleets(stateDir)
			if err != nil {
				return err
			}
			if w.haproxy != nil {
				// molt's servers leave the fleets' HAProxy backends first
				// (drained); the user's own servers are never touched.
				fleets := known
				if fleet != "" {
					fleets = []string{fleet}
				}
				for _, f := range fleets {
					if err := w.haproxy.SetRoutes(ctx, f, nil); err != nil {
						return fmt.Errorf("clear the HAProxy backends of fleet %s: %w", f, err)
					}
				}
			}
			insts, err := w.target.List(ctx)
			if err != nil {
				return err
			}
			var ids []string
			for _, in := range insts {
				if owned(in, fleet, known) {
					ids = append(ids, in.ID)
				}
			}
			// In parallel, bounded; one that fails leaves the others to go
			// and the fleets recorded, so that down can be run again.
			n, err := retireAll(ctx, w.target, ids, retireBound)
			fmt.Fprintf(e.stdout, "retired %d instance(s)\n", n)
			if err != nil {
				return err
			}
			// Nothing of these fleets runs any more: a later apply starts
			// afresh (a failed first rollout then rolls back to nothing,
			// not to what ran before down).
			gone := known
			if fleet != "" {
				gone = []string{fleet}
			}
			for _, name := range gone {
				if err := w.exec.Revisions.Forget(name); err != nil {
					return err
				}
				if err := forgetFleet(stateDir, name); err != nil {
					return err
				}
			}
			if routerUp && fleet == "" {
				if err := w.router.Shutdown(ctx); err != nil {
					return fmt.Errorf("stop router: %w", err)
				}
				fmt.Fprintln(e.stdout, "router stopped")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	cmd.Flags().StringVar(&fleet, "fleet", "", "retire only this fleet's instances (and keep the router)")
	registerDocker(cmd.Flags(), &engines)
	registerHAProxy(cmd.Flags(), &haproxyAddr)
	cmd.Flags().BoolVarP(&assumeYes, "yes", "y", false, "do not ask")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// removeRoutes takes fleet's routes out of the router, or every fleet's
// when fleet is empty; the other fleets' routes stay as they are.
func removeRoutes(ctx context.Context, rc *router.Client, fleet string) error {
	fleets := []string{fleet}
	if fleet == "" {
		var err error
		if fleets, err = rc.Fleets(ctx); err != nil {
			return fmt.Errorf("clear routes: %w", err)
		}
	}
	for _, f := range fleets {
		if err := rc.SetRoutes(ctx, f, nil); err != nil {
			return fmt.Errorf("clear routes of fleet %s: %w", f, err)
		}
	}
	return nil
}
