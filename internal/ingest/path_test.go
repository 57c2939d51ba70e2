package ingest

import (
	"context"
	"testing"
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
			s, c, frame := benchGateway(b, &fakePub{}, devices, tc.rejectPct)
			ctx := context.Background()
			var acks ackMsgs
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			ack := s.buf.Ack
			for range b.N {
				benchFrame(ctx, b, s, c, frame, devices, ack)
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
