package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/spool"
	"github.com/vppctl/vpp/internal/status"
)

// newIngestCmd is `vpp ingest`: the WebSocket telemetry server that
// validates readings and publishes them to Kafka.
func newIngestCmd() *cobra.Command {
	var (
		cfg        ingest.Config
		kf         kafkaFlags
		maxFrame   = flagval.Bytes{V: 1 << 20}
		bufBytes   = flagval.Bytes{V: 64 << 20}
		showStatus bool
		sec        ingestSecurityFlags
		httpAddr   string

		spoolDir      string
		spoolMax      = flagval.Bytes{V: spool.DefaultMaxBytes}
		spoolSegment  = flagval.Bytes{V: spool.DefaultSegmentBytes}
		spoolFsync    string
		spoolInterval time.Duration
	)
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
			cfg.Kafka = kf.options("vpp-ingest")
			cfg.MaxFrameBytes = maxFrame.V
			cfg.BufferBytes = bufBytes.V
			cfg.Logger = slog.Default()
			if err := sec.apply(&cfg, cfg.Logger); err != nil {
				return err
			}
			if len(cfg.Kafka.Brokers) == 0 {
				return usageError{fmt.Errorf("--brokers: at least one broker is required")}
			}
			var sp *spool.Spool
			if spoolDir != "" {
				policy, err := spool.ParseFsync(spoolFsync)
				if err != nil {
					return usageError{fmt.Errorf("--spool-fsync: %w", err)}
				}
				sp, err = spool.Open(cmd.Context(), spool.Options{
					Dir:           spoolDir,
					MaxBytes:      spoolMax.V,
					SegmentBytes:  spoolSegment.V,
					MemoryBytes:   bufBytes.V,
					Fsync:         policy,
					FsyncInterval: spoolInterval,
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
			ctx := cmd.Context()
			if showStatus {
				stop := status.Start(cmd.ErrOrStderr(), time.Second, ingestStatus(srv, sp))
				defer stop()
			}
			if httpAddr != "" {
				hctx, stopHTTP := context.WithCancel(ctx)
				wait, err := startIngestHTTP(hctx, httpAddr, srv, sp)
				if err != nil {
					stopHTTP()
					return err
				}
				serveErr := srv.Serve(ctx)
				stopHTTP()
				return errors.Join(serveErr, wait())
			}
			return srv.Serve(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve WebSocket telemetry on")
	kf.register(fs)
	// ingest writes no state: hidden, accepted for a shared config file.
	_ = fs.MarkHidden("state-compression")
	sec.register(fs)
	fs.StringVar(&cfg.Instance, "instance", "", "instance ID in the stats topic (default hostname-pid)")
	fs.Var(&maxFrame, "max-frame-bytes", "largest WebSocket message accepted; larger closes with 1009")
	fs.IntVar(&cfg.MaxReadingsPerFrame, "max-readings-per-frame", 10_000, "most readings in one frame; more rejects the frame and closes with 1008")
	fs.IntVar(&cfg.BufferRecords, "buffer-records", 100_000, "capacity of the buffer in records (accepted, not yet acknowledged by Kafka)")
	fs.Var(&bufBytes, "buffer-bytes", "capacity of the buffer in bytes")
	fs.DurationVar(&cfg.MaxClockSkew, "max-clock-skew", 5*time.Minute, "how far in the future a reading's timestamp may lie")
	fs.DurationVar(&cfg.MaxAge, "max-age", 24*time.Hour, "how old a reading's timestamp may be")
	fs.Float64Var(&cfg.PowerTolerance, "power-tolerance", 0.05, "fraction above a device's own power limits still accepted")
	fs.IntVar(&cfg.MaxIDLength, "max-id-length", 64, "longest device, site, substation or region ID, in bytes")
	fs.DurationVar(&cfg.AckInterval, "ack-interval", 20*time.Millisecond, "how often acks are flushed to a connection")
	fs.DurationVar(&cfg.StatsInterval, "stats-interval", time.Second, "how often ingest stats are published to the stats topic")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "bound on draining the buffer into Kafka on shutdown")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 20*time.Second, "how often connections are pinged; silent peers are dropped after 2.5 intervals")
	fs.BoolVar(&showStatus, "status", true, "print a live status line on stderr once a second")
	fs.StringVar(&httpAddr, "http", "", "serve /healthz, /readyz and /metrics on this address, e.g. 127.0.0.1:8082 (default: off)")
	fs.StringVar(&spoolDir, "spool-dir", "", "directory of the durable spool (empty: in-memory buffer only); with a spool, --buffer-bytes bounds its memory window")
	fs.Var(&spoolMax, "spool-max-bytes", "bound on the spool's files on disk; when full, ingest stops reading sockets")
	fs.StringVar(&spoolFsync, "spool-fsync", "always", "when the spool fsyncs: always (group commit, ack after fsync), interval (every --spool-fsync-interval) or never (ack only once in Kafka; benchmarks)")
	fs.DurationVar(&spoolInterval, "spool-fsync-interval", spool.DefaultFsyncInterval, "fsync period of --spool-fsync interval")
	fs.Var(&spoolSegment, "spool-segment-bytes", "size of one spool segment file (at most a quarter of --spool-max-bytes)")
	return cmd
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
