package main

import (
	"github.com/molt-dev/molt/schema"
	"github.com/spf13/cobra"
)

func newSchemaCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the embedded fleet schema (CUE), for use with cue vet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := e.stdout.Write(schema.Source())
			return err
		},
	}
}
