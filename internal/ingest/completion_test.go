package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// benchGateway returns a server on pub, a connection of it and a frame of
// one reading from each of devices devices, rejectPct % of them invalid
// (SoC out of range).
func benchGateway(b testing.TB, pub Publisher, devices, rejectPct int) (*Server, *conn, []byte) {
	b.Helper()
	s, err := New(Config{
		Kafka:      kafka.Options{Prefix: "bench."},
		Insecure:   true,
		DeviceRate: 1e12, // the rate limiter runs, but never limits
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, pub)
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
		if i*100 < rejectPct*devices {
			rs[i].SocPct = 150 // out of range: rejected
		}
	}
	return s, c, marshalFrame(b, rs...)
}

// benchFrame has c read frame, then takes its devices records out of the
// buffer and settles each, as the producer's result path would.
func benchFrame(ctx context.Context, tb testing.TB, s *Server, c *conn, frame []byte, devices int, settle func(*buffer.Record)) {
	if _, stop := c.handleFrame(frame); stop {
		tb.Fatal("handleFrame stopped the connection")
	}
	for range devices {
		r, err := s.buf.Next(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		settle(r)
	}
}

// benchEncodeAcks encodes c's pending acks as the ack writer does and
// returns the bytes and readings they acknowledge.
func benchEncodeAcks(c *conn) (bytes int, readings uint64) {
	out := c.s.getAckMsgs()
	defer c.s.putAckMsgs(out)
	readings = c.acks.collect(out)
	return len(out.buf), readings
}

// BenchmarkCompletionPath measures what follows Kafka's verdict on the
// readings of a gateway's frame (100 devices, one reading each): the
// server's verdict handling, the buffer's Ack, the ack tracker, and the
// encoding of the Downlink that acknowledges them (not its write). Every
// iteration reads the frame with handleFrame first, which
// BenchmarkIngestPath/valid measures nearly alone. In "verdicts" the
// benchmark goroutine hands each record's verdict to the server directly;
// in "pump" the server's pump publishes them through a SaramaPublisher to
// a producer that acknowledges at once, so the goroutine hand-offs of the
// real path are in.
func BenchmarkCompletionPath(b *testing.B) {
	const devices = 100
	b.Run("verdicts", func(b *testing.B) {
		s, c, frame := benchGateway(b, &fakePub{}, devices, 0)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		verdict := func(r *buffer.Record) { s.published(r, nil) }
		for range b.N {
			benchFrame(ctx, b, s, c, frame, devices, verdict)
			if _, n := benchEncodeAcks(c); n != devices {
				b.Fatalf("%d readings acked, want %d", n, devices)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/reading")
	})
	b.Run("pump", func(b *testing.B) {
		prod := newEchoProducer(func(*sarama.ProducerMessage) bool { return false }, func(*sarama.ProducerMessage) {})
		pub := startPublisher(prod, slog.New(slog.NewTextHandler(io.Discard, nil)))
		s, c, frame := benchGateway(b, pub, devices, 0)
		// Signal once every reading of the frame is acked: nothing is
		// outstanding, and every device's ack advanced.
		settled := make(chan struct{}, 1)
		c.acks.advanced = func() {
			if c.acks.entries == 0 && len(c.acks.dirty) == devices {
				select {
				case settled <- struct{}{}:
				default:
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		pumped := make(chan struct{})
		go func() {
			defer close(pumped)
			s.pump(ctx)
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, stop := c.handleFrame(frame); stop {
				b.Fatal("handleFrame stopped the connection")
			}
			<-settled
			if _, n := benchEncodeAcks(c); n != devices {
				b.Fatalf("%d readings acked, want %d", n, devices)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/reading")
		cancel()
		<-pumped
		if err := pub.Close(); err != nil {
			b.Fatal(err)
		}
	})
}

// TestCompletionPathAllocs: after the frame's records, nothing on the path
// from a record's verdict to its ack's bytes allocates, and the bytes are
// the Downlink acking every device of the frame.
func TestCompletionPathAllocs(t *testing.T) {
	const devices = 100
	s, c, frame := benchGateway(t, instantPub{}, devices, 0)
	ctx := context.Background()
	out := &ackMsgs{}
	publish := func(r *buffer.Record) {
		if err := s.publish(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	path := func() {
		benchFrame(ctx, t, s, c, frame, devices, publish)
		out.reset()
		if n := c.acks.collect(out); n != devices || len(out.ends) != 1 {
			t.Fatalf("%d readings acked in %d messages, want %d in 1", n, len(out.ends), devices)
		}
	}
	path()
	var dl vppv1.Downlink
	if err := proto.Unmarshal(out.msg(0), &dl); err != nil {
		t.Fatal(err)
	}
	if got := dl.GetAck().GetDevices(); len(got) != devices || got[0].AckedSeq != 1 {
		t.Fatalf("acks %v", got)
	}
	// One allocation: the frame's records.
	if n := testing.AllocsPerRun(100, path); n > 1 && !raceEnabled {
		t.Fatalf("%v allocations per frame of %d readings", n, devices)
	}
}

// instantPub is a Publisher that acknowledges every message at once and
// keeps nothing.
type instantPub struct{}

func (instantPub) Publish(_ context.Context, _ *buffer.Message, v Verdict) error {
	v.Published(nil)
	return nil
}

func (instantPub) Close() error { return nil }
