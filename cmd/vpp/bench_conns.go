package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/bench"
	"github.com/vppctl/vpp/internal/flagval"
)

// benchConnsOptions are the parsed flags of vpp bench conns.
type benchConnsOptions struct {
	cfg     bench.ConnsConfig
	brokers string

	out, errOut io.Writer // the result; progress
}

// newBenchConnsCmd is `vpp bench conns`: ingest's memory per open
// WebSocket connection. runF, when not nil, runs instead of runBenchConns
// with the parsed options (for tests).
func newBenchConnsCmd(runF func(context.Context, *benchConnsOptions) error) *cobra.Command {
	def := bench.DefaultConnsConfig()
	o := &benchConnsOptions{cfg: def}
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
			o.cfg.Brokers = nil
			for _, b := range strings.Split(o.brokers, ",") {
				if b = strings.TrimSpace(b); b != "" {
					o.cfg.Brokers = append(o.cfg.Brokers, b)
				}
			}
			if o.cfg.Conns < 1 {
				return usageError{fmt.Errorf("--conns %d: want at least 1", o.cfg.Conns)}
			}
			o.out, o.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runBenchConns(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.cfg.Conns, "conns", def.Conns, "WebSocket connections to open")
	fs.StringVar(&o.brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated host:port (default: start vpp broker)")
	fs.IntVar(&o.cfg.Readings, "readings", def.Readings, "readings each connection sends after connecting (0: none)")
	fs.DurationVar(&o.cfg.Keepalive, "keepalive", def.Keepalive, "how often each connection sends an empty frame")
	fs.DurationVar(&o.cfg.Settle, "settle", def.Settle, "how long the connections stay open before the measurement")
	fs.StringVar(&o.cfg.IngestExe, "ingest-exe", "", "run ingest from this vpp binary (default: this one)")
	fs.BoolVar(&o.cfg.Auth, "auth", false, "devices authenticate with tokens (ingest --auth-key) instead of ingest --insecure")
	return cmd
}

// runBenchConns runs the measurement and prints its result.
func runBenchConns(ctx context.Context, o *benchConnsOptions) error {
	cfg := o.cfg
	cfg.Progress = o.errOut
	res, err := bench.Conns(ctx, cfg)
	if err != nil {
		return err
	}
	printBenchConns(o.out, res)
	return nil
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
