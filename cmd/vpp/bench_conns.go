package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/bench"
	"github.com/vppctl/vpp/internal/flagval"
)

// newBenchConnsCmd is `vpp bench conns`: ingest's memory per open
// WebSocket connection.
func newBenchConnsCmd() *cobra.Command {
	var (
		cfg     bench.ConnsConfig
		brokers string
	)
	cmd := &cobra.Command{
		Use:   "conns",
		Short: "Measure ingest's memory per open WebSocket connection",
		Long: `conns starts vpp broker (unless --brokers is given) and vpp ingest as child
processes on free 127.0.0.1 ports, reads ingest's VmRSS (/proc/PID/status) and
its Go heap, stack and goroutine figures (/metrics), then opens --conns device
connections from this process: each sends --readings readings, one frame
each, answers pings and sends an empty frame every --keepalive so that the
idle timeout keeps it open. Once ingest reports every connection open and
every reading acknowledged, the connections stay open for --settle and the
figures are read again. It prints (VmRSS after − VmRSS before) ÷ connections,
with the heap and stack shares, then resets the connections and stops the
children.

Limits:
  - Ingest and this process each hold one file per connection: --conns plus
    a reserve of 256 must fit the hard open-file limit (ulimit -Hn), which
    only a process with CAP_SYS_RESOURCE can raise. The soft limit is raised
    to the hard one.
  - The connections come from 127.0.0.2, 127.0.0.3, …, 5,000 per address, so
    one address's ephemeral ports suffice; Linux routes all of 127/8 to
    loopback. Sockets are closed with SO_LINGER 0 and leave no TIME_WAIT.
  - Ingest runs with --insecure (or, with --auth, a fresh token key and one
    token per device), its default buffers and limits, and --max-conns and
    --max-conns-per-ip raised to fit --conns. Its per-device rate limiter
    holds one entry per device, counted here as connection memory.
  - RSS is what the kernel charges. With GOGC=100 the Go heap grows to
    about twice the live heap plus the goroutine stacks before a collection,
    and the runtime keeps freed pages up to about that: a connection costs
    in RSS about twice its live heap and twice its stack. The result line
    shows the heap in use, the stacks, the free heap kept and the next GC
    goal to tell them apart. No GC can be forced in another process, so the
    figure moves by a few hundred bytes per connection between runs, and
    with --settle (garbage collections and pings happen meanwhile). Compare
    builds with --ingest-exe under the same conditions rather than across
    machines.
  - Kernel socket buffers are not in RSS and are not measured.`,
		Example: `  # the default: 18,000 connections on an embedded broker
  vpp bench conns

  # a quick run
  vpp bench conns --conns 2000 --settle 5s

  # compare another build's ingest under the same client and broker
  vpp bench conns --ingest-exe /tmp/vpp-old`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, b := range strings.Split(brokers, ",") {
				if b = strings.TrimSpace(b); b != "" {
					cfg.Brokers = append(cfg.Brokers, b)
				}
			}
			if cfg.Conns < 1 {
				return usageError{fmt.Errorf("--conns %d: want at least 1", cfg.Conns)}
			}
			cfg.Progress = cmd.ErrOrStderr()
			res, err := bench.Conns(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			printBenchConns(cmd.OutOrStdout(), res)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Conns, "conns", bench.DefaultConns, "WebSocket connections to open")
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated host:port (default: start vpp broker)")
	fs.IntVar(&cfg.Readings, "readings", bench.DefaultConnsReadings, "readings each connection sends after connecting (-1: none)")
	fs.DurationVar(&cfg.Keepalive, "keepalive", bench.DefaultConnsKeepalive, "how often each connection sends an empty frame")
	fs.DurationVar(&cfg.Settle, "settle", bench.DefaultConnsSettle, "how long the connections stay open before the measurement")
	fs.StringVar(&cfg.IngestExe, "ingest-exe", "", "run ingest from this vpp binary (default: this one)")
	fs.BoolVar(&cfg.Auth, "auth", false, "devices authenticate with tokens (ingest --auth-key) instead of ingest --insecure")
	return cmd
}

// printBenchConns prints the result line and the per-connection figure.
func printBenchConns(w io.Writer, r bench.ConnsResult) {
	fmt.Fprintf(w, "ingest with %d connections (connected in %v, %d of %d readings acked): VmRSS %s → %s, Go heap in use %s → %s, stacks %s → %s, free heap kept %s → %s, next GC at %s, goroutines %d → %d\n",
		r.Conns, r.Connect.Round(time.Millisecond), r.Acked, r.Sent,
		flagval.FormatBytes(r.RSSBefore), flagval.FormatBytes(r.RSSAfter),
		flagval.FormatBytes(r.HeapBefore), flagval.FormatBytes(r.HeapAfter),
		flagval.FormatBytes(r.StackBefore), flagval.FormatBytes(r.StackAfter),
		flagval.FormatBytes(r.FreeBefore), flagval.FormatBytes(r.FreeAfter), flagval.FormatBytes(r.GCGoalAfter),
		r.GoroutinesBefore, r.GoroutinesAfter)
	fmt.Fprintf(w, "per connection: %.0f bytes RSS (Go heap %.0f, stacks %.0f, %.2f goroutines)\n",
		r.PerConn(), r.HeapPerConn(), r.StackPerConn(), r.GoroutinesPerConn())
}
