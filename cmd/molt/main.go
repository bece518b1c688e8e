// Command molt keeps a fleet of immutable instances in the state that a Git
// repository describes. This package is wiring only: flags, the commands,
// and the construction of the pieces the other packages provide.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signalNotify()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalNotify returns a context cancelled by SIGINT or SIGTERM.
func signalNotify() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error // printed when non-nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// run executes the command line and returns the exit status: 0 success,
// 1 failure (or invalid input), 2 for `molt plan` when something would
// change, 64 for a usage error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == evalCommand {
		return schema.RunChild(stdin, stdout, stderr) // a child of molt (evaluate.go)
	}
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	asJSON := false
	if cmd != nil {
		if f := cmd.Flags().Lookup("output"); f != nil && f.Value.String() == "json" {
			asJSON = true
		}
	}
	code := 1
	var ee *exitError
	var ue *usageError
	switch {
	case errors.As(err, &ee):
		if ee.err == nil {
			return ee.code // the command said all there is to say
		}
		code, err = ee.code, ee.err
	case errors.As(err, &ue):
		code = 64
	case strings.HasPrefix(err.Error(), "unknown command "):
		code = 64 // cobra's own: a subcommand that does not exist
	}
	report(stdout, stderr, err, code, asJSON)
	return code
}

// usageArgs makes the positional-argument checks of cmd and its
// subcommands return usage errors (exit 64).
func usageArgs(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return &usageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }

// env holds the standard streams of one run of the program, and how it
// logs.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// logFormat is --log-format: "text", "json", or "" for text when
	// stderr is a terminal and JSON otherwise.
	logFormat string
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "molt",
		Short: "molt keeps a fleet of immutable instances as a Git repository describes it",
		Long: `molt keeps a fleet of immutable instances as a Git repository describes it:
deploy by merging, roll back by reverting; nothing is changed in place.

Exit status: 0 success, 1 failure, 2 molt plan: something would change,
3 molt apply: a rollout waits (a deploy window, a pause), 64 usage error.
-o json (validate, plan, apply, version) writes one JSON document on
stdout, errors included.

Environment:
  MOLT_STATE_DIR       the default --state-dir (else .molt)
  MOLT_GIT_TOKEN       HTTPS token for the repository (or --git-token-file)
  MOLT_WEBHOOK_SECRET  GitHub webhook secret of serve (or --webhook-secret-file)
  MOLT_GENERIC_TOKEN   bearer token of serve's /hooks/generic (or --generic-token-file)
  MOLT_GITHUB_TOKEN    GitHub token of serve's reports (or --github-token-file)
  NO_COLOR             no colour, whatever the terminal`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.Version = version
	root.SetVersionTemplate(versionLine() + "\n")
	root.PersistentFlags().StringVar(&e.logFormat, "log-format", "",
		"`text` or json: how log lines are written on stderr (default: text when stderr is a terminal, json otherwise)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if f := cmd.Flags().Lookup("log-level"); f != nil {
			if _, err := parseLevel(f.Value.String()); err != nil {
				return err
			}
		}
		if _, err := parseLogFormat(e.logFormat); err != nil {
			return err
		}
		return nil
	}
	root.AddCommand(
		newValidateCmd(e),
		newSchemaCmd(e),
		newVersionCmd(e),
		newPlanCmd(e),
		newApplyCmd(e),
		newDownCmd(e),
		newRouterCmd(e),
		newServeCmd(e),
		newDecideCmd(e, reconciler.ActionPromote),
		newDecideCmd(e, reconciler.ActionAbort),
		newLogsCmd(e),
		newStatusCmd(e),
		newHistoryCmd(e),
	)
	usageArgs(root)
	return root
}
