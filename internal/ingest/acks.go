package ingest

import (
	"context"
	"fmt"
	"sync"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/queue"
	"github.com/vppctl/vpp/internal/smallmap"
)

// ackTracker computes the acks of one connection.
//
// Per device it keeps two min-heaps of seqs: pend holds every reading
// received on the connection and not yet acked, done holds those of them
// that became durable. done is a sub-multiset of pend, so while the two
// minima are equal, that seq is durable and nothing below it is
// outstanding: both are popped and the ack advances to it. A reading still
// outstanding stops the ack at the smallest outstanding seq, whatever order
// seqs arrived or became durable in. The ack never goes backwards.
//
// Entries (pend + done) are bounded by limit: the read loop waits for room
// before accepting a frame, so a connection's memory stays bounded even if
// one reading stays outstanding while later ones complete.
type ackTracker struct {
	mu      sync.Mutex
	devices smallmap.Map[*deviceAcks]
	dirty   []*deviceAcks
	// free holds forgotten device states for reuse (with their heaps'
	// arrays): a device that sends less often than acks are flushed is
	// forgotten after every reading, and would otherwise cost a new state
	// per reading. It never holds more states than the device map held
	// at once, and trim drops it.
	free    []*deviceAcks
	entries int
	limit   int
	room    queue.Notifier
	// advanced, when set, is called (with mu held) whenever an ack
	// advances: the connection queues itself for the next flush.
	advanced func()
}

// deviceAcks is the ack state of one device on one connection. The
// records of its outstanding readings point to it (their Completer, with
// the reading's seq), so it is forgotten (or reused) only once pend is
// empty.
type deviceAcks struct {
	t       *ackTracker
	id      string
	pend    queue.SeqHeap
	done    queue.SeqHeap
	acked   uint64 // highest seq ackable
	sent    uint64 // highest seq sent to the device
	unsent  uint64 // readings newly ackable and not yet sent
	isDirty bool
}

// newAckTracker returns an empty tracker. Its device index grows with the
// first add (slices for a few devices, a map for more) and is dropped by
// trim once empty.
func newAckTracker(limit int) *ackTracker {
	return &ackTracker{limit: max(limit, 1)}
}

// waitRoom blocks until n more entries fit (or the tracker is empty).
func (t *ackTracker) waitRoom(ctx context.Context, n int) error {
	for {
		t.mu.Lock()
		if t.entries == 0 || t.entries+n <= t.limit {
			t.mu.Unlock()
			return nil
		}
		ch := t.room.Wait()
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for ack room: %w", ctx.Err())
		}
	}
}

// addFrame registers the readings of a frame that have a device and a
// seq (see tracked), under one lock, and points their records (recs[i]
// is items[i]'s) at them.
func (t *ackTracker) addFrame(items []decodedReading, recs []buffer.Record) {
	if len(items) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var d *deviceAcks
	for i := range items {
		it := &items[i]
		if !tracked(it) {
			continue
		}
		switch e := it.dev; {
		case d != nil && d.id == it.device:
			// A device's readings often come in a row (a device batching
			// its own); the IDs are interned, so the comparison is short.
		case e != nil:
			// The state the device's entry found last time is still the
			// device's as long as it carries the device's ID: a state
			// keeps its ID from device to forget, and the map holds one
			// state per ID.
			if e.acks == nil || e.acks.id != e.id {
				e.acks = t.device(e.id)
			}
			d = e.acks
		default:
			d = t.device(it.device)
		}
		ref := t.addLocked(d, it.seq)
		recs[i].Completer, recs[i].Seq = ref.dev, ref.seq
	}
}

// device returns the state of a device, making it if needed. t.mu is held.
func (t *ackTracker) device(id string) *deviceAcks {
	if d, ok := t.devices.Get(id); ok {
		return d
	}
	var d *deviceAcks
	if n := len(t.free); n > 0 {
		d = t.free[n-1]
		t.free[n-1] = nil
		t.free = t.free[:n-1]
	} else {
		d = &deviceAcks{t: t}
	}
	d.id = id
	t.devices.Put(id, d)
	return d
}

// ackRef names a reading in its connection's ack tracker: its device's
// ack state, resolved once when the reading was added, so that completing
// it looks nothing up. The state outlives the reference: the tracker
// forgets a device only once none of its readings is outstanding. A
// record carries it as its Completer and Seq.
type ackRef struct {
	dev *deviceAcks
	seq uint64
}

// addLocked registers a reading of d. t.mu is held.
func (t *ackTracker) addLocked(d *deviceAcks, seq uint64) ackRef {
	d.pend.Push(seq)
	t.entries++
	return ackRef{dev: d, seq: seq}
}

// Complete implements buffer.Completer: a registered reading of d is
// durable.
func (d *deviceAcks) Complete(seq uint64) {
	t := d.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(d.pend) == 0 || d.pend.Min() != seq {
		// A smaller seq is outstanding, so seq waits in done. Nothing
		// pairs now: between calls done's minimum is above pend's.
		d.done.Push(seq)
		t.entries++
		return
	}
	// The usual case, seqs becoming durable in order: seq pairs with
	// pend's minimum at once, without a round trip through done.
	d.pend.Pop()
	t.entries--
	d.unsent++
	d.acked = max(d.acked, seq)
	for len(d.done) > 0 && len(d.pend) > 0 && d.done.Min() == d.pend.Min() {
		s := d.done.Pop()
		d.pend.Pop()
		t.entries -= 2
		d.unsent++
		d.acked = max(d.acked, s)
	}
	t.room.Broadcast()
	if !d.isDirty {
		d.isDirty = true
		t.dirty = append(t.dirty, d)
	}
	if t.advanced != nil {
		t.advanced()
	}
}

// maxAcksPerMessage bounds the devices in one Downlink message.
const maxAcksPerMessage = 1000

// ackMsgs holds encoded Downlink messages: buf[ends[i-1]:ends[i]] is the
// i-th (ends[-1] being 0).
type ackMsgs struct {
	buf  []byte
	ends []int
}

// reset empties m for reuse.
func (m *ackMsgs) reset() {
	m.buf = m.buf[:0]
	m.ends = m.ends[:0]
}

// msg returns the i-th message.
func (m *ackMsgs) msg(i int) []byte {
	start := 0
	if i > 0 {
		start = m.ends[i-1]
	}
	return m.buf[start:m.ends[i]]
}

// collect appends to out the Downlink messages for every device whose ack
// advanced since the last call (none when nothing changed) and returns the
// number of readings they newly acknowledge. A device with nothing
// outstanding is forgotten, so idle devices cost no memory.
func (t *ackTracker) collect(out *ackMsgs) (readings uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var enc downlinkAckEncoder
	for _, d := range t.dirty {
		d.isDirty = false
		readings += d.unsent
		d.unsent = 0
		if d.acked > d.sent {
			if enc.devices >= maxAcksPerMessage {
				out.buf = enc.end(out.buf)
				out.ends = append(out.ends, len(out.buf))
			}
			if enc.devices == 0 {
				out.buf = enc.begin(out.buf)
			}
			out.buf = enc.add(out.buf, d.id, d.acked)
			d.sent = d.acked
		}
		if len(d.pend) == 0 {
			t.forget(d)
		}
	}
	if enc.devices > 0 {
		out.buf = enc.end(out.buf)
		out.ends = append(out.ends, len(out.buf))
	}
	clear(t.dirty)
	t.dirty = t.dirty[:0]
	return readings
}

// maxReusedSeqs bounds the heap arrays a forgotten device state keeps for
// reuse: one that grew with a burst of outstanding readings goes to the
// garbage collector rather than stay with the connection until trim.
const maxReusedSeqs = 16

// forget drops d, which has nothing outstanding, from the device map and
// keeps it for reuse. t.mu is held.
func (t *ackTracker) forget(d *deviceAcks) {
	t.devices.Delete(d.id)
	// Field by field: assigning a whole deviceAcks would copy it with
	// write barriers while the garbage collector runs.
	d.id = ""
	d.acked, d.sent, d.unsent = 0, 0, 0
	if cap(d.pend) > maxReusedSeqs {
		d.pend = nil
	}
	if cap(d.done) > maxReusedSeqs {
		d.done = nil
	}
	t.free = append(t.free, d)
}

// trim drops the device map and the dirty list when they are empty, and
// the device states kept for reuse. It is called at every ping: a
// connection idle for a ping interval holds none of them, one busy in
// between keeps reusing them.
func (t *ackTracker) trim() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.free)
	t.free = nil
	if t.devices.Len() == 0 && len(t.dirty) == 0 {
		t.devices.Release()
		t.dirty = nil
	}
}

// size is the number of entries held.
func (t *ackTracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries
}
