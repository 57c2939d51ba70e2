package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/metrics"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/reader"
	"github.com/vppctl/vpp/internal/status"
)

// aggregateOptions are the parsed flags of vpp aggregate.
type aggregateOptions struct {
	kafka kafkaFlags
	cfg   aggregate.Config
	http  string
	quiet bool
	api   apiFlags
}

// newAggregateCmd is `vpp aggregate`; runF, when not nil, runs instead of
// runAggregate with the parsed options (for tests).
func newAggregateCmd(runF func(context.Context, *aggregateOptions) error) *cobra.Command {
	o := &aggregateOptions{cfg: aggregate.DefaultConfig(), api: apiFlags{registerTLSFlags: true}}
	cmd := &cobra.Command{
		Use:   "aggregate",
		Short: "Consume telemetry, keep a digital twin per device, publish fleet state",
		Long: `Join a Kafka consumer group on the telemetry topic and keep a digital twin of
every device of the partitions this instance owns: its last reading, its
sequence number (duplicates are dropped, gaps counted), online/offline and its
headroom. Changed sites are written to the compacted state topic on the same
partition number every --flush-interval (a site that changes more often at
most once per --state-interval, so that readers load the state topic fast),
and only then are the telemetry offsets committed. A new owner of a partition
restores it from the state topic and applies again the telemetry of the last
--state-interval before it reads on.

Run several instances with the same --group to split the partitions; their
totals add up exactly.

Headroom, the power the fleet can still offer: for each online device,
discharge headroom = min(discharge limit, energy above --reserve-soc
sustained for --headroom-horizon) − power delivered now, charge headroom
likewise from the energy below full; both floored at 0.

With --http it serves the JSON API and a live web page, read from the state
topic like every reader:
  GET /                               the live web page (fleet KPIs, regions, sparklines)
  GET /api/stream                     Server-Sent Events: the fleet and regions on change
  GET /api/metrics/fleet              the fleet rollup
  GET /api/metrics/regions            every region
  GET /api/metrics/regions/{id}       a region and its substations
  GET /api/metrics/substations/{id}   a substation and its sites
  GET /api/metrics/sites/{id}         a site and its devices
  GET /api/metrics/pipeline           end-to-end accounting
  GET /api/dispatches                 every dispatch; POST creates one (--operator-token)
  GET /api/dispatches/{id}            one dispatch; DELETE cancels it (--operator-token)
  GET /healthz                        liveness
  GET /readyz                         200 once joined and every owned partition restored, else 503
  GET /metrics                        Prometheus metrics`,
		Example: `  # one instance with the API
  vpp aggregate --brokers 127.0.0.1:9092 --http 127.0.0.1:8081

  # a second instance in the same group takes half the partitions
  vpp aggregate --brokers 127.0.0.1:9092 --group vpp-aggregate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.cfg.Kafka = o.kafka.options("vpp-aggregate")
			if err := o.cfg.Kafka.Security.Validate(); err != nil {
				return usageError{err}
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAggregate(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	o.kafka.register(f)
	// aggregate writes state records only (--state-compression): hidden,
	// accepted for a shared config file.
	_ = f.MarkHidden("compression")
	f.StringVar(&o.cfg.Group, "group", o.cfg.Group, "Kafka consumer group")
	f.StringVar(&o.cfg.InstanceID, "instance-id", "", "static group membership ID: a quick restart keeps its partitions (default: dynamic)")
	f.DurationVar(&o.cfg.OfflineAfter, "offline-after", o.cfg.OfflineAfter, "a device not heard from for this long is offline")
	f.Float64Var(&o.cfg.ReserveSoCPct, "reserve-soc", o.cfg.ReserveSoCPct, "state of charge (percent) that discharge headroom keeps in reserve")
	f.DurationVar(&o.cfg.HeadroomHorizon, "headroom-horizon", o.cfg.HeadroomHorizon, "how long headroom must be sustainable from stored energy")
	f.DurationVar(&o.cfg.FlushInterval, "flush-interval", o.cfg.FlushInterval, "how often changed sites are published and offsets committed")
	f.DurationVar(&o.cfg.StateInterval, "state-interval", o.cfg.StateInterval, "least time between two publications of one site's state (0: every change at the next flush)")
	f.DurationVar(&o.cfg.Heartbeat, "heartbeat", o.cfg.Heartbeat, "heartbeat timeout of the setpoints sent to devices (a device that hears no refresh for this long returns to local control; refreshed every third of it)")
	f.StringVar(&o.http, "http", "", "serve the JSON API on this address, e.g. 127.0.0.1:8081 (default: off)")
	f.BoolVar(&o.quiet, "quiet", false, "no status line")
	o.api.register(f)
	return cmd
}

// runAggregate runs the aggregator of o until ctx ends.
func runAggregate(ctx context.Context, o *aggregateOptions) error {
	o.cfg.Logger = slog.Default()
	if err := o.api.validate(); err != nil {
		return err
	}
	if err := kafka.EnsureTopics(ctx, o.cfg.Kafka); err != nil {
		return err
	}
	agg, err := aggregate.New(o.cfg)
	if err != nil {
		return usageError{err}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	if o.http != "" {
		ln, secure, err := o.api.listen(o.http, slog.Default())
		if err != nil {
			return err
		}
		ropts := o.cfg.Kafka
		ropts.ClientID = "vpp-aggregate-api"
		fr, err := reader.New(ropts, slog.Default().With("part", "reader"))
		if err != nil {
			return err
		}
		dopts := o.cfg.Kafka
		dopts.ClientID = "vpp-aggregate-dispatch"
		svc, err := dispatch.Open(dopts, slog.Default().With("part", "dispatch"))
		if err != nil {
			_ = ln.Close()
			return err
		}
		svc.Fleet = fr
		svc.FleetReady = func() bool { ok, _ := fr.Ready(); return ok }
		slog.Info("serving API", "addr", ln.Addr().String(), "tls", secure,
			"api_token", o.api.guard.Token != "", "operator_token", o.api.guard.OperatorToken != "", "cors_origin", o.api.guard.CORSOrigin)
		wg.Add(3)
		go func() {
			defer wg.Done()
			defer svc.Close()
			if err := svc.View.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("dispatch view: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := fr.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("fleet reader: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			h := api.NewMux(api.MuxConfig{
				Fleet:    fr,
				Changed:  fr.Changed,
				Dispatch: svc,
				Metrics:  metrics.Handler(metrics.NewAggregateCollector(agg.Stats), metrics.NewFleetCollector(fr)),
				Ready:    []api.ReadyCheck{aggregateReady(agg), fr.Ready}, // the API serves the fleet: complete once fr caught up
				Guard:    o.api.guard,
			})
			if err := pipeline.ServeHTTP(ctx, ln, h); err != nil {
				errs <- err
			}
		}()
	}
	stop := func() {}
	if !o.quiet {
		consumed := status.NewRate(time.Now())
		stop = status.Start(os.Stderr, time.Second, func() string {
			st := agg.Stats()
			rate := consumed.Observe(st.Consumed, time.Now())
			return fmt.Sprintf("partitions %d  sites %d  devices %d  consumed %s (%s/s)  applied %s  duplicates %d  gaps %d  lag %d",
				len(st.Partitions), st.Sites, st.Devices, flagval.FormatCount(float64(st.Consumed)), flagval.FormatCount(rate),
				flagval.FormatCount(float64(st.Applied)), st.Duplicates, st.Gaps, st.Lag)
		})
	}
	err = agg.Run(ctx)
	stop()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// aggregateReady is ready once the instance joined its group and restored
// every partition it owns.
func aggregateReady(agg *aggregate.Aggregator) api.ReadyCheck {
	return func() (bool, string) {
		if agg.Ready() {
			return true, ""
		}
		if reason := agg.SessionError(); reason != "" {
			return false, "rejoining the consumer group: " + reason
		}
		return false, "joining the consumer group or restoring owned partitions"
	}
}
