package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/bench"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/units"
)

func newBenchCmd() *cobra.Command {
	var (
		kf      kafkaFlags
		cfg     bench.Config
		devices = units.Count{V: 20_000}
		records = units.Count{V: 500_000}
		rates   string
		cpuProf string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline against what the Kafka leg alone can move",
		Long: `Measure, on this machine:

  floor        raw sarama produce → consume of the same record bytes and keys
               with ingest's producer settings: the limit the pipeline
               cannot beat
  end to end   sim → ingest → Kafka → aggregate at increasing rates (--rates),
               each for --step on fresh topics; a rate is sustained when the
               simulator and the aggregators both reach 95 % of it and the
               backlog drains within 2 s of the simulator stopping
  freshness    reading timestamp → the reading reflected in the published
               state, p50/p99/max per step
  CPU          process CPU per reading (sim, ingest, aggregate and, when
               embedded, the broker share this process)

It runs against an embedded broker unless --brokers is given; kfake serves
every request in one loop, so real Kafka is the number that counts.`,
		Example: `  # quick run on the embedded broker
  vpp bench --step 10s --rates 10k,50k

  # against a real broker
  vpp bench --brokers 127.0.0.1:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Kafka = kf.options("vpp-bench")
			cfg.Kafka.Prefix = "bench."
			if !cmd.Flags().Changed("brokers") {
				b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
				if err != nil {
					return err
				}
				defer b.Close()
				cfg.Kafka.Brokers = []string{b.Addr()}
				fmt.Fprintf(cmd.ErrOrStderr(), "embedded broker on %s\n", b.Addr())
			}
			for _, r := range strings.Split(rates, ",") {
				v, err := units.ParseCount(r)
				if err != nil {
					return usageError{fmt.Errorf("--rates: %w", err)}
				}
				cfg.Rates = append(cfg.Rates, v)
			}
			cfg.Devices = int(devices.V)
			cfg.FloorRecords = int(records.V)
			cfg.Progress = cmd.ErrOrStderr()
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			if cpuProf != "" {
				f, err := os.Create(cpuProf)
				if err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			res, err := bench.Run(cmd.Context(), cfg)
			if res != nil {
				printBench(cmd.OutOrStdout(), res)
			}
			return err
		},
	}
	kf.register(cmd.Flags())
	cmd.Flags().DurationVar(&cfg.Step, "step", 30*time.Second, "how long each end-to-end rate runs")
	cmd.Flags().Var(&devices, "devices", "simulated devices")
	cmd.Flags().Var(&records, "floor-records", "records of the floor measurement")
	cmd.Flags().StringVar(&rates, "rates", "10k,25k,50k,100k,200k,400k", "end-to-end rates to try, ascending; stops at the first not sustained")
	cmd.Flags().StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	return cmd
}

// printBench prints the result as one table.
func printBench(w io.Writer, r *bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tvalue\tnote\n")
	fmt.Fprintf(tw, "floor\t%s records/s\traw sarama produce → consume, %d-byte readings, broker %s\n", units.FormatCount(r.FloorRate), r.FloorBytes, r.Broker)
	if best := r.MaxSustained(); best != nil {
		fmt.Fprintf(tw, "end-to-end throughput\t%s readings/s\t%.0f %% of the floor, sustained for the step\n",
			units.FormatCount(best.Applied), 100*best.Applied/r.FloorRate)
	} else {
		fmt.Fprintf(tw, "end-to-end throughput\tn/a\tno step was sustained\n")
	}
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "at %s/s requested\tsim %s/s, applied %s/s\tsustained %v, drained in %v, freshness p50 %v p99 %v max %v (%d samples), CPU %v/reading\n",
			units.FormatCount(s.Requested), units.FormatCount(s.SimRate), units.FormatCount(s.Applied), s.Sustained,
			s.DrainTime.Round(time.Millisecond), s.Freshness.P50, s.Freshness.P99, s.Freshness.Max, s.Freshness.N, s.CPUPerRead)
	}
	for _, s := range r.Steps {
		if s.Requested > 0 {
			fmt.Fprintf(tw, "sim accuracy at %s/s\t%.3f\tachieved ÷ requested\n", units.FormatCount(s.Requested), s.SimRate/s.Requested)
		}
	}
	tw.Flush()
}
