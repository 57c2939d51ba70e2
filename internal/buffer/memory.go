package buffer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/queue"
)

// RetryPolicy is the backoff of a buffer after a publish error: 100 ms
// after the first consecutive failure, doubling up to 5 s. MemoryBuffer
// and the spool share it.
func RetryPolicy() backoff.Policy {
	return backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}
}

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
	failures backoff.Retry      // consecutive publish failures
	closed   bool
	space    queue.Notifier // broadcast when capacity is released
	items    queue.Notifier // broadcast when a record becomes available
}

// NewMemoryBuffer returns a buffer holding at most maxRecords records and
// maxBytes bytes (a single record larger than maxBytes is admitted when the
// buffer is empty, so it cannot block forever).
func NewMemoryBuffer(maxRecords int, maxBytes int64) *MemoryBuffer {
	return &MemoryBuffer{maxRecords: max(maxRecords, 1), maxBytes: max(maxBytes, 1), failures: backoff.Retry{Policy: RetryPolicy()}}
}

// Put implements Buffer.
func (b *MemoryBuffer) Put(ctx context.Context, r *Record) error {
	return b.put(ctx, 1, func(int) *Record { return r })
}

// PutBatch implements BatchPutter.
func (b *MemoryBuffer) PutBatch(ctx context.Context, rs []Record) error {
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
	b.failures.Reset()
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
	r.attempts++
	r.notBefore = time.Now().Add(b.failures.Fail())
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
