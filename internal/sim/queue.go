package sim

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

// frameReadingsTag is the tag of vpp.v1.Frame.readings (field 1, bytes).
const frameReadingsTag = 1<<3 | byte(protowire.BytesType)

// queueKeepBytes is the largest buffer a drained readingQueue keeps for
// its next readings; a larger one, left by a backlog, goes back to the
// heap.
const queueKeepBytes = 8 << 10

// entryHint is the room push makes for a device's first entry (a reading
// takes 110 to 140 bytes); later ones get the size of the one before plus
// entrySlack, enough for the fields that a zero value leaves out.
const (
	entryHint  = 160
	entrySlack = 32
)

// readingQueue holds a device's unacked readings, oldest first, in one
// buffer: each as the entry it is in a vpp.v1.Frame (tag, length,
// serialized reading), so that a flush copies them into a frame as they
// are. One buffer per device instead of one allocation per reading; its
// size follows the readings in flight, which MaxInFlight bounds: the
// buffer grows to about twice what it holds, and shrinks again when it is
// four times too large or drained.
//
// The conn's mutex guards a queue, and its bytes never leave it: what push
// and bytes return is copied before the mutex is released, so that an ack
// may pop and move the entries at any time.
type readingQueue struct {
	buf  []byte // buf[off:] are the entries
	off  int
	n    int // entries
	last int // size of the newest entry, the room the next one needs
}

func (q *readingQueue) len() int { return q.n }

// bytes returns the entries, oldest first, back to back.
func (q *readingQueue) bytes() []byte { return q.buf[q.off:] }

// push serializes r as a new entry and returns the entry (valid until the
// next call on q).
func (q *readingQueue) push(r *vppv1.Reading) []byte {
	b := q.room(max(q.last+entrySlack, entryHint))
	start := len(b)
	// Two bytes for the length: a reading takes 110 to 140 bytes.
	b, at := wire.OpenMessage(append(b, frameReadingsTag), 2)
	b = wire.CloseMessage(wire.AppendReading(b, r), at, 2)
	q.buf = b
	q.n++
	q.last = len(b) - start
	return b[start:]
}

// room returns q.buf with at least n bytes of capacity after it, moving
// the entries to the front of the buffer, or to a new one twice their
// size when the buffer is too small or four times too large.
func (q *readingQueue) room(n int) []byte {
	if cap(q.buf)-len(q.buf) >= n {
		return q.buf
	}
	live := len(q.buf) - q.off
	if need := live + n; need > cap(q.buf)/2 || need <= cap(q.buf)/4 {
		b := make([]byte, live, 2*need)
		copy(b, q.buf[q.off:])
		q.buf = b
	} else {
		q.buf = q.buf[:copy(q.buf, q.buf[q.off:])]
	}
	q.off = 0
	return q.buf
}

// pop forgets the k oldest entries (k <= len).
func (q *readingQueue) pop(k int) {
	q.n -= k
	if q.n == 0 {
		q.off = 0
		q.buf = q.buf[:0]
		if cap(q.buf) > queueKeepBytes {
			q.buf = nil
		}
		return
	}
	for range k {
		q.off += entrySize(q.buf[q.off:])
	}
}

// entrySize returns the size of the frame entry at the start of b, which
// push wrote.
func entrySize(b []byte) int {
	if b[1] < 0x80 {
		return 2 + int(b[1])
	}
	size, n := protowire.ConsumeVarint(b[1:])
	return 1 + n + int(size)
}
