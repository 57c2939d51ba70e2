package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
)

func TestServerReady(t *testing.T) {
	s, err := New(Config{Kafka: kafka.Options{Prefix: "test."}, Insecure: true}, &fakePub{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason := s.Ready(); ok || reason != "not listening" {
		t.Errorf("before Listen: %v %q", ok, reason)
	}
	srv := startServer(t, Config{}, &fakePub{})
	deadline := time.Now().Add(5 * time.Second)
	for ok, _ := srv.Ready(); !ok; ok, _ = srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("not ready while serving")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.ctr.kafkaDown.Store(true)
	if ok, reason := srv.Ready(); ok || !strings.Contains(reason, "kafka") {
		t.Errorf("kafka down: %v %q", ok, reason)
	}
	srv.ctr.kafkaDown.Store(false)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := srv.Ready(); ok {
		t.Error("ready after shutdown")
	}
}

// TestReadyProbesKafka: an idle server, which publishes nothing, is not
// ready within about 2 s of Kafka going away: it probes Kafka.
func TestReadyProbesKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded broker")
	}
	emb, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	opts := kafka.Options{Brokers: []string{emb.Addr()}, Prefix: kafkatest.Prefix("probe"), Version: kafka.DefaultVersion,
		Partitions: 1, Replication: 1, ClientID: "vpp-test"}
	srv := startServer(t, Config{Kafka: opts, ShutdownTimeout: time.Second}, nil)
	eventually(t, "ready", func() bool { ok, _ := srv.Ready(); return ok })
	// A few probes pass while Kafka is up.
	time.Sleep(3 * probeInterval)
	if ok, reason := srv.Ready(); !ok {
		t.Fatalf("not ready with Kafka up: %s", reason)
	}

	emb.Close()
	stopped := time.Now()
	// probeInterval + probeTimeout, and a second for a loaded machine.
	const documented = 3 * time.Second
	deadline := stopped.Add(10 * time.Second)
	for {
		ok, reason := srv.Ready()
		if !ok {
			took := time.Since(stopped)
			t.Logf("not ready %v after Kafka stopped: %s", took.Round(time.Millisecond), reason)
			if !strings.Contains(reason, "kafka") {
				t.Errorf("reason %q does not name kafka", reason)
			}
			// The figure the docs give.
			if took > documented {
				t.Errorf("not ready only after %v, documented within about %v", took, documented)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still ready 10 s after Kafka stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := srv.Stats(); st.Received != 0 {
		t.Fatalf("the server was not idle: %d readings", st.Received)
	}
}
