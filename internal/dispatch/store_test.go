package dispatch

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TestStoreConnectsOnPut: a store for an unreachable Kafka is made (so a
// dashboard or API starts while Kafka is away) and its Put says why it
// cannot write.
func TestStoreConnectsOnPut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	st, err := NewStore(kafka.Options{Brokers: []string{addr}, Prefix: "x.", Version: kafka.DefaultVersion})
	if err != nil {
		t.Fatalf("NewStore with Kafka away: %v", err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = st.Put(ctx, &vppv1.Dispatch{Id: "d-1", Node: "fleet"})
	if err == nil || !strings.Contains(err.Error(), "connect to kafka") {
		t.Fatalf("Put with Kafka away = %v, want the connect error", err)
	}
}
