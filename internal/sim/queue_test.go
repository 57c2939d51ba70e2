package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// frameEntry is r as an entry of a vpp.v1.Frame, built with proto.Marshal.
func frameEntry(t *testing.T, r *vppv1.Reading) []byte {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
}

func TestReadingQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var q readingQueue
	var want [][]byte // the entries q should hold
	check := func(step int) {
		t.Helper()
		if q.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(want))
		}
		if got, w := q.bytes(), bytes.Join(want, nil); !bytes.Equal(got, w) {
			t.Fatalf("step %d: bytes\n%x\nwant\n%x", step, got, w)
		}
	}
	reading := func(idLen int) *vppv1.Reading {
		return &vppv1.Reading{DeviceId: strings.Repeat("d", idLen), SiteId: "s", Seq: rng.Uint64N(1 << 40),
			SocPct: rng.Float64(), PowerKw: float64(rng.IntN(2)), Mode: vppv1.Mode_MODE_IDLE}
	}
	// Readings around the sizes where the length takes one, two and three
	// bytes, pushed and popped at random.
	for step := range 20000 {
		if len(want) > 0 && rng.IntN(3) == 0 {
			k := 1 + rng.IntN(len(want))
			q.pop(k)
			want = want[k:]
		} else {
			idLen := []int{1, 90, 100, 110, 120, 16300, 16400}[rng.IntN(7)]
			r := reading(idLen)
			e := q.push(r)
			if w := frameEntry(t, r); !bytes.Equal(e, w) {
				t.Fatalf("step %d: push returned\n%x\nwant\n%x", step, e, w)
			}
			want = append(want, frameEntry(t, r))
		}
		check(step)
	}

	// Steady sizes: the buffer stays within about twice what it holds,
	// and a drained buffer that grew large is released.
	q, want = readingQueue{}, nil
	peak, largest := 0, 0
	for step := range 20000 {
		if len(want) > 0 && rng.IntN(2) == 0 {
			k := 1 + rng.IntN(min(len(want), 40))
			q.pop(k)
			want = want[k:]
		} else {
			want = append(want, q.push(reading(100+rng.IntN(10))))
			want[len(want)-1] = bytes.Clone(want[len(want)-1])
			largest = max(largest, len(want[len(want)-1]))
		}
		check(step)
		live := len(q.bytes())
		peak = max(peak, live)
		if limit := 2*(peak+largest+entrySlack) + 64; cap(q.buf) > limit {
			t.Fatalf("step %d: buffer of %d bytes for %d (at most %d so far)", step, cap(q.buf), live, peak)
		}
	}
	for range 200 {
		want = append(want, bytes.Clone(q.push(reading(100))))
	}
	q.pop(len(want))
	if q.len() != 0 || q.buf != nil {
		t.Fatalf("drained queue keeps %d entries, a buffer of %d bytes", q.len(), cap(q.buf))
	}
}

// frameRecorder records what flush writes.
type frameRecorder struct {
	t      *testing.T
	frames []*vppv1.Frame
}

func (w *frameRecorder) WriteMessage(_ int, data []byte) error {
	var f vppv1.Frame
	if err := proto.Unmarshal(data, &f); err != nil {
		w.t.Fatalf("frame: %v", err)
	}
	if b, err := proto.Marshal(&f); err != nil || !bytes.Equal(b, data) {
		w.t.Fatalf("frame is not what proto.Marshal writes (%v):\n%x\n%x", err, data, b)
	}
	if n := len(f.Readings); n == 0 || n > MaxFrameReadings {
		w.t.Fatalf("frame of %d readings", n)
	}
	w.frames = append(w.frames, &f)
	return nil
}

// TestFlushSendsTheModelsReadings drives connections through ticks, acks
// and reconnects without a network, and checks every frame against the
// battery model of a second simulator with the same seed: each reading is
// serialized as proto.Marshal would, fresh readings go out once in the
// order generated, and a reconnect resends exactly the unacked ones,
// device by device.
func TestFlushSendsTheModelsReadings(t *testing.T) {
	cfg := Config{URL: "ws://127.0.0.1:1/v1/telemetry", Devices: 700, Conns: 3, Rate: 7000, Seed: 3,
		MaxInFlight: 9, DuplicateFrames: 0.1, Start: time.Date(2026, 6, 21, 10, 0, 0, 0, time.UTC), Logger: discard()}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	oracle, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_780_000_000, 0)
	s.t0 = t0
	s.t0ms.Store(t0.UnixMilli())
	oracle.t0ms.Store(t0.UnixMilli())
	model := map[string][][]byte{} // device → its readings by seq-1, serialized
	oracleDev := map[string]*device{}
	for _, c := range oracle.conns {
		for _, d := range c.devs {
			oracleDev[d.id] = d
		}
	}
	serialized := func(id string, seq uint64) []byte {
		for uint64(len(model[id])) < seq {
			b, err := proto.Marshal(oracle.next(oracleDev[id]))
			if err != nil {
				t.Fatal(err)
			}
			model[id] = append(model[id], b)
		}
		return model[id][seq-1]
	}

	rng := rand.New(rand.NewPCG(8, 8))
	sent := map[string]uint64{} // highest seq sent per device
	now := t0
	var resent int64
	for tick := range 300 {
		gap := time.Duration(rng.IntN(150)) * time.Millisecond
		if rng.IntN(10) == 0 {
			gap *= 10 // frames of more than MaxFrameReadings fresh readings
		}
		now = now.Add(gap)
		for _, c := range s.conns {
			before := map[*device]uint64{}
			for _, d := range c.devs {
				before[d] = d.gen
			}
			c.generate(now)
			reconnect := tick == 0 || rng.IntN(25) == 0
			if reconnect {
				c.retransmit = true
			}
			acked := map[*device]uint64{}
			for _, d := range c.devs {
				acked[d] = d.acked
			}
			w := &frameRecorder{t: t}
			if err := c.flush(w); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range w.frames {
				for _, r := range f.Readings {
					b, err := proto.Marshal(r)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(b, serialized(r.DeviceId, r.Seq)) {
						t.Fatalf("tick %d: %s seq %d is not the model's reading:\n%v", tick, r.DeviceId, r.Seq, r)
					}
					got = append(got, fmt.Sprintf("%s/%d", r.DeviceId, r.Seq))
				}
			}
			// What should have gone out, without the duplicated frames.
			var want []string
			if reconnect {
				for _, d := range c.devs {
					for seq := acked[d] + 1; seq <= d.gen; seq++ {
						want = append(want, fmt.Sprintf("%s/%d", d.id, seq))
						if seq <= sent[d.id] {
							resent++
						}
					}
				}
			}
			for _, d := range c.devs {
				if !reconnect {
					for seq := before[d] + 1; seq <= d.gen; seq++ {
						want = append(want, fmt.Sprintf("%s/%d", d.id, seq))
					}
				}
				sent[d.id] = d.gen
			}
			got = dedupeFrames(w, got)
			if !reconnect {
				// Fresh readings go out in generation order, which is
				// not device order; compare as sets, and order per device.
				if !sameSet(got, want) {
					t.Fatalf("tick %d: sent %d readings %v…, want %d %v…", tick, len(got), head(got), len(want), head(want))
				}
			} else if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("tick %d: resent %d readings %v…, want %d %v…", tick, len(got), head(got), len(want), head(want))
			}

			// Ingest acks part of what it got, or nothing for a while, so
			// that reconnects resend more than a frame holds.
			if tick%50 < 35 {
				ack := &vppv1.Ack{}
				for _, d := range c.devs {
					if rng.IntN(2) == 0 && d.gen > 0 {
						ack.Devices = append(ack.Devices, &vppv1.DeviceAck{DeviceId: d.id, AckedSeq: d.acked + rng.Uint64N(d.gen-d.acked+1)})
					}
				}
				b, err := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: ack}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.applyDownlink(b, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	st := s.Stats()
	if st.Retransmitted != resent || st.Sent == 0 || st.Acked == 0 || st.DuplicateFrames == 0 {
		t.Fatalf("stats %+v, want %d retransmitted", st, resent)
	}
	for _, c := range s.conns {
		for _, d := range c.devs {
			if d.queue.len() != int(d.gen-d.acked) || d.queue.len() > cfg.MaxInFlight {
				t.Fatalf("device %s: %d queued, %d unacked", d.id, d.queue.len(), d.gen-d.acked)
			}
		}
	}
}

// dedupeFrames drops the readings of frames written twice in a row.
func dedupeFrames(w *frameRecorder, got []string) []string {
	var out []string
	i := 0
	for k, f := range w.frames {
		n := len(f.Readings)
		if k == 0 || !proto.Equal(f, w.frames[k-1]) {
			out = append(out, got[i:i+n]...)
		}
		i += n
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x]--; m[x] < 0 {
			return false
		}
	}
	return true
}

func head(s []string) []string { return s[:min(len(s), 5)] }
