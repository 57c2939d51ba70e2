package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/spool"
	"github.com/vppctl/vpp/internal/status"
)

// ingestOptions are the parsed flags of vpp ingest.
type ingestOptions struct {
	cfg      ingest.Config
	kafka    kafkaFlags
	sec      ingestSecurityFlags
	maxFrame flagval.Bytes
	bufBytes flagval.Bytes
	status   bool
	http     string

	spoolDir      string
	spoolMax      flagval.Bytes
	spoolSegment  flagval.Bytes
	spoolFsync    string
	spoolPolicy   spool.Fsync // parsed from spoolFsync
	spoolInterval time.Duration

	errOut io.Writer // the status line
}

// newIngestCmd is `vpp ingest`: the WebSocket telemetry server that
// validates readings and publishes them to Kafka. runF, when not nil, runs
// instead of runIngest with the parsed options (for tests).
func newIngestCmd(runF func(context.Context, *ingestOptions) error) *cobra.Command {
	def := ingest.DefaultConfig()
	o := &ingestOptions{
		cfg:          def,
		maxFrame:     flagval.Bytes{V: def.MaxFrameBytes},
		bufBytes:     flagval.Bytes{V: def.BufferBytes},
		spoolMax:     flagval.Bytes{V: spool.DefaultMaxBytes},
		spoolSegment: flagval.Bytes{V: spool.DefaultSegmentBytes},
	}
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Receive battery telemetry over WebSocket, validate it and publish it to Kafka",
		Long: `ingest serves /v1/telemetry: devices and gateways send binary protobuf
vpp.v1.Frame messages; every reading is validated, valid ones are published to
the telemetry topic (keyed by site), invalid ones to the rejected topic with the
reason in a header. A reading is acknowledged to its device only once Kafka has
acknowledged it. When Kafka slows down the bounded buffer fills and ingest stops
reading sockets (backpressure) instead of dropping anything.

With --spool-dir, accepted records go to a durable spool on disk first: a
reading is acknowledged once it is fsynced there (or in Kafka, whichever comes
first), Kafka outages are ridden out up to --spool-max-bytes, and records not
yet in Kafka when ingest stops or crashes are published after the restart.

With --http it serves health and metrics endpoints:
  GET /healthz   liveness: 200 while the process runs
  GET /readyz    200 while listening, Kafka is reachable and (with a spool)
                 the replay after a restart finished; else 503 with a reason
  GET /metrics   Prometheus metrics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.cfg.Kafka = o.kafka.options("vpp-ingest")
			if err := o.cfg.Kafka.Security.Validate(); err != nil {
				return usageError{err}
			}
			o.cfg.MaxFrameBytes = o.maxFrame.V
			o.cfg.BufferBytes = o.bufBytes.V
			o.errOut = cmd.ErrOrStderr()
			if err := o.sec.validate(&o.cfg); err != nil {
				return err
			}
			if len(o.cfg.Kafka.Brokers) == 0 {
				return usageError{fmt.Errorf("--brokers: at least one broker is required")}
			}
			if o.spoolDir != "" {
				policy, err := spool.ParseFsync(o.spoolFsync)
				if err != nil {
					return usageError{fmt.Errorf("--spool-fsync: %w", err)}
				}
				o.spoolPolicy = policy
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runIngest(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.cfg.Listen, "listen", def.Listen, "address to serve WebSocket telemetry on")
	o.kafka.register(fs)
	// ingest writes no state: hidden, accepted for a shared config file.
	_ = fs.MarkHidden("state-compression")
	o.sec.register(fs, def)
	fs.StringVar(&o.cfg.Instance, "instance", "", "instance ID in the stats topic (default hostname-pid)")
	fs.Var(&o.maxFrame, "max-frame-bytes", "largest WebSocket message accepted; larger closes with 1009")
	fs.IntVar(&o.cfg.MaxReadingsPerFrame, "max-readings-per-frame", def.MaxReadingsPerFrame, "most readings in one frame; more rejects the frame and closes with 1008")
	fs.IntVar(&o.cfg.BufferRecords, "buffer-records", def.BufferRecords, "capacity of the buffer in records (accepted, not yet acknowledged by Kafka)")
	fs.Var(&o.bufBytes, "buffer-bytes", "capacity of the buffer in bytes")
	fs.DurationVar(&o.cfg.MaxClockSkew, "max-clock-skew", def.MaxClockSkew, "how far in the future a reading's timestamp may lie")
	fs.DurationVar(&o.cfg.MaxAge, "max-age", def.MaxAge, "how old a reading's timestamp may be")
	fs.Float64Var(&o.cfg.PowerTolerance, "power-tolerance", def.PowerTolerance, "fraction above a device's own power limits still accepted")
	fs.IntVar(&o.cfg.MaxIDLength, "max-id-length", def.MaxIDLength, "longest device, site, substation or region ID, in bytes")
	fs.DurationVar(&o.cfg.AckInterval, "ack-interval", def.AckInterval, "how often acks are flushed to a connection")
	fs.DurationVar(&o.cfg.StatsInterval, "stats-interval", def.StatsInterval, "how often ingest stats are published to the stats topic")
	fs.DurationVar(&o.cfg.ShutdownTimeout, "shutdown-timeout", def.ShutdownTimeout, "bound on draining the buffer into Kafka on shutdown")
	fs.DurationVar(&o.cfg.PingInterval, "ping-interval", def.PingInterval, "how often connections are pinged; silent peers are dropped after 2.5 intervals")
	fs.BoolVar(&o.status, "status", true, "print a live status line on stderr once a second")
	fs.StringVar(&o.http, "http", "", "serve /healthz, /readyz and /metrics on this address, e.g. 127.0.0.1:8082 (default: off)")
	fs.StringVar(&o.spoolDir, "spool-dir", "", "directory of the durable spool (empty: in-memory buffer only); with a spool, --buffer-bytes bounds its memory window")
	fs.Var(&o.spoolMax, "spool-max-bytes", "bound on the spool's files on disk; when full, ingest stops reading sockets")
	fs.StringVar(&o.spoolFsync, "spool-fsync", spool.FsyncAlways.String(), "when the spool fsyncs: always (group commit, ack after fsync), interval (every --spool-fsync-interval) or never (ack only once in Kafka; benchmarks)")
	fs.DurationVar(&o.spoolInterval, "spool-fsync-interval", spool.DefaultFsyncInterval, "fsync period of --spool-fsync interval")
	fs.Var(&o.spoolSegment, "spool-segment-bytes", "size of one spool segment file (at most a quarter of --spool-max-bytes)")
	return cmd
}

// runIngest serves ingest as o describes until ctx ends.
func runIngest(ctx context.Context, o *ingestOptions) error {
	cfg := o.cfg
	cfg.Logger = slog.Default()
	if err := o.sec.apply(&cfg, cfg.Logger); err != nil {
		return err
	}
	var sp *spool.Spool
	if o.spoolDir != "" {
		var err error
		sp, err = spool.Open(ctx, spool.Options{
			Dir:           o.spoolDir,
			MaxBytes:      o.spoolMax.V,
			SegmentBytes:  o.spoolSegment.V,
			MemoryBytes:   o.bufBytes.V,
			Fsync:         o.spoolPolicy,
			FsyncInterval: o.spoolInterval,
			Logger:        cfg.Logger,
		})
		if err != nil {
			return fmt.Errorf("open spool: %w", err)
		}
		defer sp.Close() // ingest closes it on shutdown; this covers early errors
		cfg.Buffer = sp
	}
	srv, err := ingest.New(cfg, nil)
	if err != nil {
		return usageError{err}
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if o.status {
		stop := status.Start(o.errOut, time.Second, ingestStatus(srv, sp))
		defer stop()
	}
	if o.http != "" {
		hctx, stopHTTP := context.WithCancel(ctx)
		wait, err := startIngestHTTP(hctx, o.http, srv, sp)
		if err != nil {
			stopHTTP()
			return err
		}
		serveErr := srv.Serve(ctx)
		stopHTTP()
		return errors.Join(serveErr, wait())
	}
	return srv.Serve(ctx)
}

// ingestStatus returns the status line of srv: connections, receive rate,
// published, rejected, acked, buffer fill, the spool's disk use (sp may be
// nil) and whether Kafka is reachable.
func ingestStatus(srv *ingest.Server, sp *spool.Spool) func() string {
	recv := status.NewRate(time.Now())
	return func() string {
		st := srv.Stats()
		rate := recv.Observe(st.Received, time.Now())
		kafka := "up"
		if st.KafkaDown {
			kafka = "DOWN"
		}
		spooled := ""
		if sp != nil {
			ss := sp.Stats()
			spooled = fmt.Sprintf("  spool %s/%s", flagval.FormatBytes(ss.DiskBytes), flagval.FormatBytes(st.BufferCapacityBytes))
		}
		return fmt.Sprintf("ingest %s  conns %d  recv %s/s  published %s  rejected %s  acked %s  buffered %s/%s%s  kafka %s",
			srv.Addr(), st.Connections, flagval.FormatCount(rate), flagval.FormatCount(float64(st.Published)),
			flagval.FormatCount(float64(st.RejectedTotal())), flagval.FormatCount(float64(st.Acked)),
			flagval.FormatCount(float64(st.Buffered)), flagval.FormatCount(float64(st.BufferCapacity)), spooled, kafka)
	}
}
