package ingest

import (
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/buffer"
)

// TestLimiterRefEvicted: a connection's reference to an evicted bucket is
// not used: the device gets the bucket the table holds now, as a lookup
// by ID would.
func TestLimiterRefEvicted(t *testing.T) {
	l := newRateLimiter(1, 2, limiterShards) // one bucket per shard
	var ref limiterRef
	if l.reserveRef(&ref, "a", 0) != 0 || l.reserveRef(&ref, "a", 0) != 0 || l.reserveRef(&ref, "a", 0) != time.Second {
		t.Fatal("burst of 2 not enforced through the reference")
	}
	old := ref.b
	old.live = false // as evict does
	delete(ref.sh.buckets, "a")
	if l.reserveRef(&ref, "a", 0) != 0 {
		t.Fatal("an evicted bucket still limits the device")
	}
	if ref.b == old || !ref.b.live || ref.sh.buckets["a"] != ref.b {
		t.Fatal("the reference does not follow the table's bucket")
	}
}

// TestLimiterDebt: readings beyond the burst are never refused; each puts
// the bucket further into debt, and the wait returned is the time until
// the debt is paid at the rate; the refill pays it back.
func TestLimiterDebt(t *testing.T) {
	l := newRateLimiter(10, 5, 1024)
	for i := range 5 {
		if w := l.reserve("d", 1000); w != 0 {
			t.Fatalf("reading %d within the burst waits %v", i+1, w)
		}
	}
	for i := range 20 {
		if w, want := l.reserve("d", 1000), time.Duration(i+1)*100*time.Millisecond; w != want {
			t.Fatalf("reading %d over the burst: wait %v, want %v", i+6, w, want)
		}
	}
	// 2.1 s later the debt of 20 is paid (and a token more): the next reading waits no longer.
	if w := l.reserve("d", 3100); w != 0 {
		t.Fatalf("after the debt was paid: wait %v", w)
	}
	if w := l.reserve("other", 1000); w != 0 {
		t.Fatalf("another device waits %v", w)
	}
}

// TestAckEntryStale: a device entry whose ack state was forgotten (and
// reused for another device) registers the device's next reading in the
// device's current state, never in the stale one.
func TestAckEntryStale(t *testing.T) {
	tr := newAckTracker(100)
	ea, eb := &devEntry{id: "a"}, &devEntry{id: "b"}
	add := func(e *devEntry, seq uint64) ackRef {
		items := []decodedReading{{device: e.id, dev: e, seq: seq}}
		recs := make([]buffer.Record, 1)
		tr.addFrame(items, recs)
		return ackRef{dev: recs[0].Completer.(*deviceAcks), seq: recs[0].Seq}
	}
	r := add(ea, 1)
	r.dev.Complete(1)
	if acks, _, _ := collectAcks(t, tr); acks["a"] != 1 {
		t.Fatalf("acks %v", acks)
	}
	// a's state is forgotten; b takes it over.
	rb := add(eb, 5)
	if rb.dev != r.dev || ea.acks.id != "b" {
		t.Fatal("forgotten state not reused")
	}
	ra := add(ea, 2)
	if ra.dev == rb.dev || ra.dev.id != "a" || ea.acks != ra.dev {
		t.Fatal("a's reading registered in b's state")
	}
	ra.dev.Complete(2)
	rb.dev.Complete(5)
	if acks, _, _ := collectAcks(t, tr); acks["a"] != 2 || acks["b"] != 5 {
		t.Fatalf("acks %v", acks)
	}
}
