package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/bench"
	"github.com/vppctl/vpp/internal/flagval"
)

// benchSweepOptions are the parsed flags of vpp bench sweep.
type benchSweepOptions struct {
	kafka   kafkaFlags
	cfg     bench.SweepConfig
	devices string
	rate    flagval.Count
	runs    int
	// embedded starts vpp broker as a child process (no --brokers).
	embedded bool

	out, errOut io.Writer // the table; progress
}

// newBenchSweepCmd is `vpp bench sweep`: CPU per reading, memory per
// device and reader catch-up against the fleet size. runF, when not nil,
// runs instead of runBenchSweep with the parsed options (for tests).
func newBenchSweepCmd(runF func(context.Context, *benchSweepOptions) error) *cobra.Command {
	def := bench.DefaultSweepConfig()
	o := &benchSweepOptions{cfg: def, rate: flagval.Count{V: def.Rate}}
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Measure CPU per reading, memory per device and reader catch-up against the fleet size",
		Long: `sweep runs the pipeline at one rate (--rate, for --step) at each fleet size of
--devices, and prints one table with a row per fleet size. For each size, on
fresh topics: vpp ingest --insecure and vpp aggregate --offline-after 5m
start as child processes, the simulator runs in this process with the fleet
shaped as 4 regions × 5 substations × (devices ÷ --devices-per-site ÷ 20)
sites, and once the step has drained, vpp top --once runs as a child process
and loads the whole fleet from the state topic. (Ingest runs without tokens:
a token lists its connection's sites and is at most 8 KiB, which the
simulator's connections exceed at large fleets.)

Per fleet size:
  acked, applied  readings/s acknowledged to the simulator and applied to
                  the twins over the step
  sustained       as in vpp bench: the simulator and the aggregator reach
                  95 % of the rate, the backlog at the end is under one
                  second of readings and it drains within 2 s
  CPU/reading     of the ingest and the aggregate process, from /proc, with
                  the ratio to the smallest fleet's
  RSS             of ingest and aggregate at the end of the step and at
                  their peak (VmRSS, VmHWM), and the peak ÷ devices
  top --once      wall time of vpp top --once from start to exit (connect,
                  read the state topic to its high-water marks, print) and
                  its peak RSS ÷ devices; the devices it showed must be the
                  fleet

Without --brokers the embedded broker runs as a child process (vpp broker);
kfake serves every request in one loop, so real Kafka is the number that
counts. --runs N repeats the sweep and prints the median of each figure.`,
		Example: `  # the figures of docs/performance.md: real Kafka, three runs
  vpp bench sweep --brokers 127.0.0.1:39092 --devices 20k,200k,1M --runs 3

  # a quick look on the embedded broker
  vpp bench sweep --devices 2k,20k --rate 10k --step 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kopts, err := benchKafka(&o.kafka)
			if err != nil {
				return err
			}
			o.cfg.Kafka = kopts
			counts, err := parseCounts("--devices", o.devices)
			if err != nil {
				return err
			}
			o.cfg.Fleets = nil
			for _, c := range counts {
				o.cfg.Fleets = append(o.cfg.Fleets, int(math.Round(c)))
			}
			o.cfg.Rate = o.rate.V
			switch {
			case o.runs < 1:
				return usageError{fmt.Errorf("--runs %d: must be >= 1", o.runs)}
			case o.cfg.DevicesPerSite < 1:
				return usageError{fmt.Errorf("--devices-per-site %d: must be >= 1", o.cfg.DevicesPerSite)}
			case o.cfg.Rate < 1:
				return usageError{fmt.Errorf("--rate %v: must be >= 1 reading/s", o.cfg.Rate)}
			case o.cfg.Step <= 0:
				return usageError{fmt.Errorf("--step %v: must be positive", o.cfg.Step)}
			}
			if err := o.cfg.Validate(); err != nil {
				return usageError{fmt.Errorf("--devices: %w", err)}
			}
			o.embedded = !cmd.Flags().Changed("brokers")
			o.out, o.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runBenchSweep(cmd.Context(), o)
		},
	}
	o.kafka.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&o.devices, "devices", "20k,200k,1M", "fleet sizes in devices, ascending, comma-separated")
	f.IntVar(&o.cfg.DevicesPerSite, "devices-per-site", def.DevicesPerSite, "devices of each simulated site")
	f.Var(&o.rate, "rate", "readings/s of every fleet size")
	f.DurationVar(&o.cfg.Step, "step", def.Step, "how long each fleet size runs at --rate")
	f.IntVar(&o.cfg.Conns, "conns", 0, "simulator WebSocket connections (default min(devices, 256))")
	f.DurationVar(&o.cfg.OfflineAfter, "offline-after", def.OfflineAfter, "the aggregator's --offline-after")
	f.DurationVar(&o.cfg.FlushInterval, "flush-interval", 0, "the aggregator's --flush-interval (default: its own)")
	f.DurationVar(&o.cfg.CatchUpTimeout, "catch-up-timeout", def.CatchUpTimeout, "vpp top --once's --catch-up-timeout")
	f.IntVar(&o.cfg.BrokerPID, "broker-pid", 0, "the broker's process ID, for its CPU (default: the process listening on the first broker's port)")
	f.IntVar(&o.runs, "runs", 1, "repeat the sweep and print the median of each figure")
	return cmd
}

// runBenchSweep starts the embedded broker unless o names brokers, runs
// the sweep o.runs times and prints the median.
func runBenchSweep(ctx context.Context, o *benchSweepOptions) error {
	cfg := o.cfg
	cfg.Progress = o.errOut
	cfg.Logger = slog.New(slog.DiscardHandler)
	stop, err := benchBroker(ctx, o.embedded, &cfg.Kafka, &cfg.BrokerPID, o.errOut)
	if err != nil {
		return err
	}
	defer stop()
	var runs [][]bench.SweepPoint
	for i := range o.runs {
		if o.runs > 1 {
			fmt.Fprintf(o.errOut, "run %d of %d\n", i+1, o.runs)
		}
		pts, err := bench.Sweep(ctx, cfg)
		if err != nil {
			if len(pts) > 0 {
				printBenchSweep(o.out, &cfg, pts, 1)
			}
			return err
		}
		runs = append(runs, pts)
	}
	printBenchSweep(o.out, &cfg, bench.MedianSweep(runs), o.runs)
	return nil
}

// printBenchSweep prints the sweep as one table, a row per fleet size,
// each CPU figure with its ratio to the first (smallest) fleet's.
func printBenchSweep(w io.Writer, cfg *bench.SweepConfig, pts []bench.SweepPoint, runs int) {
	if runs > 1 {
		fmt.Fprintf(w, "median of %d runs; ", runs)
	}
	fmt.Fprintf(w, "%s readings/s for %v per fleet size, %d devices per site, broker %s\n",
		flagval.FormatCount(cfg.Rate), cfg.Step, cfg.DevicesPerSite, strings.Join(cfg.Kafka.Brokers, ","))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	fmt.Fprintln(tw, "devices\tsites\tacked/s\tapplied/s\tsustained\tingest CPU/reading\taggregate CPU/reading\tingest RSS end/peak\tB/device\taggregate RSS end/peak\tB/device\ttop --once\ttop RSS peak\tB/device\t")
	us := func(d time.Duration) string {
		if d <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	}
	ratio := func(d, base time.Duration) string {
		if d <= 0 || base <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.2f×)", float64(d)/float64(base))
	}
	mb := func(b int64) string { return fmt.Sprintf("%.0f", float64(b)/1e6) }
	for i := range pts {
		p, base := &pts[i], &pts[0]
		s := &p.Step
		sustained := "no"
		if s.Sustained {
			sustained = "yes"
		}
		sustained += fmt.Sprintf(" (%.1f s)", s.DrainTime.Seconds())
		top := fmt.Sprintf("%.2f s", p.CatchUp.Seconds())
		if p.ReaderDevices != int64(p.Devices) {
			top += fmt.Sprintf(" (%d devices!)", p.ReaderDevices)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\t%s%s\t%s/%s MB\t%.0f\t%s/%s MB\t%.0f\t%s\t%s MB\t%.0f\t\n",
			groupDigits(p.Devices), groupDigits(p.Sites),
			flagval.FormatCount(math.Round(s.AckedRate)), flagval.FormatCount(math.Round(s.Applied)), sustained,
			us(s.IngestCPU), ratio(s.IngestCPU, base.Step.IngestCPU),
			us(s.AggregateCPU), ratio(s.AggregateCPU, base.Step.AggregateCPU),
			mb(s.IngestRSS), mb(s.IngestPeakRSS), p.PerDevice(s.IngestPeakRSS),
			mb(s.AggregateRSS), mb(s.AggregatePeakRSS), p.PerDevice(s.AggregatePeakRSS),
			top, mb(p.ReaderPeakRSS), p.PerDevice(p.ReaderPeakRSS))
	}
}

// groupDigits formats n with thousands separators: 1000000 → "1,000,000".
func groupDigits(n int) string {
	if n < 0 {
		return "-" + groupDigits(-n)
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
