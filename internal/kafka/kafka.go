// Package kafka holds what every vpp process shares about Kafka: topic
// names, sarama configuration, topic administration and the embedded
// Kafka-protocol broker.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Defaults for the Kafka flags every command shares.
const (
	DefaultPrefix       = "vpp."
	DefaultVersion      = "3.6.0"
	DefaultPartitions   = 12
	DefaultReplication  = 1
	DefaultBrokers      = "127.0.0.1:9092"
	defaultRetryBackoff = 250 * time.Millisecond
	// DefaultHistoryRetention is how long the history topic keeps samples
	// when Options.HistoryRetention is zero.
	DefaultHistoryRetention = 15 * time.Minute
	// DefaultCompression is the producers' codec when Options.Compression
	// is empty.
	DefaultCompression = "lz4"
	// DefaultStateCompression is the state producer's codec when
	// Options.StateCompression is empty: none, because a state record is
	// rewritten every flush and compacted, so compressing it costs the
	// aggregator more CPU than any other step of a reading while the
	// compacted topic stays bounded by the fleet's size either way.
	DefaultStateCompression = "none"
)

// ErrTopicMismatch is returned when an existing topic differs from what vpp
// needs (partition count, cleanup policy).
var ErrTopicMismatch = errors.New("topic mismatch")

// Options are the Kafka settings shared by every command.
type Options struct {
	// Brokers are the bootstrap addresses.
	Brokers []string
	// Prefix is prepended to every topic name (default "vpp.").
	Prefix string
	// Version is the Kafka protocol version to speak; it must not be higher
	// than the broker's (default 3.6.0, which Kafka 3.6+ and 4.x accept).
	Version string
	// Partitions is the partition count of the telemetry topic and of the
	// state topic (they must match) when vpp creates them.
	Partitions int32
	// Replication is the replication factor of topics vpp creates.
	Replication int16
	// TelemetryRetention bounds the telemetry topic by age when vpp creates
	// it (0 leaves the broker default).
	TelemetryRetention time.Duration
	// ClientID names this process to the brokers.
	ClientID string
	// HistoryRetention bounds the history topic by age when vpp creates it
	// (default 15m): how far back a reader can backfill its sparklines.
	HistoryRetention time.Duration
	// Compression is the codec of the record batches ingest produces
	// (telemetry, rejected readings, stats): none, gzip, snappy, lz4 or zstd
	// (default lz4).
	Compression string
	// StateCompression is the codec of the aggregator's state records
	// (default none).
	StateCompression string
	// Security are the TLS and SASL settings (default plaintext).
	Security Security
}

// Topics returns the topic names for the options' prefix.
func (o Options) Topics() Topics {
	return Topics{Prefix: o.Prefix, telemetry: o.Prefix + telemetrySuffix, rejected: o.Prefix + rejectedSuffix}
}

// Topics names the topics of one vpp deployment.
type Topics struct {
	Prefix string
	// telemetry and rejected are the names of the topics every reading
	// goes to, built once by Options.Topics so the hot path does not
	// concatenate ("" in a Topics built without it).
	telemetry, rejected string
}

const (
	telemetrySuffix = "telemetry"
	rejectedSuffix  = "telemetry.rejected"
)

// Telemetry is the topic of valid readings, keyed by site ID.
func (t Topics) Telemetry() string {
	if t.telemetry != "" {
		return t.telemetry
	}
	return t.Prefix + telemetrySuffix
}

// Rejected is the topic of invalid readings and frames, raw bytes with the
// reason in the headers.
func (t Topics) Rejected() string {
	if t.rejected != "" {
		return t.rejected
	}
	return t.Prefix + rejectedSuffix
}

// State is the compacted topic of site and partition state, written to the
// same partition number as the telemetry it came from.
func (t Topics) State() string { return t.Prefix + "state" }

// Stats is the compacted topic of per-instance ingest accounting.
func (t Topics) Stats() string { return t.Prefix + "stats" }

// History is the topic of per-second samples (partition substation
// partials and ingest stats) that readers backfill time series from: one
// partition, cleanup policy delete, retention Options.HistoryRetention.
func (t Topics) History() string { return t.Prefix + "history" }

// Dispatch is the compacted topic of dispatches, their allocations,
// partition reports and tracking status (one partition; see
// proto/vpp/v1/dispatch.proto for its keys).
func (t Topics) Dispatch() string { return t.Prefix + "dispatch" }

// Setpoints is the topic of setpoints for devices, SetpointBatch records
// keyed by site ID, partitioned as telemetry. Every ingest instance reads
// all of it from its end; cleanup policy delete, retention of an hour.
func (t Topics) Setpoints() string { return t.Prefix + "setpoints" }

// Header names carried by records in the rejected topic.
const (
	HeaderReason = "vpp-reason"
	HeaderRemote = "vpp-remote"
	HeaderTime   = "vpp-time"
	HeaderDevice = "vpp-device"
)

// SaramaConfig returns the base sarama configuration for the options.
func (o Options) SaramaConfig() (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	v, err := sarama.ParseKafkaVersion(o.Version)
	if err != nil {
		return nil, fmt.Errorf("kafka version %q: %w", o.Version, err)
	}
	cfg.Version = v
	cfg.ClientID = o.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "vpp"
	}
	cfg.Metadata.Retry.Backoff = defaultRetryBackoff
	cfg.Net.DialTimeout = 5 * time.Second
	if err := o.Security.apply(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// NewClient connects a sarama client with SaramaConfig's settings (for
// admin and read-back work; the producers and consumers tune their own).
func (o Options) NewClient() (sarama.Client, error) {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return nil, err
	}
	c, err := sarama.NewClient(o.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return c, nil
}

// ProducerConfig returns a configuration for a durable producer: idempotent,
// acks from all in-sync replicas, Options.Compression, batching.
func (o Options) ProducerConfig() (*sarama.Config, error) {
	return o.producerConfig(o.Compression, DefaultCompression)
}

// StateProducerConfig is ProducerConfig with Options.StateCompression.
func (o Options) StateProducerConfig() (*sarama.Config, error) {
	return o.producerConfig(o.StateCompression, DefaultStateCompression)
}

// producerConfig is ProducerConfig with codec name (def when empty).
func (o Options) producerConfig(name, def string) (*sarama.Config, error) {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return nil, err
	}
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	codec, err := parseCodec(name, def)
	if err != nil {
		return nil, err
	}
	cfg.Producer.Compression = codec
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.Flush.Bytes = 512 << 10
	cfg.Producer.Flush.MaxMessages = 0
	cfg.Producer.MaxMessageBytes = 1 << 20
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.MaxBufferLength = 100_000
	cfg.Producer.Retry.MaxBufferBytes = 64 << 20
	return cfg, nil
}

// parseCodec parses a codec name, def when empty.
func parseCodec(name, def string) (sarama.CompressionCodec, error) {
	if name == "" {
		name = def
	}
	var c sarama.CompressionCodec
	if err := c.UnmarshalText([]byte(name)); err != nil {
		return 0, fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd: %w", name, err)
	}
	return c, nil
}

// TopicSpec describes a topic vpp needs.
type TopicSpec struct {
	Name        string
	Partitions  int32
	Replication int16
	Config      map[string]*string
	// ExactPartitions makes a different partition count an error (the
	// telemetry and state topics must match partition for partition).
	ExactPartitions bool
}

// Specs returns the topics a vpp deployment needs.
func (o Options) Specs() []TopicSpec {
	t := o.Topics()
	str := func(s string) *string { return &s }
	compact := map[string]*string{
		"cleanup.policy": str("compact"),
		// Segments roll every 10 s so that the cleaner can compact all
		// but the last 10 s (plus its own delay): a reader loading the
		// state topic reads about one record per site, not every write
		// of the last minute.
		"segment.ms":                str("10000"),
		"min.cleanable.dirty.ratio": str("0.1"),
		"delete.retention.ms":       str("60000"),
	}
	tel := map[string]*string{}
	if o.TelemetryRetention > 0 {
		tel["retention.ms"] = str(strconv.FormatInt(o.TelemetryRetention.Milliseconds(), 10))
		tel["segment.ms"] = str(strconv.FormatInt(min(o.TelemetryRetention.Milliseconds(), 3_600_000), 10))
	}
	rej := map[string]*string{"retention.ms": str(strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10))}
	histRetention := o.HistoryRetention
	if histRetention <= 0 {
		histRetention = DefaultHistoryRetention
	}
	hist := map[string]*string{
		"cleanup.policy": str("delete"),
		"retention.ms":   str(strconv.FormatInt(histRetention.Milliseconds(), 10)),
		// Segments roll often enough for retention to bite at this scale.
		"segment.ms": str(strconv.FormatInt(min(histRetention.Milliseconds(), 5*60_000), 10)),
	}
	setpoints := map[string]*string{
		"cleanup.policy": str("delete"),
		"retention.ms":   str("3600000"),
		"segment.ms":     str("600000"),
	}
	return []TopicSpec{
		{Name: t.Telemetry(), Partitions: o.Partitions, Replication: o.Replication, Config: tel, ExactPartitions: true},
		{Name: t.State(), Partitions: o.Partitions, Replication: o.Replication, Config: compact, ExactPartitions: true},
		{Name: t.Rejected(), Partitions: 1, Replication: o.Replication, Config: rej},
		{Name: t.Stats(), Partitions: 1, Replication: o.Replication, Config: compact},
		{Name: t.History(), Partitions: 1, Replication: o.Replication, Config: hist},
		{Name: t.Dispatch(), Partitions: 1, Replication: o.Replication, Config: compact},
		{Name: t.Setpoints(), Partitions: o.Partitions, Replication: o.Replication, Config: setpoints, ExactPartitions: true},
	}
}

// EnsureTopics creates the deployment's topics when they are missing and
// checks that existing ones match (partition counts of telemetry and state
// must be equal: state partition p belongs to telemetry partition p). It
// retries until the brokers answer or ctx ends, but fails at once (see
// Preflight) when they refuse the credentials or the TLS handshake, and
// with an *AuthzError when an ACL is missing.
func EnsureTopics(ctx context.Context, o Options) error {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return err
	}
	if err := Preflight(ctx, o); err != nil {
		return err
	}
	var admin sarama.ClusterAdmin
	for {
		admin, err = sarama.NewClusterAdmin(o.Brokers, cfg)
		if err == nil {
			break
		}
		slog.Warn("kafka not reachable, retrying", "brokers", o.Brokers, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect to kafka %v: %w", o.Brokers, err)
		case <-time.After(time.Second):
		}
	}
	defer admin.Close()
	for _, spec := range o.Specs() {
		if err := o.ensureTopic(ctx, admin, spec); err != nil {
			return err
		}
	}
	t := o.Topics()
	parts, err := partitionCount(admin, t.Telemetry())
	if err != nil {
		return o.TopicDenied(err, "DESCRIBE", t.Telemetry())
	}
	sparts, err := partitionCount(admin, t.State())
	if err != nil {
		return o.TopicDenied(err, "DESCRIBE", t.State())
	}
	if parts != sparts {
		return fmt.Errorf("%w: %s has %d partitions but %s has %d; they must match", ErrTopicMismatch, t.Telemetry(), parts, t.State(), sparts)
	}
	return nil
}

func partitionCount(admin sarama.ClusterAdmin, topic string) (int, error) {
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, err)
	}
	if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrNoError) {
		if len(md) == 1 {
			return 0, fmt.Errorf("describe topic %s: %w", topic, md[0].Err)
		}
		return 0, fmt.Errorf("describe topic %s: %v", topic, md)
	}
	return len(md[0].Partitions), nil
}

func (o Options) ensureTopic(ctx context.Context, admin sarama.ClusterAdmin, spec TopicSpec) error {
	for attempt := 0; ; attempt++ {
		md, err := admin.DescribeTopics([]string{spec.Name})
		if err == nil && len(md) == 1 && errors.Is(md[0].Err, sarama.ErrTopicAuthorizationFailed) {
			return o.TopicDenied(md[0].Err, "DESCRIBE", spec.Name)
		}
		if err == nil && len(md) == 1 && errors.Is(md[0].Err, sarama.ErrNoError) && len(md[0].Partitions) > 0 {
			if spec.ExactPartitions && int32(len(md[0].Partitions)) != spec.Partitions {
				return fmt.Errorf("%w: topic %s has %d partitions, want %d (delete it or pass --partitions %d)",
					ErrTopicMismatch, spec.Name, len(md[0].Partitions), spec.Partitions, len(md[0].Partitions))
			}
			if want := spec.Config["cleanup.policy"]; want != nil {
				if err := checkCleanupPolicy(admin, spec.Name, *want); err != nil {
					return err
				}
			}
			return nil
		}
		err = admin.CreateTopic(spec.Name, &sarama.TopicDetail{
			NumPartitions:     spec.Partitions,
			ReplicationFactor: spec.Replication,
			ConfigEntries:     spec.Config,
		}, false)
		if err == nil {
			slog.Info("created topic", "topic", spec.Name, "partitions", spec.Partitions, "replication", spec.Replication)
			continue // describe again: metadata may lag creation
		}
		var te *sarama.TopicError
		if errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists {
			continue
		}
		if errors.Is(err, sarama.ErrTopicAuthorizationFailed) || errors.Is(err, sarama.ErrClusterAuthorizationFailed) {
			return fmt.Errorf("create topic %s: %w", spec.Name, o.TopicDenied(err, "CREATE", spec.Name))
		}
		if attempt >= 20 {
			return fmt.Errorf("create topic %s: %w", spec.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topic %s: %w", spec.Name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func checkCleanupPolicy(admin sarama.ClusterAdmin, topic, want string) error {
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy"}})
	if err != nil {
		// Some brokers do not answer DescribeConfigs; the partition check
		// above is the one that matters for correctness.
		slog.Debug("describe topic config", "topic", topic, "err", err)
		return nil
	}
	for _, e := range entries {
		if e.Name == "cleanup.policy" && e.Value != want {
			return fmt.Errorf("%w: topic %s has cleanup.policy=%s, want %s", ErrTopicMismatch, topic, e.Value, want)
		}
	}
	return nil
}
