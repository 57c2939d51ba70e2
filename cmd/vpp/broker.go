package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newBrokerCmd is replaced by the real command.
func newBrokerCmd() *cobra.Command {
	return &cobra.Command{Use: "broker", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}
