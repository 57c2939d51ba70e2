// Package kafkatest gives tests a Kafka to talk to: the real broker named by
// VPP_TEST_BROKERS when set (CI runs Apache Kafka), otherwise an embedded
// broker started for the test and stopped by it. Under CI=true the variable
// is required: the tests meant for real Kafka must not fall back to the
// embedded broker unnoticed.
package kafkatest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/testutil"
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
// embedded broker that the test stops; under CI=true a missing
// VPP_TEST_BROKERS fails the test.
func Brokers(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv(EnvBrokers); env != "" {
		return strings.Split(env, ",")
	}
	if testutil.CI() {
		t.Fatalf("%s is not set: under CI=true the Kafka tests run against a real broker", EnvBrokers)
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
