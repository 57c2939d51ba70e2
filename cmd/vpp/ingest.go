package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newIngestCmd is replaced by the real command.
func newIngestCmd() *cobra.Command {
	return &cobra.Command{Use: "ingest", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}
