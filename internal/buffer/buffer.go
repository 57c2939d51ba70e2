// Package buffer is the seam between ingest's WebSocket read loops and the
// Kafka producer: the records that travel through it (Message, Header,
// Record), what completes a record once it is durable (Completion,
// Completer), and the Buffer contract that both MemoryBuffer and the
// durable spool (internal/spool) implement.
//
// The package knows nothing of WebSockets, devices or acks. A record's
// producer learns that the record is durable through the record's Done or
// its Completer; the goroutine that publishes it may point OnPublished at
// whatever receives Kafka's verdict. Neither costs a closure per record:
// ingest's ack tracker is a Completer per device, and its server one
// OnPublished for every record.
package buffer

import (
	"context"
	"errors"
	"time"
)

// ErrBufferClosed is returned by Put and Next once the buffer is closed.
var ErrBufferClosed = errors.New("buffer closed")

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is what a publisher writes to Kafka: one record.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
}

// Completer is told when records are durable. Ingest's ack tracker state
// of a device is one: Seq names the reading.
type Completer interface {
	// Complete reports that the record carrying seq is durable. It is
	// called exactly once per record, as Done would be, and must be quick
	// and not block: it runs on the producer's result path.
	Complete(seq uint64)
}

// Record is a message on its way through the buffer to Kafka.
type Record struct {
	Message
	// Done, when set, is called exactly once, when the record is durable:
	// for MemoryBuffer when Kafka acknowledged it; for a durable spool when
	// it is synced to disk (the spool then publishes it later without
	// calling Done again). Done must be quick and must not block: it runs
	// on the producer's result path. Buffers call it through Completion,
	// which covers Completer too.
	Done func()
	// Completer, when set, is told Seq when the record is durable, at the
	// same moment as Done would be called: a record's producer that
	// tracks many records through one state needs no closure per record.
	Completer Completer
	// Seq is what Completer is told; buffers do not read it otherwise.
	Seq uint64
	// OnPublished, when set, receives the publisher's verdict on the
	// record. It belongs to the goroutine that took the record from Next,
	// which sets it before publishing so that the record can be its own
	// verdict without a closure. Buffers neither read nor set it.
	OnPublished func(r *Record, err error)

	// MemoryBuffer's bookkeeping.
	size      int64
	notBefore time.Time
	attempts  int32
	done      bool
}

// Completion is what to do once a record is durable: call its Done, and
// tell its Completer. A buffer that lets go of a record before it is
// durable (a spool that keeps only the disk copy) takes its Completion
// first. The zero Completion does nothing.
type Completion struct {
	done func()
	c    Completer
	seq  uint64
}

// Completion returns what completes r once it is durable.
func (r *Record) Completion() Completion {
	return Completion{done: r.Done, c: r.Completer, seq: r.Seq}
}

// Empty reports whether Run does nothing.
func (c Completion) Empty() bool { return c.done == nil && c.c == nil }

// Run completes the record: the buffer calls it exactly once per record,
// as it would call Done.
func (c Completion) Run() {
	if c.c != nil {
		c.c.Complete(c.seq)
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
//     record is durable; an ack reaches a device only after Done. "Done"
//     here is the record's whole Completion: its Done and its Completer.
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

// BatchPutter is a Buffer that stores a batch of records together (ingest
// puts a frame's records at once instead of one Put per reading).
type BatchPutter interface {
	// PutBatch stores the records of rs, in order, as Put would one by
	// one: it blocks while the buffer is full, and when ctx ends first it
	// returns ctx's error with the records before the first one not
	// stored in the buffer.
	PutBatch(ctx context.Context, rs []Record) error
}
