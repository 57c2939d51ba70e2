package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newSimCmd is replaced by the real command.
func newSimCmd() *cobra.Command {
	return &cobra.Command{Use: "sim", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}
