package ingest

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
)

// TestProbeOneAtATime probes a "broker" that accepts connections and never
// answers, with callers that give up long before a probe ends: they must
// share the one running probe instead of each starting another, or
// probes pile up for as long as the cluster hangs.
func TestProbeOneAtATime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	p := &SaramaPublisher{probeOpts: kafka.Options{Brokers: []string{ln.Addr().String()}, Prefix: "probe.", Version: kafka.DefaultVersion, ClientID: "probe-test"}}
	for range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if err := p.Probe(ctx); err == nil {
			t.Fatal("a probe of a broker that never answers succeeded")
		}
		cancel()
	}
	if n := runningProbes(); n > 1 {
		t.Fatalf("%d probes running after 6 calls that gave up, want at most 1", n)
	}
}

// runningProbes counts the goroutines running a probe.
func runningProbes() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "(*SaramaPublisher).probe(")
}
