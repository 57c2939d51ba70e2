package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/kafka"
)

// brokerOptions are the parsed flags of vpp broker.
type brokerOptions struct {
	broker kafka.EmbeddedOptions
	out    io.Writer // the listening line
}

// newBrokerCmd is `vpp broker`; runF, when not nil, runs instead of
// runBroker with the parsed options (for tests).
func newBrokerCmd(runF func(context.Context, *brokerOptions) error) *cobra.Command {
	o := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker alone, for development",
		Long: `Run franz-go's in-process Kafka-protocol broker (kfake) on one port, so
ingest, aggregate and sim can run as separate processes without a Kafka
cluster. It speaks the real Kafka protocol on real TCP: one node, no
replication, every request served by one loop. Data is kept in memory unless
--data-dir is given. Compaction and retention run every --compaction-interval.

For production point every command's --brokers at a real Kafka cluster.`,
		Example: `  # a broker for local development
  vpp broker --listen 127.0.0.1:9092

  # keep its data across restarts
  vpp broker --data-dir /var/lib/vpp/broker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.out = cmd.OutOrStdout()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runBroker(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.broker.Listen, "listen", kafka.DefaultBrokers, "address to listen on")
	cmd.Flags().StringVar(&o.broker.DataDir, "data-dir", "", "persist data in this directory (default: in memory)")
	cmd.Flags().DurationVar(&o.broker.CompactionInterval, "compaction-interval", kafka.DefaultCompactionInterval, "how often compaction and retention run (each one holds the broker's request loop while it reads what was written since the last)")
	return cmd
}

// runBroker serves the embedded broker until ctx ends.
func runBroker(ctx context.Context, o *brokerOptions) error {
	b, err := kafka.StartEmbedded(o.broker)
	if err != nil {
		return err
	}
	defer b.Close()
	if o.broker.DataDir == "" {
		slog.Info("embedded broker listening; data is kept in memory only (use --data-dir to persist)", "addr", b.Addr())
	} else {
		slog.Info("embedded broker listening; data persisted", "addr", b.Addr(), "data_dir", o.broker.DataDir)
	}
	fmt.Fprintf(o.out, "broker listening on %s (press Ctrl-C to stop)\n", b.Addr())
	<-ctx.Done()
	slog.Info("embedded broker stopping")
	return nil
}
