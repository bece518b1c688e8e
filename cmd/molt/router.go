package main

import (
	"time"

	"github.com/molt-dev/molt/targets/router"
	"github.com/spf13/cobra"
)

func newRouterCmd(e *env) *cobra.Command {
	var stateDir, level string
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the traffic router (the data plane) for a state directory",
		Long: `router serves the exposed services of every fleet of the state directory,
forwarding each to the instances that its fleet's routes list. molt apply
and molt serve start it detached when none runs for their state directory;
run it yourself under a supervisor if you prefer. It keeps serving with its
last routes while no molt runs, and stops on SIGTERM after in-flight
requests finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			srv, err := router.NewServer(router.Options{StateDir: stateDir, Logger: logger(e, level)})
			if err != nil {
				return err
			}
			// Started by molt, its output is STATE/router/router.log:
			// reopened when the file goes, moved aside when it grows.
			go router.KeepLog(cmd.Context(), stateDir, 10*time.Second, router.DefaultLogMax)
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", stateDirDefault(), "molt's state directory")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}
