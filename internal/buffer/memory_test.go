package buffer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/testutil"
)

func rec(n int) *Record { return &Record{Message: Message{Topic: "t", Value: make([]byte, n)}} }

func TestMemoryBufferBoundsRecords(t *testing.T) {
	b := NewMemoryBuffer(2, 1<<20)
	ctx := context.Background()
	r1, r2 := rec(1), rec(1)
	if err := b.Put(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, r2); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Put(short, rec(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put into a full buffer: %v, want deadline exceeded", err)
	}
	// Handing a record out for publishing does not release its place.
	got, err := b.Next(ctx)
	if err != nil || got != r1 {
		t.Fatalf("Next = %v, %v; want r1", got, err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := b.Put(short2, rec(1)); err == nil {
		t.Fatal("Put succeeded while the in-flight record was not acked")
	}
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, rec(1)) }()
	called := 0
	r1.Done = func() { called++ }
	b.Ack(r1)
	b.Ack(r1) // a second ack is ignored
	if err := <-done; err != nil {
		t.Fatalf("Put after Ack: %v", err)
	}
	if called != 1 {
		t.Fatalf("Done called %d times, want 1", called)
	}
	if b.Len() != 2 {
		t.Fatalf("Len = %d, want 2", b.Len())
	}
}

func TestMemoryBufferBoundsBytes(t *testing.T) {
	size := rec(1000).Size()
	b := NewMemoryBuffer(100, 3*size)
	ctx := context.Background()
	for range 3 {
		if err := b.Put(ctx, rec(1000)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Put(short, rec(1)); err == nil {
		t.Fatal("Put beyond the byte bound succeeded")
	}
	if got := b.Bytes(); got != 3*size {
		t.Fatalf("Bytes = %d", got)
	}
	// An oversized record is admitted into an empty buffer.
	e := NewMemoryBuffer(10, 10)
	if err := e.Put(ctx, rec(100)); err != nil {
		t.Fatalf("oversized record into empty buffer: %v", err)
	}
}

func TestMemoryBufferRetry(t *testing.T) {
	b := NewMemoryBuffer(10, 1<<20)
	ctx := context.Background()
	r1, r2 := rec(1), rec(1)
	_ = b.Put(ctx, r1)
	_ = b.Put(ctx, r2)
	got, _ := b.Next(ctx)
	b.Nack(got, errors.New("kafka down"))
	if b.Len() != 2 {
		t.Fatalf("a failed record left the buffer: Len %d", b.Len())
	}
	// r2 is available right away; r1 after its backoff.
	if got, _ := b.Next(ctx); got != r2 {
		t.Fatal("want r2 while r1 backs off")
	}
	start := time.Now()
	got, err := b.Next(ctx)
	if err != nil || got != r1 {
		t.Fatalf("retry: %v %v", got, err)
	}
	if time.Since(start) < RetryPolicy().Min/2 {
		t.Fatal("retried without backoff")
	}
	if r1.attempts != 1 {
		t.Fatalf("attempts = %d", r1.attempts)
	}
	b.Close()
	if _, err := b.Next(ctx); !errors.Is(err, ErrBufferClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

// TestMemoryBufferPutBatch: a batch's records go in as far as the bounds
// allow, in order; the rest wait for space, and the batch's Put ends with
// its context, the records that fit stored.
func TestMemoryBufferPutBatch(t *testing.T) {
	size := rec(100).Size()
	b := NewMemoryBuffer(4, 3*size)
	ctx := context.Background()
	batch := make([]Record, 5)
	for i := range batch {
		batch[i] = *rec(100)
	}
	done := make(chan error, 1)
	go func() { done <- b.PutBatch(ctx, batch) }()
	// The byte bound holds the batch's last two back.
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, "three records buffered", func() bool { return b.Len() == 3 })
	select {
	case err := <-done:
		t.Fatalf("PutBatch returned %v with the buffer full", err)
	case <-time.After(50 * time.Millisecond):
	}
	if b.Len() != 3 || b.Bytes() != 3*size {
		t.Fatalf("held %d records, %d bytes; want 3, %d", b.Len(), b.Bytes(), 3*size)
	}
	for i := range batch {
		got, err := b.Next(ctx)
		if err != nil || got != &batch[i] {
			t.Fatalf("Next %d = %p, %v; want %p", i, got, err, &batch[i])
		}
		b.Ack(got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Bound by records, and canceled: what fits is stored.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	small := make([]Record, 6)
	for i := range small {
		small[i] = *rec(1)
	}
	if err := b.PutBatch(short, small); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutBatch into a full buffer: %v, want deadline exceeded", err)
	}
	if b.Len() != 4 {
		t.Fatalf("Len = %d, want 4", b.Len())
	}
	for i := range 4 {
		if got, err := b.Next(ctx); err != nil || got != &small[i] {
			t.Fatalf("Next %d = %p, %v; want %p", i, got, err, &small[i])
		}
	}

	// An oversized record is admitted into an empty buffer.
	e := NewMemoryBuffer(10, 10)
	if err := e.PutBatch(ctx, []Record{*rec(100)}); err != nil {
		t.Fatalf("oversized record into empty buffer: %v", err)
	}
	b.Close()
	if err := b.PutBatch(ctx, small[:1]); !errors.Is(err, ErrBufferClosed) {
		t.Fatalf("PutBatch after Close: %v", err)
	}
}
