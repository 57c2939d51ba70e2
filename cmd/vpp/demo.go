package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDemoCmd is replaced by the real command.
func newDemoCmd() *cobra.Command {
	return &cobra.Command{Use: "demo", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}
