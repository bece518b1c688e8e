// Command molt keeps a fleet of immutable instances in the state that a Git
// repository describes. This package is wiring only: flags, the commands,
// and the construction of the pieces the other packages provide.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/molt-dev/molt/reconciler"
	"io"
	"os"
	"os/signal"
	"syscall"

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
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "molt: %v\n", ee.err)
		}
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "molt: %v\n", err)
		return 64
	}
	fmt.Fprintf(stderr, "molt: %v\n", err)
	return 1
}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }

// env holds the standard streams of one run of the program.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "molt",
		Short:         "molt keeps a fleet of immutable instances as a Git repository describes it",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
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
	)
	return root
}
