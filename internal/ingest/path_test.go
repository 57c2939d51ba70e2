package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// BenchmarkIngestPath measures ingest's whole per-frame path on a gateway
// connection of 100 devices: decode and validate, build the records, Put
// them into the MemoryBuffer, then (as the producer would) take them out
// with Next and Ack them, which completes each reading in the ack tracker.
// With acks, the ack writer's collect runs after every frame too (it
// encodes the Downlink and forgets the devices with nothing outstanding,
// as with devices that send less often than AckInterval). Allocations are
// per frame; ns/reading is the time per reading.
func BenchmarkIngestPath(b *testing.B) {
	for _, tc := range []struct {
		name      string
		rejectPct int  // share of readings rejected (SoC out of range)
		acks      bool // collect acks after every frame
	}{{"valid", 0, false}, {"valid+acks", 0, true}, {"rejected10pct", 10, false}} {
		b.Run(tc.name, func(b *testing.B) {
			const devices = 100
			s, err := New(Config{
				Kafka:    kafka.Options{Prefix: "bench."},
				Insecure: true,
				// The rate limiter runs, but never limits.
				DeviceRate: 1e12,
				Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			}, &fakePub{})
			if err != nil {
				b.Fatal(err)
			}
			c := newConn(s, nil, "192.0.2.1:1234", nil)
			nowMS := time.Now().UnixMilli()
			rs := make([]*vppv1.Reading, devices)
			for i := range rs {
				rs[i] = &vppv1.Reading{
					DeviceId: fmt.Sprintf("dev-%05d", i), SiteId: fmt.Sprintf("site-%04d", i/10),
					SubstationId: "sub-1", RegionId: "north",
					Seq: 1, TsMs: nowMS,
					SocPct: 50, SohPct: 98, PowerKw: 2.5, VoltageV: 400, CurrentA: 6, TemperatureC: 25,
					CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING,
				}
				if i*100 < tc.rejectPct*devices {
					rs[i].SocPct = 150
				}
			}
			frame := marshalFrame(b, rs...)
			ctx := context.Background()
			var acks ackMsgs
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			for range b.N {
				if _, stop := c.handleFrame(frame); stop {
					b.Fatal("handleFrame stopped the connection")
				}
				for range devices {
					r, err := s.buf.Next(ctx)
					if err != nil {
						b.Fatal(err)
					}
					s.buf.Ack(r)
				}
				if tc.acks {
					acks.reset()
					if c.acks.collect(&acks); len(acks.ends) != 1 {
						b.Fatalf("%d ack messages, want 1", len(acks.ends))
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/reading")
			if got := s.ctr.received.Load(); got != uint64(b.N*devices) {
				b.Fatalf("received %d readings, want %d", got, b.N*devices)
			}
		})
	}
}
