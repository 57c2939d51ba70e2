package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/queue"
	"github.com/vppctl/vpp/proto/vppv1"
)

// collectAcks collects tr's acks and decodes them with proto.Unmarshal.
func collectAcks(t testing.TB, tr *ackTracker) (acks map[string]uint64, msgs int, readings uint64) {
	t.Helper()
	var out ackMsgs
	readings = tr.collect(&out)
	acks = map[string]uint64{}
	for i := range out.ends {
		var dl vppv1.Downlink
		if err := proto.Unmarshal(out.msg(i), &dl); err != nil {
			t.Fatalf("ack message %d: %v", i, err)
		}
		if dl.GetAck() == nil {
			t.Fatalf("ack message %d has no ack: %v", i, &dl)
		}
		for _, a := range dl.GetAck().GetDevices() {
			if _, dup := acks[a.DeviceId]; dup {
				t.Fatalf("device %q acked twice in one collect", a.DeviceId)
			}
			acks[a.DeviceId] = a.AckedSeq
		}
	}
	return acks, len(out.ends), readings
}

// add registers one reading of device, as addFrame does a frame's.
func (t *ackTracker) add(device string, seq uint64) ackRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addLocked(t.device(device), seq)
}

func TestAckTracker(t *testing.T) {
	tr := newAckTracker(100)
	acks := func() map[string]uint64 {
		m, _, _ := collectAcks(t, tr)
		return m
	}
	// Out of order: 3, 1, 2 received; 3 then 1 then 2 durable.
	refs := map[uint64]ackRef{}
	for _, s := range []uint64{3, 1, 2} {
		refs[s] = tr.add("a", s)
	}
	refs[3].dev.Complete(3)
	if m := acks(); len(m) != 0 {
		t.Fatalf("ack while 1 and 2 outstanding: %v", m)
	}
	refs[1].dev.Complete(1)
	if m := acks(); m["a"] != 1 {
		t.Fatalf("after 1 durable: %v, want a=1", m)
	}
	refs[2].dev.Complete(2)
	if m := acks(); m["a"] != 3 {
		t.Fatalf("after all durable: %v, want a=3", m)
	}
	if tr.size() != 0 || tr.devices.Len() != 0 {
		t.Fatalf("tracker keeps %d entries, %d devices", tr.size(), tr.devices.Len())
	}
	// A retransmitted duplicate and a lower seq after a higher one.
	b1, b2 := tr.add("b", 5), tr.add("b", 5)
	b1.dev.Complete(5)
	// One copy of reading 5 is durable: that is reading 5 durable.
	if m := acks(); m["b"] != 5 {
		t.Fatalf("got %v, want b=5", m)
	}
	b2.dev.Complete(5)
	b4 := tr.add("b", 4)
	if m := acks(); len(m) != 0 {
		t.Fatalf("ack repeated: %v", m)
	}
	b4.dev.Complete(4)
	if m := acks(); len(m) != 0 {
		t.Fatalf("ack went backwards or repeated: %v", m)
	}
}

func TestAckTrackerRoom(t *testing.T) {
	tr := newAckTracker(4)
	a1 := tr.add("a", 1)
	tr.add("a", 2)
	tr.add("a", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.waitRoom(ctx, 2); err == nil {
		t.Fatal("room for 2 more with 3 of 4 held")
	}
	a1.dev.Complete(1)
	if err := tr.waitRoom(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
}

// refAcks is the reference TestAckTrackerModel compares the tracker with:
// its algorithm in the plainest form, per device ID two heaps of seqs; a
// completion goes to done, and the ack advances while the minima match.
type refAcks struct {
	devices map[string]*refDevice
	entries int
}

type refDevice struct {
	pend, done  queue.SeqHeap
	acked, sent uint64
	unsent      uint64
	dirty       bool
}

func (r *refAcks) add(device string, seq uint64) {
	d := r.devices[device]
	if d == nil {
		d = &refDevice{}
		r.devices[device] = d
	}
	d.pend.Push(seq)
	r.entries++
}

func (r *refAcks) complete(device string, seq uint64) {
	d := r.devices[device]
	d.done.Push(seq)
	r.entries++
	for d.done.Len() > 0 && d.pend.Len() > 0 && d.done.Min() == d.pend.Min() {
		s := d.done.Pop()
		d.pend.Pop()
		r.entries -= 2
		d.unsent++
		d.acked = max(d.acked, s)
		d.dirty = true
	}
}

func (r *refAcks) collect() (map[string]uint64, uint64) {
	acks := map[string]uint64{}
	var readings uint64
	for id, d := range r.devices {
		if !d.dirty {
			continue
		}
		d.dirty = false
		readings += d.unsent
		d.unsent = 0
		if d.acked > d.sent {
			acks[id] = d.acked
			d.sent = d.acked
		}
		if d.pend.Len() == 0 {
			delete(r.devices, id)
		}
	}
	return acks, readings
}

// TestAckTrackerModel runs random frames (duplicates, seqs out of order,
// several readings of a device per frame) through the tracker by
// addFrame, completes them in random order and compares acks, readings
// and entries with the reference after every step.
func TestAckTrackerModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		tr := newAckTracker(1 << 20)
		ref := &refAcks{devices: map[string]*refDevice{}}
		type open struct {
			rec    *buffer.Record
			device string
			seq    uint64
		}
		var outstanding []open
		next := map[string]uint64{}
		devices := 1 + rng.IntN(12)
		for step := range 400 {
			switch rng.IntN(3) {
			case 0: // a frame
				items := make([]decodedReading, rng.IntN(8))
				for i := range items {
					dev := fmt.Sprintf("d%d", rng.IntN(devices))
					seq := next[dev] + 1
					switch rng.IntN(6) {
					case 0: // a retransmit
						seq = max(1, seq-1-uint64(rng.IntN(3)))
					case 1: // a gap
						seq += uint64(rng.IntN(3))
					}
					next[dev] = max(next[dev], seq)
					if rng.IntN(20) == 0 {
						seq = 0 // untracked
					}
					items[i] = decodedReading{device: dev, seq: seq}
				}
				recs := make([]buffer.Record, len(items))
				tr.addFrame(items, recs)
				for i, it := range items {
					if !tracked(&it) {
						if recs[i].Completer != nil {
							t.Fatalf("seed %d: untracked reading %+v has an ack ref", seed, it)
						}
						continue
					}
					ref.add(it.device, it.seq)
					outstanding = append(outstanding, open{&recs[i], it.device, it.seq})
				}
			case 1: // some completions, in any order
				for range rng.IntN(6) {
					if len(outstanding) == 0 {
						break
					}
					i := rng.IntN(len(outstanding))
					o := outstanding[i]
					outstanding[i] = outstanding[len(outstanding)-1]
					outstanding = outstanding[:len(outstanding)-1]
					if d, ok := o.rec.Completer.(*deviceAcks); !ok || d.id != o.device || o.rec.Seq != o.seq {
						t.Fatalf("seed %d: ack ref %v/%d for reading %s/%d", seed, o.rec.Completer, o.rec.Seq, o.device, o.seq)
					}
					o.rec.Completion().Run()
					ref.complete(o.device, o.seq)
				}
			case 2:
				got, _, gotN := collectAcks(t, tr)
				want, wantN := ref.collect()
				if fmt.Sprint(got) != fmt.Sprint(want) || gotN != wantN {
					t.Fatalf("seed %d step %d: acks %v (%d readings), want %v (%d)", seed, step, got, gotN, want, wantN)
				}
				if rng.IntN(10) == 0 {
					tr.trim()
				}
			}
			if tr.size() != ref.entries {
				t.Fatalf("seed %d step %d: %d entries, want %d", seed, step, tr.size(), ref.entries)
			}
		}
	}
}

// TestAckTrackerReusesDevices: a forgotten device's state is reused for
// the next device, so a gateway whose devices each send less often than
// acks are flushed does not allocate a state per reading.
func TestAckTrackerReusesDevices(t *testing.T) {
	tr := newAckTracker(100)
	items := make([]decodedReading, 10)
	for i := range items {
		items[i] = decodedReading{device: fmt.Sprintf("dev-%d", i), seq: 1}
	}
	recs := make([]buffer.Record, len(items))
	var out ackMsgs
	frame := func() {
		for i := range items {
			items[i].seq++
		}
		clear(recs)
		tr.addFrame(items, recs)
		for i := range recs {
			recs[i].Completion().Run()
		}
		out.reset()
		if n := tr.collect(&out); n != uint64(len(items)) || len(out.ends) != 1 {
			t.Fatalf("%d readings acked in %d messages", n, len(out.ends))
		}
	}
	frame()
	if n := testing.AllocsPerRun(100, frame); n != 0 && !raceEnabled {
		t.Fatalf("%v allocations per frame", n)
	}
	tr.trim()
	if tr.devices.Mapped() || tr.devices.Few() != nil || tr.free != nil || tr.dirty != nil {
		t.Fatal("trim keeps the state of an idle connection")
	}
}

// TestDownlinkAckEncoding: the ack writer's bytes are what proto.Marshal
// makes of the same Downlink, and decode to it.
func TestDownlinkAckEncoding(t *testing.T) {
	long := strings.Repeat("x", maxTrackedID)
	cases := [][]*vppv1.DeviceAck{
		{{DeviceId: "dev-1", AckedSeq: 1}},
		{{DeviceId: "dev-1", AckedSeq: 1 << 63}, {DeviceId: "é", AckedSeq: 127}, {DeviceId: "d", AckedSeq: 128}},
		{{DeviceId: long, AckedSeq: 300}, {DeviceId: strings.Repeat("y", 127), AckedSeq: 1<<64 - 1}},
		// Zero values, which proto.Marshal leaves out (the tracker never
		// sends them).
		{{DeviceId: "", AckedSeq: 5}, {DeviceId: "z", AckedSeq: 0}, {}},
	}
	var many []*vppv1.DeviceAck
	for i := range maxAcksPerMessage {
		many = append(many, &vppv1.DeviceAck{DeviceId: long[:i%200] + fmt.Sprint(i), AckedSeq: uint64(i)*977 + 1})
	}
	cases = append(cases, many)
	var b []byte
	for i, devs := range cases {
		want, err := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: &vppv1.Ack{Devices: devs}}})
		if err != nil {
			t.Fatal(err)
		}
		b = append(b[:0], "prefix"...) // a message starts anywhere in the buffer
		var enc downlinkAckEncoder
		b = enc.begin(b)
		for _, d := range devs {
			b = enc.add(b, d.DeviceId, d.AckedSeq)
		}
		b = enc.end(b)
		got := b[len("prefix"):]
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: encoded\n%x\nproto.Marshal\n%x", i, got, want)
		}
		var dl vppv1.Downlink
		if err := proto.Unmarshal(got, &dl); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !proto.Equal(&dl, &vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: &vppv1.Ack{Devices: devs}}}) {
			t.Fatalf("case %d: decoded %v", i, &dl)
		}
	}
}

// TestAckTrackerSplitsMessages: more devices than fit one message go out
// in several, each a valid Downlink, together acking every device once.
func TestAckTrackerSplitsMessages(t *testing.T) {
	const devices = 2*maxAcksPerMessage + 17
	tr := newAckTracker(devices)
	items := make([]decodedReading, devices)
	for i := range items {
		items[i] = decodedReading{device: fmt.Sprintf("device-%06d", i), seq: uint64(i + 1)}
	}
	recs := make([]buffer.Record, devices)
	tr.addFrame(items, recs)
	for i := range recs {
		recs[i].Completion().Run()
	}
	acks, msgs, readings := collectAcks(t, tr)
	if msgs != 3 || len(acks) != devices || readings != devices {
		t.Fatalf("%d messages acking %d devices (%d readings), want 3, %d", msgs, len(acks), readings, devices)
	}
	for _, it := range items {
		if acks[it.device] != it.seq {
			t.Fatalf("device %s acked %d, want %d", it.device, acks[it.device], it.seq)
		}
	}
}
