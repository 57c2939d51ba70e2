package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
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
