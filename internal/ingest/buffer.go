package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vppctl/vpp/internal/queue"
)

// ErrBufferClosed is returned by Put and Next once the buffer is closed.
var ErrBufferClosed = errors.New("buffer closed")

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is what a Publisher writes to Kafka: one record.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
}

// Record is a message on its way through the buffer to Kafka.
type Record struct {
	Message
	// Done, when set, is called exactly once, when the record is durable:
	// for MemoryBuffer when Kafka acknowledged it; for a durable spool when
	// it is synced to disk (the spool then publishes it later without
	// calling Done again). Done must be quick and must not block: it runs
	// on the producer's result path. Buffers call it through Completion,
	// which covers ingest's own records too.
	Done func()
	// ack, when set, is what ingest's own records do instead of Done: tell
	// the connection's ack tracker that the reading is durable, without a
	// closure per record.
	ack ackRef
	// srv is the server whose pump handed the record to the publisher:
	// the record is its own Verdict (see Server.pump), so publishing it
	// needs no closure.
	srv *Server

	size      int64
	attempts  int
	notBefore time.Time
	done      bool
}

// ackRef names a reading in its connection's ack tracker: its device's
// ack state, resolved once when the reading was added, so that completing
// it looks nothing up. The state outlives the reference: the tracker
// forgets a device only once none of its readings is outstanding.
type ackRef struct {
	dev *deviceAcks
	seq uint64
}

// Completion is what to do once a record is durable: call its Done, or
// complete its reading in ingest's ack tracker. A buffer that lets go of a
// record before it is durable (a spool that keeps only the disk copy) takes
// its Completion first. The zero Completion does nothing.
type Completion struct {
	done func()
	ack  ackRef
}

// Completion returns what completes r once it is durable.
func (r *Record) Completion() Completion { return Completion{done: r.Done, ack: r.ack} }

// Empty reports whether Run does nothing.
func (c Completion) Empty() bool { return c.done == nil && c.ack.dev == nil }

// Run completes the record: the buffer calls it exactly once per record,
// as it would call Done.
func (c Completion) Run() {
	if c.ack.dev != nil {
		c.ack.dev.complete(c.ack.seq)
	}
	if c.done != nil {
		c.done()
	}
}

// recordOverhead approximates the per-record bookkeeping bytes counted
// against a buffer's byte bound on top of key, value and headers.
const recordOverhead = 128

// Size is the number of bytes the record counts against a buffer's bound.
func (r *Record) Size() int64 {
	n := int64(len(r.Topic)+len(r.Key)+len(r.Value)) + recordOverhead
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}

// Buffer sits between the WebSocket read loops and the Kafka producer. It
// is the seam a durable spool implements. Its contract:
//
//   - Put stores a record, blocking while the buffer is full, and returns
//     ctx's error if ctx ends first (the record is then not stored, and
//     Done is never called for it). A full buffer is the backpressure that
//     makes ingest stop reading sockets: Put must block, never drop.
//   - A record counts against the buffer's capacity from Put until Ack: a
//     record handed out by Next and not yet acknowledged by Kafka still
//     occupies its place, so everything accepted but not yet durable is
//     bounded.
//   - Next hands out each stored record for publishing, oldest first,
//     blocking until one is available or ctx ends. Exactly one goroutine
//     calls Next.
//   - Ack reports that Kafka acknowledged the record: the buffer releases
//     it and calls its Done (unless Done was already called when the record
//     became durable in the buffer itself, as in a spool).
//   - Nack reports that publishing failed: the buffer keeps the record and
//     hands it out again from Next after a backoff. A record is never
//     dropped and never acknowledged because of an error.
//   - Done is called exactly once per stored record, and only once the
//     record is durable; an ack reaches a device only after Done.
//
// A durable spool additionally survives a process restart: records that
// were Put (and whose Done was called) but not Acked before the crash are
// handed out again by Next after restart, in order.
type Buffer interface {
	Put(ctx context.Context, r *Record) error
	Next(ctx context.Context) (*Record, error)
	Ack(r *Record)
	Nack(r *Record, err error)
	// Len and Bytes are the records and bytes held now (stored, in flight
	// or waiting for a retry).
	Len() int
	Bytes() int64
	// Capacity is the bound on Len and Bytes.
	Capacity() (records int, bytes int64)
	// Close wakes every blocked Put and Next with ErrBufferClosed.
	Close()
}

// Retry backoff bounds of MemoryBuffer after a publish error.
const (
	minRetryBackoff = 100 * time.Millisecond
	maxRetryBackoff = 5 * time.Second
)

// MemoryBuffer is a Buffer in memory, bounded by a number of records and a
// number of bytes. It is not durable: records still held when the process
// dies are lost, but none of them was acknowledged to a device (Done is
// called only once Kafka acknowledged), so devices resend them.
type MemoryBuffer struct {
	maxRecords int
	maxBytes   int64

	mu       sync.Mutex
	records  int                // held: queued, in flight or waiting for retry
	bytes    int64              // bytes of the held records
	queue    queue.FIFO[Record] // stored, not yet handed out
	retry    queue.FIFO[Record] // failed, waiting for their notBefore
	failures int                // consecutive publish failures, for the backoff
	closed   bool
	space    queue.Notifier // broadcast when capacity is released
	items    queue.Notifier // broadcast when a record becomes available
}

// NewMemoryBuffer returns a buffer holding at most maxRecords records and
// maxBytes bytes (a single record larger than maxBytes is admitted when the
// buffer is empty, so it cannot block forever).
func NewMemoryBuffer(maxRecords int, maxBytes int64) *MemoryBuffer {
	return &MemoryBuffer{maxRecords: max(maxRecords, 1), maxBytes: max(maxBytes, 1)}
}

// Put implements Buffer.
func (b *MemoryBuffer) Put(ctx context.Context, r *Record) error {
	return b.put(ctx, 1, func(int) *Record { return r })
}

// framePutter is a Buffer that stores the records of a frame together:
// the read loop uses putFrame instead of a Put per reading.
type framePutter interface {
	// putFrame stores the records of rs, in order, as Put would one by
	// one: it blocks while the buffer is full, and when ctx ends first it
	// returns ctx's error with the records before the first one not
	// stored in the buffer.
	putFrame(ctx context.Context, rs []Record) error
}

// putFrame implements framePutter.
func (b *MemoryBuffer) putFrame(ctx context.Context, rs []Record) error {
	return b.put(ctx, len(rs), func(i int) *Record { return &rs[i] })
}

// put stores records rec(0) … rec(n-1) in order, taking the lock once for
// as many of them as fit rather than once per record.
func (b *MemoryBuffer) put(ctx context.Context, n int, rec func(int) *Record) error {
	for i := range n {
		r := rec(i)
		r.size = r.Size()
	}
	next := 0
	for next < n {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return ErrBufferClosed
		}
		stored := next
		for ; next < n; next++ {
			r := rec(next)
			if b.records > 0 && (b.records >= b.maxRecords || b.bytes+r.size > b.maxBytes) {
				break
			}
			b.records++
			b.bytes += r.size
			b.queue.Push(r)
		}
		if next > stored {
			b.items.Broadcast()
		}
		if next == n {
			b.mu.Unlock()
			return nil
		}
		ch := b.space.Wait()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("buffer put: %w", ctx.Err())
		}
	}
	return nil
}

// Next implements Buffer. Records waiting for a retry go first once their
// backoff has passed: they are older than the queued ones.
func (b *MemoryBuffer) Next(ctx context.Context) (*Record, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrBufferClosed
		}
		var wake <-chan time.Time
		if r := b.retry.Peek(); r != nil {
			d := time.Until(r.notBefore)
			if d <= 0 {
				b.retry.Pop()
				b.mu.Unlock()
				return r, nil
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			wake = timer.C
		}
		if r := b.queue.Pop(); r != nil {
			b.mu.Unlock()
			return r, nil
		}
		ch := b.items.Wait()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("buffer next: %w", ctx.Err())
		}
	}
}

// Ack implements Buffer.
func (b *MemoryBuffer) Ack(r *Record) {
	b.mu.Lock()
	if r.done {
		b.mu.Unlock()
		return
	}
	r.done = true
	b.records--
	b.bytes -= r.size
	b.failures = 0
	b.space.Broadcast()
	b.mu.Unlock()
	r.Completion().Run()
}

// Nack implements Buffer: the record is retried after an exponential
// backoff that grows with consecutive failures of the buffer as a whole.
func (b *MemoryBuffer) Nack(r *Record, _ error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.done {
		return
	}
	b.failures++
	r.attempts++
	backoff := minRetryBackoff << min(b.failures-1, 10)
	r.notBefore = time.Now().Add(min(backoff, maxRetryBackoff))
	b.retry.Push(r)
	b.items.Broadcast()
}

// Len implements Buffer.
func (b *MemoryBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.records
}

// Bytes implements Buffer.
func (b *MemoryBuffer) Bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// Capacity implements Buffer.
func (b *MemoryBuffer) Capacity() (int, int64) { return b.maxRecords, b.maxBytes }

// Close implements Buffer.
func (b *MemoryBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.space.Broadcast()
	b.items.Broadcast()
}
