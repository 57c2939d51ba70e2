package testutil

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
)

// fatalTB records the first Fatalf and stops the waiting helper there.
type fatalTB struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// failure runs wait against a fatalTB and returns what it failed with ("" if
// it returned).
func failure(t *testing.T, wait func(tb testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopped); !ok {
					panic(r)
				}
			}
		}()
		wait(f)
	}()
	return f.msg
}

func TestEventually(t *testing.T) {
	n := 0
	if msg := failure(t, func(tb testing.TB) {
		Eventually(tb, time.Second, time.Millisecond, "three calls", func() bool { n++; return n == 3 })
	}); msg != "" || n != 3 {
		t.Fatalf("Eventually: failed %q after %d calls, want success after 3", msg, n)
	}
	msg := failure(t, func(tb testing.TB) {
		Eventually(tb, 20*time.Millisecond, time.Millisecond, "never", func() bool { return false })
	})
	if msg != "timed out after 20ms waiting for never" {
		t.Fatalf("Eventually timed out with %q", msg)
	}
}

func TestWaitFor(t *testing.T) {
	msg := failure(t, func(tb testing.TB) {
		WaitFor(context.Background(), tb, 20*time.Millisecond, time.Millisecond, "state", func() (bool, string) { return false, "2 of 3" })
	})
	if msg != "timed out after 20ms waiting for state: 2 of 3" {
		t.Fatalf("WaitFor timed out with %q", msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	msg = failure(t, func(tb testing.TB) {
		WaitFor(ctx, tb, 0, time.Millisecond, "state", func() (bool, string) { return false, "" })
	})
	if !strings.HasPrefix(msg, "waiting for state: context canceled") {
		t.Fatalf("WaitFor with an ended context failed with %q", msg)
	}
}

func TestKafkaFlags(t *testing.T) {
	o := kafka.Options{Brokers: []string{"a:9092", "b:9092"}, Prefix: "p.", Partitions: 4, Replication: 3}
	want := []string{"--brokers", "a:9092,b:9092", "--topic-prefix", "p.", "--partitions", "4", "--replication", "3"}
	if got := KafkaFlags(o); !slices.Equal(got, want) {
		t.Fatalf("KafkaFlags = %q, want %q", got, want)
	}
	o.Replication = 0
	if got := KafkaFlags(o); !slices.Equal(got, want[:6]) {
		t.Fatalf("KafkaFlags without replication = %q, want %q", got, want[:6])
	}
	o.Security = kafka.Security{TLS: true, CAFile: "ca.pem", SASLMechanism: kafka.SASLScramSHA512, User: "vpp",
		Password: "never-a-flag", PasswordFile: "pw"}
	want = append(want[:6:6], "--kafka-tls", "--kafka-ca", "ca.pem", "--kafka-sasl-mechanism", "SCRAM-SHA-512",
		"--kafka-user", "vpp", "--kafka-password-file", "pw")
	if got := KafkaFlags(o); !slices.Equal(got, want) {
		t.Fatalf("KafkaFlags with security = %q, want %q", got, want)
	}
}
