package ingest

import (
	"context"
	"fmt"
	"sync"

	"github.com/vppctl/vpp/internal/qutil"
	"github.com/vppctl/vpp/proto/vppv1"
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
	devices map[string]*deviceAcks
	dirty   []*deviceAcks
	entries int
	limit   int
	room    qutil.Notifier
	// advanced, when set, is called (with mu held) whenever an ack
	// advances: the connection queues itself for the next flush.
	advanced func()
}

// deviceAcks is the ack state of one device on one connection.
type deviceAcks struct {
	id      string
	pend    qutil.SeqHeap
	done    qutil.SeqHeap
	acked   uint64 // highest seq ackable
	sent    uint64 // highest seq sent to the device
	unsent  uint64 // readings newly ackable and not yet sent
	isDirty bool
}

// newAckTracker returns an empty tracker. Its device map is made by the
// first add and dropped by trim once empty.
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

// add registers a received reading; it must precede the reading's
// complete.
func (t *ackTracker) add(device string, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[device]
	if d == nil {
		if t.devices == nil {
			t.devices = make(map[string]*deviceAcks)
		}
		d = &deviceAcks{id: device}
		t.devices[device] = d
	}
	d.pend.Push(seq)
	t.entries++
}

// complete records that a registered reading is durable.
func (t *ackTracker) complete(device string, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[device]
	if d == nil {
		return
	}
	d.done.Push(seq)
	t.entries++
	advanced := false
	for len(d.done) > 0 && len(d.pend) > 0 && d.done[0] == d.pend[0] {
		s := d.done.Pop()
		d.pend.Pop()
		t.entries -= 2
		d.unsent++
		if s > d.acked {
			d.acked = s
		}
		advanced = true
	}
	if advanced {
		t.room.Broadcast()
		if !d.isDirty {
			d.isDirty = true
			t.dirty = append(t.dirty, d)
		}
		if t.advanced != nil {
			t.advanced()
		}
	}
}

// maxAcksPerMessage bounds the devices in one Downlink message.
const maxAcksPerMessage = 1000

// collect returns the Downlink messages for every device whose ack
// advanced since the last call (nil when nothing changed) and the number
// of readings they newly acknowledge. A device with nothing outstanding is
// forgotten, so idle devices cost no memory.
func (t *ackTracker) collect() (msgs []*vppv1.Downlink, readings uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ack *vppv1.Ack
	for _, d := range t.dirty {
		d.isDirty = false
		readings += d.unsent
		d.unsent = 0
		if d.acked > d.sent {
			if ack == nil || len(ack.Devices) >= maxAcksPerMessage {
				ack = &vppv1.Ack{}
				msgs = append(msgs, &vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: ack}})
			}
			ack.Devices = append(ack.Devices, &vppv1.DeviceAck{DeviceId: d.id, AckedSeq: d.acked})
			d.sent = d.acked
		}
		if len(d.pend) == 0 {
			delete(t.devices, d.id)
		}
	}
	clear(t.dirty)
	t.dirty = t.dirty[:0]
	return msgs, readings
}

// trim drops the device map and the dirty list when they are empty. It is
// called at every ping: a connection idle for a ping interval holds
// neither, one busy in between keeps reusing them.
func (t *ackTracker) trim() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.devices) == 0 && len(t.dirty) == 0 {
		t.devices, t.dirty = nil, nil
	}
}

// size is the number of entries held.
func (t *ackTracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries
}
