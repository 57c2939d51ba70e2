package main

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vppctl/vpp/internal/kafka"
)

// kafkaFlags are the Kafka flags every Kafka-speaking command shares.
type kafkaFlags struct {
	brokers     string
	prefix      string
	version     string
	partitions  int32
	replication int16
	history     time.Duration
	compression string
	stateCodec  string

	tls          bool
	ca           string
	cert         string
	key          string
	serverName   string
	saslMech     string
	user         string
	passwordFile string
}

// kafkaPasswordEnv holds the SASL password: there is no flag for it, so
// that it never shows in a process list or a shell history.
const kafkaPasswordEnv = envPrefix + "KAFKA_PASSWORD"

// register adds the shared Kafka flags to fs, with the kafka package's
// defaults.
func (f *kafkaFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.brokers, "brokers", kafka.DefaultBrokers, "Kafka bootstrap brokers, comma-separated host:port")
	fs.StringVar(&f.prefix, "topic-prefix", kafka.DefaultPrefix, "prefix of every Kafka topic name")
	fs.StringVar(&f.version, "kafka-version", kafka.DefaultVersion, "Kafka protocol version to speak (not higher than the broker's)")
	fs.Int32Var(&f.partitions, "partitions", kafka.DefaultPartitions, "partitions of the telemetry and state topics when vpp creates them")
	fs.Int16Var(&f.replication, "replication", kafka.DefaultReplication, "replication factor of topics vpp creates")
	fs.StringVar(&f.compression, "compression", kafka.DefaultCompression, "codec of the telemetry, rejected and stats record batches: none, gzip, snappy, lz4 or zstd")
	fs.StringVar(&f.stateCodec, "state-compression", kafka.DefaultStateCompression, "codec of the aggregator's state record batches (rewritten every flush, compacted): none, gzip, snappy, lz4 or zstd")
	fs.DurationVar(&f.history, "history-retention", kafka.DefaultHistoryRetention, "retention of the history topic (sparkline backfill) when vpp creates it")
	fs.BoolVar(&f.tls, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&f.ca, "kafka-ca", "", "with --kafka-tls: PEM bundle of the CAs that sign the broker certificates (default: the system roots)")
	fs.StringVar(&f.cert, "kafka-cert", "", "with --kafka-tls: PEM client certificate for mutual TLS (with --kafka-key)")
	fs.StringVar(&f.key, "kafka-key", "", "with --kafka-tls: PEM private key of --kafka-cert")
	fs.StringVar(&f.serverName, "kafka-tls-server-name", "", "with --kafka-tls: name the broker certificates must be valid for (default: the host of each broker address)")
	fs.StringVar(&f.saslMech, "kafka-sasl-mechanism", "", "SASL authentication: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)")
	fs.StringVar(&f.user, "kafka-user", "", "SASL user name; the password comes from $"+kafkaPasswordEnv+" or --kafka-password-file")
	fs.StringVar(&f.passwordFile, "kafka-password-file", "", "file holding the SASL password (used when $"+kafkaPasswordEnv+" is unset)")
}

// options returns the kafka.Options the flags describe; clientID names the
// process to the brokers.
func (f *kafkaFlags) options(clientID string) kafka.Options {
	var brokers []string
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return kafka.Options{
		Brokers:     brokers,
		Prefix:      f.prefix,
		Version:     f.version,
		Partitions:  f.partitions,
		Replication: f.replication,
		ClientID:    clientID,

		HistoryRetention: f.history,
		Compression:      f.compression,
		StateCompression: f.stateCodec,
		Security: kafka.Security{
			TLS:           f.tls,
			CAFile:        f.ca,
			CertFile:      f.cert,
			KeyFile:       f.key,
			ServerName:    f.serverName,
			SASLMechanism: f.saslMech,
			User:          f.user,
			Password:      kafka.Secret(os.Getenv(kafkaPasswordEnv)),
			PasswordFile:  f.passwordFile,
		},
	}
}
