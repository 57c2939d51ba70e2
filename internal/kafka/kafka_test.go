package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
)

func TestEnsureTopicsCreatesAndChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o := kafkatest.Options(t, 3)
	if err := kafka.EnsureTopics(ctx, o); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	// Idempotent on a second run.
	if err := kafka.EnsureTopics(ctx, o); err != nil {
		t.Fatalf("ensure topics again: %v", err)
	}
	cfg, err := o.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(o.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for topic, want := range map[string]int{o.Topics().Telemetry(): 3, o.Topics().State(): 3, o.Topics().Rejected(): 1, o.Topics().Stats(): 1} {
		parts, err := client.Partitions(topic)
		if err != nil {
			t.Fatalf("partitions of %s: %v", topic, err)
		}
		if len(parts) != want {
			t.Errorf("%s has %d partitions, want %d", topic, len(parts), want)
		}
	}
	// A different partition count for the existing topics is an error.
	o.Partitions = 5
	err = kafka.EnsureTopics(ctx, o)
	if !errors.Is(err, kafka.ErrTopicMismatch) {
		t.Fatalf("ensure with other partition count: got %v, want ErrTopicMismatch", err)
	}
}

func TestSpecsHistory(t *testing.T) {
	for _, tt := range []struct {
		retention time.Duration
		want      string
	}{{0, "900000"}, {time.Hour, "3600000"}} {
		o := kafka.Options{Prefix: "x.", Partitions: 12, Replication: 3, HistoryRetention: tt.retention}
		var found bool
		for _, s := range o.Specs() {
			if s.Name != o.Topics().History() {
				continue
			}
			found = true
			if s.Name != "x.history" || s.Partitions != 1 || s.Replication != 3 || s.ExactPartitions ||
				*s.Config["cleanup.policy"] != "delete" || *s.Config["retention.ms"] != tt.want {
				t.Errorf("history spec %+v policy %s retention %s, want 1 partition, delete, %s",
					s, *s.Config["cleanup.policy"], *s.Config["retention.ms"], tt.want)
			}
		}
		if !found {
			t.Errorf("no history topic in %+v", o.Specs())
		}
	}
}

// TestProducerCompression checks that --compression selects the codec, LZ4
// by default, and that an unknown codec is an error that names the valid
// ones.
func TestProducerCompression(t *testing.T) {
	for name, want := range map[string]sarama.CompressionCodec{
		"": sarama.CompressionLZ4, "lz4": sarama.CompressionLZ4, "none": sarama.CompressionNone,
		"zstd": sarama.CompressionZSTD, "snappy": sarama.CompressionSnappy, "gzip": sarama.CompressionGZIP,
	} {
		cfg, err := kafka.Options{Version: kafka.DefaultVersion, Compression: name}.ProducerConfig()
		if err != nil {
			t.Fatalf("compression %q: %v", name, err)
		}
		if cfg.Producer.Compression != want {
			t.Errorf("compression %q: codec %v, want %v", name, cfg.Producer.Compression, want)
		}
	}
	if _, err := (kafka.Options{Version: kafka.DefaultVersion, Compression: "brotli"}).ProducerConfig(); err == nil {
		t.Fatal("compression brotli: no error")
	}
}

// TestStateProducerCompression checks that --state-compression selects the
// state producer's codec, none by default, independently of --compression.
func TestStateProducerCompression(t *testing.T) {
	for name, want := range map[string]sarama.CompressionCodec{
		"": sarama.CompressionNone, "none": sarama.CompressionNone, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	} {
		o := kafka.Options{Version: kafka.DefaultVersion, Compression: "snappy", StateCompression: name}
		cfg, err := o.StateProducerConfig()
		if err != nil {
			t.Fatalf("state compression %q: %v", name, err)
		}
		if cfg.Producer.Compression != want {
			t.Errorf("state compression %q: codec %v, want %v", name, cfg.Producer.Compression, want)
		}
		if cfg, _ := o.ProducerConfig(); cfg.Producer.Compression != sarama.CompressionSnappy {
			t.Errorf("state compression %q changed the telemetry codec to %v", name, cfg.Producer.Compression)
		}
		if !cfg.Producer.Idempotent || cfg.Producer.RequiredAcks != sarama.WaitForAll {
			t.Errorf("state compression %q: producer not durable (idempotent %v, acks %v)", name, cfg.Producer.Idempotent, cfg.Producer.RequiredAcks)
		}
	}
	if _, err := (kafka.Options{Version: kafka.DefaultVersion, StateCompression: "brotli"}).StateProducerConfig(); err == nil {
		t.Fatal("state compression brotli: no error")
	}
}
