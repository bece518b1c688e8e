package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/spf13/cobra"
)

// newDecideCmd builds `molt promote` and `molt abort`: they record an
// operator's decision on a rollout in the state directory, where apply and
// serve read it on their next pass (so they work with or without a running
// server, and survive restarts).
func newDecideCmd(e *env, action reconciler.Action) *cobra.Command {
	var stateDir, fleet string
	short, long := "Let a paused rollout go on", `promote records that the paused rollout of SERVICE may go on (see
rollout.pause): apply and serve take it up on their next pass.`
	if action == reconciler.ActionAbort {
		short, long = "Stop a rollout under way and roll it back", `abort records that the rollout of SERVICE under way must stop: apply and
serve roll it back on their next pass, and record the revision as failed.`
	}
	cmd := &cobra.Command{
		Use:   string(action) + " SERVICE",
		Short: short,
		Long: long + `

With several fleets in the state directory, --fleet says which one.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return &usageError{fmt.Errorf("%s takes one SERVICE", action)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if fleet == "" {
				known, err := knownFleets(stateDir)
				if err != nil {
					return err
				}
				switch len(known) {
				case 0:
					return &usageError{fmt.Errorf("state directory %s has deployed no fleet: pass --fleet", stateDir)}
				case 1:
					fleet = known[0]
				default:
					return &usageError{fmt.Errorf("state directory %s holds several fleets (%s): pass --fleet", stateDir, strings.Join(known, ", "))}
				}
			} else if known, err := knownFleets(stateDir); err == nil && !slices.Contains(known, fleet) {
				return &usageError{fmt.Errorf("state directory %s has not deployed fleet %q", stateDir, fleet)}
			}
			by := cmp.Or(os.Getenv("USER"), "an operator")
			d := reconciler.Decision{Fleet: fleet, Service: args[0], Action: action, By: by, At: time.Now().UTC()}
			if err := reconciler.NewDecisions(stateDir, nil).Record(d); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "recorded: %s %s (fleet %s); apply or serve takes it up on its next pass\n", action, args[0], fleet)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	cmd.Flags().StringVar(&fleet, "fleet", "", "the fleet of SERVICE (needed when the state directory holds several)")
	return cmd
}
