// Package kafkatest gives tests a Kafka to talk to: the real broker named by
// VPP_TEST_BROKERS when set (CI runs Apache Kafka), otherwise an embedded
// broker started for the test and stopped by it.
package kafkatest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/vppctl/vpp/internal/kafka"
)

// EnvBrokers names the environment variable with a real broker list.
const EnvBrokers = "VPP_TEST_BROKERS"

// Options returns Kafka options for a test: brokers from VPP_TEST_BROKERS or
// a fresh embedded broker, and a topic prefix unique to this test so tests
// can share one real broker without seeing each other's data.
func Options(t testing.TB, partitions int32) kafka.Options {
	t.Helper()
	return kafka.Options{
		Brokers:     Brokers(t),
		Prefix:      Prefix("test"),
		Version:     kafka.DefaultVersion,
		Partitions:  partitions,
		Replication: 1,
		ClientID:    "vpp-test",
	}
}

// Brokers returns the real brokers of VPP_TEST_BROKERS, or starts an
// embedded broker that the test stops.
func Brokers(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv(EnvBrokers); env != "" {
		return strings.Split(env, ",")
	}
	b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	return []string{b.Addr()}
}

// Prefix returns a topic prefix starting with name and unique to this call.
func Prefix(name string) string {
	var buf [4]byte
	_, _ = rand.Read(buf[:])
	return name + "." + hex.EncodeToString(buf[:]) + "."
}

// Real reports whether tests run against a real broker.
func Real() bool { return os.Getenv(EnvBrokers) != "" }
