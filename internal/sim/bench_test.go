package sim

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// discardWriter stands in for the WebSocket: it counts the frames and bytes
// flush writes.
type discardWriter struct{ frames, bytes int }

func (w *discardWriter) WriteMessage(_ int, data []byte) error {
	w.frames++
	w.bytes += len(data)
	return nil
}

// ackAll is a serialized Downlink acking every reading of c's devices: the
// acked seq is clamped to what each device generated.
func ackAll(tb testing.TB, c *conn) []byte {
	tb.Helper()
	ack := &vppv1.Ack{}
	for _, d := range c.devs {
		ack.Devices = append(ack.Devices, &vppv1.DeviceAck{DeviceId: d.id, AckedSeq: math.MaxUint64})
	}
	b, err := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: ack}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkConnCycle measures the simulator's CPU per reading without the
// network: every connection generates one reading per device (generate,
// which runs the battery model and serializes), frames and writes them
// (flush, to a writer that discards), and applies the ack that ingest
// would send for them (applyDownlink). One op is one reading.
func BenchmarkConnCycle(b *testing.B) {
	const devices, conns = 2000, 16 // 125 readings per frame
	s, err := New(Config{URL: "ws://127.0.0.1:1/v1/telemetry", Devices: devices, Conns: conns,
		Rate: devices, Seed: 1, Start: time.Date(2026, 6, 21, 0, 0, 0, 0, time.UTC), Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Unix(1_780_000_000, 0)
	s.t0 = t0
	s.t0ms.Store(t0.UnixMilli())
	acks := make([][]byte, conns)
	for i, c := range s.conns {
		acks[i] = ackAll(b, c)
		c.retransmit = true // as run does on connect
	}
	var w discardWriter
	var scratch []devAck
	b.ReportAllocs()
	b.ResetTimer()
	tick := 0
	for n := 0; n < b.N; n += devices {
		tick++
		now := t0.Add(time.Duration(tick) * time.Second) // one reading per device
		for i, c := range s.conns {
			c.generate(now)
			if err := c.flush(&w); err != nil {
				b.Fatal(err)
			}
			if scratch, err = c.applyDownlink(acks[i], scratch); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if st := s.Stats(); st.InFlight != 0 || st.Sent != int64(tick*devices) {
		b.Fatalf("stats %+v after %d ticks", st, tick)
	}
}

// BenchmarkNext measures the battery model: one reading of one device.
func BenchmarkNext(b *testing.B) {
	const devices = 2000
	s, err := New(Config{URL: "ws://127.0.0.1:1/v1/telemetry", Devices: devices, Rate: devices, Seed: 1,
		Start: time.Date(2026, 6, 21, 0, 0, 0, 0, time.UTC), Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	var devs []*device
	for _, c := range s.conns {
		devs = append(devs, c.devs...)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.next(devs[i])
		if i++; i == len(devs) {
			i = 0
		}
	}
}

// BenchmarkApplyDownlink measures reading an ack message, per device entry
// (the devices' readings are acked already, so it is parsing, lookup and
// locking).
func BenchmarkApplyDownlink(b *testing.B) {
	const devices, conns = 2000, 16
	s, err := New(Config{URL: "ws://127.0.0.1:1/v1/telemetry", Devices: devices, Conns: conns,
		Rate: devices, Seed: 1, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	c := s.conns[3]
	msg := ackAll(b, c)
	var scratch []devAck
	b.ReportAllocs()
	for n := 0; n < b.N; n += len(c.devs) {
		if scratch, err = c.applyDownlink(msg, scratch); err != nil {
			b.Fatal(err)
		}
	}
}
