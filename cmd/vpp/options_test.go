package main

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/spf13/cobra"
)

// parseCmd runs cmd's command line args as the root does (flags, then
// their environment variables and the config file at configPath, "" for
// none) and returns the error of RunE. The command under test was built
// with a runF that captures its options, so nothing runs.
func parseCmd(t *testing.T, cmd *cobra.Command, configPath string, args ...string) error {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return applySettings(c, configPath) }
	return cmd.ExecuteContext(context.Background())
}

// capture returns a runF that stores the options it is given, and a
// pointer to them (nil until runF ran).
func capture[O any]() (func(context.Context, *O) error, **O) {
	var got *O
	return func(_ context.Context, o *O) error { got = o; return nil }, &got
}

// wantUsageError fails unless err is a usage error (exit 2) and runF did
// not run.
func wantUsageError[O any](t *testing.T, args []string, err error, got *O) {
	t.Helper()
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("%q: error %v, want a usage error", args, err)
	}
	if got != nil {
		t.Errorf("%q: runF ran despite the error", args)
	}
}
