package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
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
	if time.Since(start) < minRetryBackoff/2 {
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

func TestAckTracker(t *testing.T) {
	tr := newAckTracker(100)
	acks := func() map[string]uint64 {
		msgs, _ := tr.collect()
		m := map[string]uint64{}
		for _, d := range msgs {
			for _, a := range d.GetAck().GetDevices() {
				m[a.DeviceId] = a.AckedSeq
			}
		}
		return m
	}
	// Out of order: 3, 1, 2 received; 3 then 1 then 2 durable.
	for _, s := range []uint64{3, 1, 2} {
		tr.add("a", s)
	}
	tr.complete("a", 3)
	if m := acks(); len(m) != 0 {
		t.Fatalf("ack while 1 and 2 outstanding: %v", m)
	}
	tr.complete("a", 1)
	if m := acks(); m["a"] != 1 {
		t.Fatalf("after 1 durable: %v, want a=1", m)
	}
	tr.complete("a", 2)
	if m := acks(); m["a"] != 3 {
		t.Fatalf("after all durable: %v, want a=3", m)
	}
	if tr.size() != 0 || len(tr.devices) != 0 {
		t.Fatalf("tracker keeps %d entries, %d devices", tr.size(), len(tr.devices))
	}
	// A retransmitted duplicate and a lower seq after a higher one.
	tr.add("b", 5)
	tr.add("b", 5)
	tr.complete("b", 5)
	// One copy of reading 5 is durable: that is reading 5 durable.
	if m := acks(); m["b"] != 5 {
		t.Fatalf("got %v, want b=5", m)
	}
	tr.complete("b", 5)
	tr.add("b", 4)
	if m := acks(); len(m) != 0 {
		t.Fatalf("ack repeated: %v", m)
	}
	tr.complete("b", 4)
	if m := acks(); len(m) != 0 {
		t.Fatalf("ack went backwards or repeated: %v", m)
	}
}

func TestAckTrackerRoom(t *testing.T) {
	tr := newAckTracker(4)
	tr.add("a", 1)
	tr.add("a", 2)
	tr.add("a", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.waitRoom(ctx, 2); err == nil {
		t.Fatal("room for 2 more with 3 of 4 held")
	}
	tr.complete("a", 1)
	if err := tr.waitRoom(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
}
