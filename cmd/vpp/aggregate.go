package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newAggregateCmd is replaced by the real command.
func newAggregateCmd() *cobra.Command {
	return &cobra.Command{Use: "aggregate", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}
