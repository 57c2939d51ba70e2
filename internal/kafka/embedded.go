package kafka

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedOptions configure the in-process Kafka-protocol broker.
type EmbeddedOptions struct {
	// Listen is the address to listen on (default 127.0.0.1:0, a free port).
	Listen string
	// DataDir persists the broker's data; empty keeps everything in memory.
	DataDir string
	// CompactionInterval is how often compaction and retention run
	// (default DefaultCompactionInterval).
	CompactionInterval time.Duration
}

// DefaultCompactionInterval is EmbeddedOptions.CompactionInterval's
// default. kfake compacts a partition in its request loop, reading every
// record since the last compaction, so every request waits meanwhile: with
// the state topic's flush traffic, compacting every 10 s held the loop long
// enough to put freshness p99 at about 320 ms at any rate (`vpp bench`,
// embedded broker, 10k–100k readings/s); every second it was 171–181 ms
// for the same broker CPU per reading.
const DefaultCompactionInterval = time.Second

// Embedded is franz-go's in-process Kafka-protocol broker (kfake): real
// Kafka protocol on real TCP, one node, no replication.
type Embedded struct {
	cluster *kfake.Cluster
	addr    string
}

// StartEmbedded starts an embedded broker.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("listen port %q: %w", portStr, err)
	}
	interval := o.CompactionInterval
	if interval <= 0 {
		interval = DefaultCompactionInterval
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": strconv.FormatInt(interval.Milliseconds(), 10),
		}),
		kfake.ClusterID("vpp-embedded"),
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("start embedded broker: no listener")
	}
	return &Embedded{cluster: c, addr: addrs[0]}, nil
}

// Addr is the broker's bootstrap address.
func (e *Embedded) Addr() string { return e.addr }

// Cluster exposes the kfake cluster for fault injection in tests.
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker (and persists its data when a data dir is set).
func (e *Embedded) Close() { e.cluster.Close() }
