// Command vpp is the operator toolkit for a virtual power plant: a battery
// fleet simulator, the telemetry ingest, the fleet aggregator, an embedded
// Kafka-protocol broker and a one-process demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/profile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "vpp:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks an error in the command line (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func newRootCmd() *cobra.Command {
	var logLevel, logFormat, configPath, cpuProfile, memProfile string
	var stopProfile func() error
	root := &cobra.Command{
		Use:   "vpp",
		Short: "Operator toolkit for a virtual power plant of distributed batteries",
		Long: `vpp simulates, ingests, aggregates and shows a fleet of distributed
batteries as one virtual power plant.

Every flag can also be set by an environment variable VPP_<FLAG> (upper
case, dashes as underscores: --max-frame-bytes is VPP_MAX_FRAME_BYTES), or in
a YAML file given with --config. The command line wins over the
environment, which wins over the file. Sizes and rates take units: 10k,
1.5M, 64MiB; durations take 30s, 5m.

Exit codes: 0 success (also after SIGINT/SIGTERM), 1 failure, 2 bad command
line or configuration.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applySettings(cmd, configPath); err != nil {
				return err
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			opts := &slog.HandlerOptions{Level: lvl}
			switch logFormat {
			case "text":
				slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
			case "json":
				slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
			default:
				return usageError{fmt.Errorf("--log-format %q: want text or json", logFormat)}
			}
			if cpuProfile != "" {
				stop, err := profile.StartCPU(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				stopProfile = stop
			}
			return nil
		},
		PersistentPostRun: func(*cobra.Command, []string) {
			if stopProfile != nil {
				if err := stopProfile(); err != nil {
					slog.Warn("close CPU profile", "err", err)
				}
			}
			if memProfile != "" {
				if err := profile.WriteAllocs(memProfile); err != nil {
					slog.Warn("write allocation profile", "err", err)
				}
			}
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&configPath, "config", "", "YAML file with flag values (top-level keys for every command, a section per command)")
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file when it ends cleanly (go tool pprof)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentFlags().StringVar(&memProfile, "memprofile", "", "write the allocations of the command, by allocation site, to this file when it ends cleanly (go tool pprof -sample_index=alloc_space)")
	_ = root.PersistentFlags().MarkHidden("memprofile")
	root.AddCommand(
		newSimCmd(nil),
		newIngestCmd(nil),
		newAggregateCmd(nil),
		newBrokerCmd(nil),
		newDemoCmd(),
		newTopCmd(),
		newDispatchCmd(),
		newBenchCmd(nil),
		newTokenCmd(),
		newVersionCmd(),
		newManCmd(),
		newDocsCmd(),
	)
	documentEnv(root)
	return root
}
