package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/molt-dev/molt/schema"
	"github.com/spf13/cobra"
)

func newValidateCmd(e *env) *cobra.Command {
	var src sourceFlags
	var stateDir, output string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Validate the fleet in a directory, or at a commit of a repository",
		Long: `Validate checks the CUE in DIR (default: the working directory) against
molt's schema, or with --repo the fleet at a commit of a repository.

Exit status: 0 valid (a one-line summary on stdout), 1 invalid (each error
as FILE:LINE:COL: message on stderr), 64 usage error.

-o json prints {"valid": true, "where", "fleet", "services", "instances"},
or for an invalid fleet the error document {"error": {"message",
"exitCode": 1, "issues": [{"file", "line", "column", "path",
"message"}]}}.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			var fleet *schema.Fleet
			var where string
			var err error
			if src.repo != "" {
				if len(args) > 0 {
					return &usageError{errors.New("validate takes a DIR or --repo, not both")}
				}
				cache := stateDir
				if cache == "" {
					tmp, terr := os.MkdirTemp("", "molt-validate-")
					if terr != nil {
						return terr
					}
					defer os.RemoveAll(tmp)
					cache = tmp
				}
				d, lerr := loadDesired(cmd.Context(), src, cache+"/git", logger(e, "warn"))
				fleet, err = d.fleet, lerr
				where = d.commit.Revision()
			} else {
				dir := "."
				if len(args) > 0 {
					dir = args[0]
				}
				if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
					return fmt.Errorf("%s is not a directory", dir)
				}
				ld, lerr := src.eval.loader(logger(e, "warn"))
				if lerr != nil {
					return lerr
				}
				fleet, err = ld.LoadContext(cmd.Context(), os.DirFS(dir), ".")
				where = dir
			}
			var inv *schema.InvalidError
			if errors.As(err, &inv) {
				return &exitError{code: 1, err: &invalidFleet{where: where, issues: inv.Issues}}
			}
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(e.stdout, validation{Valid: true, Where: where, Fleet: fleet.Name, Services: len(fleet.Services), Instances: fleet.Instances()})
			}
			fmt.Fprintf(e.stdout, "%s: valid: fleet %q, %d service(s), %d instance(s)\n", where, fleet.Name, len(fleet.Services), fleet.Instances())
			return nil
		},
	}
	src.register(cmd.Flags(), "")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "keep the Git cache here (default: a temporary directory)")
	outputFlag(cmd, &output, "text", "json")
	return cmd
}

// validation is what validate -o json prints for a valid fleet.
type validation struct {
	Valid     bool   `json:"valid"`
	Where     string `json:"where"`
	Fleet     string `json:"fleet"`
	Services  int    `json:"services"`
	Instances int    `json:"instances"`
}
