package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/kafka"
)

func newBrokerCmd() *cobra.Command {
	var o kafka.EmbeddedOptions
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
			b, err := kafka.StartEmbedded(o)
			if err != nil {
				return err
			}
			defer b.Close()
			if o.DataDir == "" {
				slog.Info("embedded broker listening; data is kept in memory only (use --data-dir to persist)", "addr", b.Addr())
			} else {
				slog.Info("embedded broker listening; data persisted", "addr", b.Addr(), "data_dir", o.DataDir)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "broker listening on %s (press Ctrl-C to stop)\n", b.Addr())
			<-cmd.Context().Done()
			slog.Info("embedded broker stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Listen, "listen", kafka.DefaultBrokers, "address to listen on")
	cmd.Flags().StringVar(&o.DataDir, "data-dir", "", "persist data in this directory (default: in memory)")
	cmd.Flags().DurationVar(&o.CompactionInterval, "compaction-interval", kafka.DefaultCompactionInterval, "how often compaction and retention run (each one holds the broker's request loop while it reads what was written since the last)")
	return cmd
}
