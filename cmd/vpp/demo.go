package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/reader"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/status"
	"github.com/vppctl/vpp/internal/tui"
)

// Demo defaults: a fleet big enough to look like one, small enough for a
// laptop.
const (
	defaultDemoDevices = 3000
	defaultDemoRate    = 3000
	defaultDemoHTTP    = "127.0.0.1:8081"
)

type demoOptions struct {
	kafka       kafkaFlags
	devices     flagval.Count
	rate        flagval.Count
	http        string
	noTUI       bool
	aggregators int
	dataDir     string
	seed        int64
	logFile     string
	api         apiFlags
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{devices: flagval.Count{V: defaultDemoDevices}, rate: flagval.Count{V: defaultDemoRate}}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline in one process on an embedded broker",
		Long: `Run an embedded Kafka-protocol broker, ingest, aggregate and a simulated
battery fleet in one process: a live virtual power plant with one command and
nothing to install.

It opens the live dashboard (vpp top) over the pipeline. With --no-tui, or
when stdout is not a terminal, it prints a fleet summary line every second
instead: devices online/offline/alarming, net power with its charge and
discharge split, stored energy against capacity, the capacity-weighted state
of charge, headroom up (discharge) and down (charge), the ingest rate and the
consumer lag. The JSON API is served on
--http (see /api/metrics/fleet), with a live web page at / .

With --brokers the demo uses that Kafka cluster instead of the embedded
broker.`,
		Example: `  # the default demo
  vpp demo

  # a bigger fleet, two aggregator instances sharing the partitions
  vpp demo --devices 20k --rate 10k --aggregators 2

  # against a real Kafka cluster
  vpp demo --brokers kafka-1:9092,kafka-2:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.Flags().Changed("brokers"), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	o.kafka.register(f)
	f.Var(&o.devices, "devices", "simulated devices")
	f.Var(&o.rate, "rate", "readings per second for the whole fleet (10k, 1.5M)")
	f.StringVar(&o.http, "http", defaultDemoHTTP, "serve the JSON API on this address (empty: off)")
	f.BoolVar(&o.noTUI, "no-tui", false, "print a fleet summary line every second instead of the dashboard (also when stdout is not a terminal)")
	f.IntVar(&o.aggregators, "aggregators", 1, "aggregator instances in the consumer group")
	f.StringVar(&o.dataDir, "data-dir", "", "persist the embedded broker's data here (default: in memory)")
	f.Int64Var(&o.seed, "seed", 1, "simulator seed")
	o.api.register(f)
	f.StringVar(&o.logFile, "log-file", "", "write logs to this file instead of hiding them behind the summary")
	return cmd
}

func runDemo(ctx context.Context, o *demoOptions, brokersSet bool, out io.Writer) error {
	tuiMode := !o.noTUI && status.IsTerminal(out)
	var warnTo io.Writer // with the dashboard on screen, logs go to --log-file or nowhere
	if !tuiMode {
		warnTo = os.Stderr
	}
	logger, closeLog, err := screenLogger(o.logFile, warnTo)
	if err != nil {
		return err
	}
	defer closeLog()
	slog.SetDefault(logger)

	kopts := o.kafka.options("vpp-demo")
	if err := kopts.Security.Validate(); brokersSet && err != nil {
		return usageError{err}
	}
	if !brokersSet {
		b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{DataDir: o.dataDir})
		if err != nil {
			return err
		}
		defer b.Close()
		kopts.Brokers = []string{b.Addr()}
		kopts.Security = kafka.Security{} // the embedded broker speaks plaintext
		// Keep a long demo bounded: telemetry older than 10 minutes goes.
		kopts.TelemetryRetention = 10 * time.Minute
		fmt.Fprintf(out, "embedded broker on %s (in memory)\n", b.Addr())
	}

	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()
	icfg := ingest.DefaultConfig()
	icfg.Listen = "127.0.0.1:0"
	acfg := aggregate.DefaultConfig()
	acfg.OfflineAfter = demoOfflineAfter(o.devices.V, o.rate.V)
	p, err := pipeline.Start(pctx, pipeline.Config{
		Kafka:       kopts,
		Ingest:      &icfg,
		Aggregate:   &acfg,
		Aggregators: o.aggregators,
		HTTPAddr:    o.http,
		Logger:      logger,
		API:         o.api.guard,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ingest on %s", p.IngestURL())
	if p.APIURL() != "" {
		fmt.Fprintf(out, "; API on %s/api/metrics/fleet", p.APIURL())
	}
	fmt.Fprintf(out, "\nsimulating %s devices at %s readings/s (each device every %v, offline after %v); Ctrl-C stops\n",
		flagval.FormatCount(o.devices.V), flagval.FormatCount(o.rate.V), demoPeriod(o.devices.V, o.rate.V).Round(time.Millisecond), acfg.OfflineAfter)

	s, err := sim.New(sim.Config{
		URL:       p.IngestURL(),
		TokenFunc: p.TokenFunc(),
		Devices:   int(o.devices.V),
		Rate:      o.rate.V,
		Seed:      o.seed,
		// Start the simulated day at 11:00 so a new user sees the midday
		// charge and, minutes later, the evening discharge (sim time runs
		// 60× wall time).
		Start:  time.Now().UTC().Truncate(24 * time.Hour).Add(11 * time.Hour),
		Logger: logger.With("part", "sim"),
	})
	if err != nil {
		pcancel()
		_ = p.Wait()
		return usageError{err}
	}
	simDone := make(chan error, 1)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() { simDone <- s.Run(sctx) }()

	if tuiMode {
		dctx, dcancel := context.WithCancel(ctx)
		data, waitData := reader.StartDashboard(dctx, p.Reader(), kopts, logger)
		topts := tui.Options{Watch: data.Watch, WatchSubstation: data.WatchSubstation}
		if svc := p.Dispatch(); svc != nil {
			topts.Dispatch, topts.Operator = svc, osUser()
		}
		prog := tea.NewProgram(tui.New(data, topts), tea.WithContext(ctx), tea.WithOutput(out))
		_, terr := prog.Run()
		dcancel()
		waitData()
		scancel()
		simErr := <-simDone
		pcancel()
		werr := p.Wait()
		switch {
		case terr != nil && !(errors.Is(terr, tea.ErrProgramKilled) && ctx.Err() != nil):
			return fmt.Errorf("dashboard: %w", terr)
		case werr != nil:
			return werr
		case simErr != nil && !errors.Is(simErr, context.Canceled) && !errors.Is(simErr, sim.ErrUnacked):
			return simErr
		}
		return nil
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	recv := status.NewRate(time.Now())
	var simErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case simErr = <-simDone:
			break loop
		case now := <-tick.C:
			snap := p.Reader().Snapshot()
			fmt.Fprintln(out, summaryLine(snap, recv.Observe(snap.Pipeline.Received, now), s.Stats()))
		}
	}
	fmt.Fprintln(out, "stopping: sim, then ingest (draining to Kafka), aggregators, broker")
	scancel()
	if simErr == nil {
		simErr = <-simDone
	}
	pcancel()
	if err := p.Wait(); err != nil {
		return err
	}
	snap := p.Reader().Snapshot()
	fmt.Fprintln(out, summaryLine(snap, recv.Observe(snap.Pipeline.Received, time.Now()), s.Stats()))
	if simErr != nil && !errors.Is(simErr, context.Canceled) && ctx.Err() == nil {
		return simErr
	}
	return nil
}

// summaryLine is one line of fleet status; rate is ingest's receive rate
// in readings per second.
func summaryLine(snap *fleet.Snapshot, rate float64, st sim.Stats) string {
	r := snap.Fleet.Rollup
	pl := snap.Pipeline
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %d dev (%d on, %d off, %d alarm)", time.Now().Format("15:04:05"), r.Devices, r.Online, r.Offline, r.Alarming)
	fmt.Fprintf(&b, " | net %+.2f MW (chg %.2f, dis %.2f)", r.PowerKW()/1000, r.ChargeKW()/1000, r.DischargeKW()/1000)
	fmt.Fprintf(&b, " | %.2f/%.2f MWh SoC %.1f%%", r.EnergyKWh()/1000, r.CapacityKWh()/1000, r.SoCPct())
	fmt.Fprintf(&b, " | headroom up %.2f MW down %.2f MW", r.HeadroomDischargeKW()/1000, r.HeadroomChargeKW()/1000)
	fmt.Fprintf(&b, " | ingest %s r/s lag %d | sim sent %d acked %d", flagval.FormatCount(rate), pl.Lag, st.Sent, st.Acked)
	if age := time.Since(snap.UpdatedAt()); !snap.UpdatedAt().IsZero() && age > 5*time.Second {
		fmt.Fprintf(&b, " | STALE %s", age.Round(time.Second))
	}
	return b.String()
}

// demoPeriod is how often each simulated device reports: devices ÷ rate.
func demoPeriod(devices, rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(devices / rate * float64(time.Second))
}

// demoOfflineAfter is the demo aggregators' --offline-after: the default,
// or three report periods when the devices report less often than a third
// of it (a million devices at 3,000 readings/s report every 333 s, and
// would otherwise count as offline between their readings).
func demoOfflineAfter(devices, rate float64) time.Duration {
	return max(aggregate.DefaultOfflineAfter, (3 * demoPeriod(devices, rate)).Round(time.Second))
}
