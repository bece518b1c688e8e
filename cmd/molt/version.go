package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// versionInfo is what molt version -o json prints.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	CUE     string `json:"cue"`
}

func buildInfo() versionInfo {
	cue := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "cuelang.org/go" {
				cue = d.Version
			}
		}
	}
	return versionInfo{Version: version, Go: runtime.Version(), CUE: cue}
}

// versionLine is molt version's text output (also molt --version).
func versionLine() string {
	v := buildInfo()
	return fmt.Sprintf("molt %s (%s, cue %s)", v.Version, v.Go, v.CUE)
}

func newVersionCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print molt's version (also molt --version)",
		Long: `version prints molt's version, the Go release it was built with and the
version of CUE it evaluates fleets with.

-o json prints {"version", "go", "cue"}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(e.stdout, buildInfo())
			}
			fmt.Fprintln(e.stdout, versionLine())
			return nil
		},
	}
	outputFlag(cmd, &output, "text", "json")
	return cmd
}
