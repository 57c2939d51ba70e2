package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/bench"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/kafka"
)

// benchPrefix is the topic prefix of vpp bench when --topic-prefix is left
// at the default, so a measurement never writes to a live pipeline's
// topics.
const benchPrefix = "bench."

// benchOptions are the parsed flags of vpp bench.
type benchOptions struct {
	kafka   kafkaFlags
	cfg     bench.Config
	devices flagval.Count
	records flagval.Count
	maxRate flagval.Count
	readerN flagval.Count
	twinN   flagval.Count
	rates   string
	runs    int
	// embedded starts vpp broker as a child process (no --brokers).
	embedded bool

	out, errOut io.Writer // the table; progress
}

// newBenchCmd is `vpp bench`; runF, when not nil, runs instead of runBench
// with the parsed options (for tests).
func newBenchCmd(runF func(context.Context, *benchOptions) error) *cobra.Command {
	def := bench.DefaultConfig()
	o := &benchOptions{
		cfg:     def,
		devices: flagval.Count{V: float64(def.Devices)},
		records: flagval.Count{V: float64(def.FloorRecords)},
		maxRate: flagval.Count{V: def.MaxRate},
		readerN: flagval.Count{V: float64(def.ReaderDevices)},
		twinN:   flagval.Count{V: float64(def.TwinDevices)},
	}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline against what the Kafka leg alone can move",
		Long: `Measure, on this machine, and print one table:

  floor          raw sarama produce → consume of the same record bytes and
                 keys with ingest's producer settings: the limit the pipeline
                 cannot beat
  end to end     sim → ingest → Kafka → aggregate, each rate for --step on
                 fresh topics: 10k, 25k, 50k, 100k readings/s, then +50 % per
                 step until one is not sustained, then up to three
                 bisections (to within 8 %). A rate is sustained when the
                 simulator and the aggregator both reach 95 % of it, the
                 backlog at the end is under one second of readings and it
                 drains within 2 s
  freshness      reading timestamp (its scheduled send time) → the reading
                 reflected in a state record read back from Kafka: p50, p99,
                 p99.9, max at 10k/s and at 50 % and 90 % of the maximum
  CPU            per reading, of the ingest and aggregate processes and of
                 the broker, from /proc; ingest + aggregate against the
                 broker's CPU per record
  twin memory    heap per device with --twin-devices twins
  reader cost    folding --reader-devices devices' state from Kafka into the
                 fleet tree; one dashboard frame (200×60) over that fleet
  sim accuracy   achieved ÷ requested rate at 10k, 100k and the maximum

Ingest and aggregate run as child processes of this binary (vpp ingest, vpp
aggregate), as in a deployment; the simulator runs in this process. Without
--brokers the embedded broker runs as a child process too (vpp broker); with
--brokers, the broker's CPU is read from the process listening on the first
broker's port when it runs on this machine (or --broker-pid). kfake serves
every request in one loop, so real Kafka is the number that counts.

--runs N repeats everything and prints the median of each figure.`,
		Example: `  # the figures of docs/performance.md: real Kafka, three runs, 30 s steps
  vpp bench --brokers 127.0.0.1:9092 --runs 3

  # a quick look on the embedded broker
  vpp bench --step 5s --rates 10k,50k --twin-devices 100k`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kopts, err := benchKafka(&o.kafka)
			if err != nil {
				return err
			}
			o.cfg.Kafka = kopts
			if o.cfg.Rates, err = parseCounts("--rates", o.rates); err != nil {
				return err
			}
			if o.runs < 1 {
				return usageError{fmt.Errorf("--runs %d: must be >= 1", o.runs)}
			}
			if o.cfg.DevicesPerSite < 0 {
				return usageError{fmt.Errorf("--devices-per-site %d: must be >= 1", o.cfg.DevicesPerSite)}
			}
			o.cfg.Devices = int(o.devices.V)
			o.cfg.FloorRecords = int(o.records.V)
			o.cfg.MaxRate = o.maxRate.V
			o.cfg.ReaderDevices, o.cfg.TwinDevices = int(o.readerN.V), int(o.twinN.V)
			o.embedded = !cmd.Flags().Changed("brokers")
			o.out, o.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runBench(cmd.Context(), o)
		},
	}
	o.kafka.register(cmd.Flags())
	f := cmd.Flags()
	f.DurationVar(&o.cfg.Step, "step", def.Step, "how long each end-to-end rate runs")
	f.Var(&o.devices, "devices", "simulated devices")
	f.IntVar(&o.cfg.DevicesPerSite, "devices-per-site", def.DevicesPerSite, "shape the fleet as 4 regions × 5 substations × devices ÷ this ÷ 20 sites (default: the simulator's 500 sites)")
	f.BoolVar(&o.cfg.Insecure, "insecure", false, "ingest without device tokens (needed from about 100k devices: a token lists its connection's sites, at most 8 KiB)")
	f.IntVar(&o.cfg.Conns, "conns", def.Conns, "simulator WebSocket connections (default min(devices, 256))")
	f.Var(&o.records, "floor-records", "records of the floor measurement")
	f.StringVar(&o.rates, "rates", "", "end-to-end rates to try instead of the search, ascending (e.g. 10k,50k); stops at the first not sustained")
	f.Var(&o.maxRate, "max-rate", "highest rate the search tries")
	f.DurationVar(&o.cfg.FlushInterval, "flush-interval", def.FlushInterval, "the aggregator's --flush-interval (default: its own)")
	f.Var(&o.readerN, "reader-devices", "devices of the reader-cost measurement (0: skip)")
	f.Var(&o.twinN, "twin-devices", "devices of the twin-memory measurement (0: skip)")
	f.IntVar(&o.cfg.BrokerPID, "broker-pid", def.BrokerPID, "the broker's process ID, for its CPU (default: the process listening on the first broker's port)")
	f.IntVar(&o.cfg.FreshnessSample, "freshness-sample", def.FreshnessSample, "read the freshness of 1 site in N (every reading of those sites), so that reading state takes less CPU from the pipeline measured")
	f.IntVar(&o.runs, "runs", 1, "repeat the whole measurement and print the median of each figure")
	f.StringVar(&o.cfg.ProfileDir, "profile-dir", "", "write CPU and allocation profiles of the ingest and aggregate processes, and a CPU profile of the simulator, of every step into this directory")
	cmd.AddCommand(newBenchConnsCmd(nil), newBenchSweepCmd(nil))
	return cmd
}

// benchKafka returns the Kafka options of a vpp bench command's flags:
// client ID vpp-bench, and the bench. prefix when --topic-prefix is left
// at the default.
func benchKafka(f *kafkaFlags) (kafka.Options, error) {
	o := f.options("vpp-bench")
	if err := o.Security.Validate(); err != nil {
		return o, usageError{err}
	}
	if o.Prefix == kafka.DefaultPrefix {
		o.Prefix = benchPrefix
	}
	return o, nil
}

// parseCounts parses a comma-separated list of counts ("10k,50k") of
// flag; an empty list is nil.
func parseCounts(flag, list string) ([]float64, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []float64
	for _, r := range strings.Split(list, ",") {
		v, err := flagval.ParseCount(r)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", flag, err)}
		}
		out = append(out, v)
	}
	return out, nil
}

// benchBroker starts the embedded broker (vpp broker, a child process)
// when embedded and points opts and brokerPID at it; stop stops it. Not
// embedded, it does nothing.
func benchBroker(ctx context.Context, embedded bool, opts *kafka.Options, brokerPID *int, progress io.Writer) (stop func(), err error) {
	if !embedded {
		return func() {}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the vpp binary: %w", err)
	}
	b, addr, err := bench.StartBroker(ctx, exe)
	if err != nil {
		return nil, err
	}
	opts.Brokers = []string{addr}
	*brokerPID = b.PID()
	fmt.Fprintf(progress, "embedded broker (vpp broker, pid %d) on %s\n", b.PID(), addr)
	return func() { _ = b.Stop(30 * time.Second) }, nil
}

// runBench starts the embedded broker unless o names brokers, runs the
// measurement o.runs times and prints the median.
func runBench(ctx context.Context, o *benchOptions) error {
	cfg := o.cfg
	cfg.Progress = o.errOut
	cfg.Logger = slog.New(slog.DiscardHandler)
	stop, err := benchBroker(ctx, o.embedded, &cfg.Kafka, &cfg.BrokerPID, o.errOut)
	if err != nil {
		return err
	}
	defer stop()
	var results []*bench.Result
	for i := range o.runs {
		if o.runs > 1 {
			fmt.Fprintf(o.errOut, "run %d of %d\n", i+1, o.runs)
		}
		res, err := bench.Run(ctx, cfg)
		if err != nil {
			if res != nil {
				printBench(o.out, res, 1)
			}
			return err
		}
		results = append(results, res)
	}
	printBench(o.out, bench.Median(results), o.runs)
	return nil
}

// printBench prints the result as one table.
func printBench(w io.Writer, r *bench.Result, runs int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	row := func(figure, value, note string, a ...any) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", figure, value, fmt.Sprintf(note, a...))
	}
	us := func(d time.Duration) string {
		if d <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/1e6) }
	if runs > 1 {
		fmt.Fprintf(tw, "median of %d runs\t\t\n", runs)
	}
	row("figure", "value", "how")
	row("floor", flagval.FormatCount(r.FloorRate)+" records/s",
		"raw sarama produce → consume, %d-byte readings keyed by site, broker %s; CPU/record: broker %s, sarama producer + consumer %s",
		r.FloorBytes, r.Broker, us(r.FloorBrokerCPU), us(r.FloorClientCPU))
	best := r.MaxSustained()
	if best == nil {
		row("end-to-end throughput", "n/a", "no step was sustained")
	} else {
		row("end-to-end throughput", flagval.FormatCount(best.Applied)+" readings/s",
			"%.0f %% of the floor; sim → ingest → Kafka → aggregate at %s/s requested, lag bounded", 100*best.Applied/r.FloorRate, flagval.FormatCount(best.Requested))
	}
	fresh := func(label string, s *bench.Step) {
		if s == nil {
			return
		}
		row("freshness at "+label, fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, max %s ms", ms(s.Freshness.P50), ms(s.Freshness.P99), ms(s.Freshness.P999), ms(s.Freshness.Max)),
			"%s/s requested, %d readings (1 site in %d), from scheduled send time to state read back", flagval.FormatCount(s.Requested), s.Freshness.N, r.FreshnessSample)
	}
	fresh("10k/s", r.At(10_000))
	fresh("50 % of max", r.Half)
	fresh("90 % of max", r.Ninety)
	if best != nil {
		row("ingest cost", us(best.IngestCPU)+"/reading", "vpp ingest process CPU (decode, validate, buffer, produce, acks) at the maximum; %s RSS", flagval.FormatBytes(best.IngestRSS))
		row("aggregate cost", us(best.AggregateCPU)+"/reading", "vpp aggregate process CPU (consume, twins, rollups, state) at the maximum; %s RSS", flagval.FormatBytes(best.AggregateRSS))
		row("ingest + aggregate vs broker", us(best.PipelineCPU())+" vs "+us(best.BrokerCPU),
			"CPU per reading at the maximum; the broker per record in the floor: %s", us(r.FloorBrokerCPU))
	}
	if r.TwinBytes > 0 {
		row("twin memory", fmt.Sprintf("%.0f bytes/device", r.TwinBytes), "heap after GC ÷ devices, %s devices", flagval.FormatCount(float64(r.TwinDevices)))
	}
	if r.ReaderDevices > 0 {
		row("reader fold", fmt.Sprintf("%.0f ms", float64(r.ReaderFold)/1e6), "%s devices' state from Kafka into the fleet tree", flagval.FormatCount(float64(r.ReaderDevices)))
		row("TUI frame", fmt.Sprintf("%.2f ms", float64(r.Frame.Refresh)/1e6), "fleet screen %d×%d over that fleet after new data; %.2f ms redraw", r.Frame.Width, r.Frame.Height, float64(r.Frame.Redraw)/1e6)
	}
	acc := func(label string, s *bench.Step) {
		if s != nil {
			row("sim accuracy at "+label, fmt.Sprintf("%.3f", s.SimRate/s.Requested), "achieved ÷ requested (%s/s)", flagval.FormatCount(s.Requested))
		}
	}
	acc("10k/s", r.At(10_000))
	acc("100k/s", r.At(100_000))
	acc("the maximum", best)
	for _, s := range r.Steps {
		row("step "+flagval.FormatCount(s.Requested)+"/s", "applied "+flagval.FormatCount(s.Applied)+"/s",
			"sustained %v, lag at end %d, drained %v; p99 %s ms; CPU/reading ingest %s aggregate %s broker %s",
			s.Sustained, s.LagAtEnd, s.DrainTime.Round(time.Millisecond), ms(s.Freshness.P99), us(s.IngestCPU), us(s.AggregateCPU), us(s.BrokerCPU))
	}
}
