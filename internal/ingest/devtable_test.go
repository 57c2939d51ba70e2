package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TestLimiterFullBucketsFree: a bucket refilled to its burst is given up
// for another device at no loss (not counted as evicted), while a device in
// debt keeps its bucket however many devices within their rates pass
// through its set: it cannot shed its debt that way.
func TestLimiterFullBucketsFree(t *testing.T) {
	l := newRateLimiter(10, 5, 4096)
	if got := l.capacity(); got != 4096 {
		t.Fatalf("capacity %d", got)
	}
	for range 15 {
		l.reserve("greedy", 0) // 10 over the burst: 1 s of debt
	}
	// 200,000 other devices, one reading each, one a millisecond: each
	// bucket is full again 100 ms after its reading, so about 100 are not
	// full at a time, in a table of 4096.
	for i := range 200_000 {
		if w := l.reserve(fmt.Sprintf("dev-%d", i), int64(i)); w != 0 {
			t.Fatalf("device %d waits %v", i, w)
		}
	}
	if n, ev := l.size(200_000); ev != 0 || n == 0 || n > 200 {
		t.Fatalf("%d buckets not full, %d evicted: want about 100, none", n, ev)
	}

	// The smallest table: limiterWays buckets a shard.
	l = newRateLimiter(10, 5, 1)
	if got := l.capacity(); got != limiterShards*limiterWays {
		t.Fatalf("capacity %d", got)
	}
	for range 15 {
		l.reserve("greedy", 0)
	}
	// Now the others come within the 1 s of greedy's debt.
	for i := range 100_000 {
		l.reserve(fmt.Sprintf("dev-%d", i), int64(i/1000)*10)
	}
	if w := l.reserve("greedy", 900); w != 200*time.Millisecond {
		t.Fatalf("greedy after others filled its set: wait %v, want its debt (200 ms)", w)
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

// TestRateLimitPausesConnection: a frame over its device's rate is taken
// whole and acked, then the connection is not read until the device is
// within its rate again; shutdown ends the pause at once, and a pause
// longer than ReadIdleTimeout does not count as idleness.
func TestRateLimitPausesConnection(t *testing.T) {
	const idle = 500 * time.Millisecond
	srv := startServer(t, Config{DeviceRate: 10, DeviceBurst: 5, ReadIdleTimeout: idle}, &fakePub{})
	c := dial(t, srv.url)
	rs := make([]*vppv1.Reading, 15)
	for i := range rs {
		rs[i] = reading("d", "s", uint64(i+1))
	}
	c.send(rs...) // 10 readings over the burst: a pause of 1 s
	c.waitAck("d", 15)
	sent := time.Now()
	c.send(reading("d", "s", 16))
	c.waitAck("d", 16)
	if took := time.Since(sent); took < 800*time.Millisecond {
		t.Fatalf("the next frame was read after %v, want about 1 s", took)
	}
	st := srv.Stats()
	if st.RejectedTotal() != 0 || st.RateLimitedFrames == 0 || st.RateLimitedWait < 900*time.Millisecond {
		t.Fatalf("rejected %v, rate-limited frames %d, wait %v", st.Rejected, st.RateLimitedFrames, st.RateLimitedWait)
	}
	if st.IdleClosed != 0 {
		t.Fatalf("a pause of 1 s counted as idleness (ReadIdleTimeout %v)", idle)
	}

	// A pause of 100 s: shutdown does not wait for it.
	big := make([]*vppv1.Reading, 1000)
	for i := range big {
		big[i] = reading("d", "s", uint64(17+i))
	}
	c.send(big...)
	c.waitAck("d", 1016)
	stopping := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(stopping); took > 5*time.Second {
		t.Fatalf("shutdown took %v behind a paused connection", took)
	}
}

// TestPausedConnectionNoticesPeerGone: a connection paused for the rate
// limit reads nothing, but when its peer goes away the next ping fails and
// the connection ends at once, instead of holding its slot (and
// --max-conns) for the rest of a pause that may last minutes.
func TestPausedConnectionNoticesPeerGone(t *testing.T) {
	const ping = 100 * time.Millisecond
	srv := startServer(t, Config{DeviceRate: 1, DeviceBurst: 5, PingInterval: ping}, &fakePub{})
	c := dial(t, srv.url)
	rs := make([]*vppv1.Reading, 105)
	for i := range rs {
		rs[i] = reading("d", "s", uint64(i+1))
	}
	c.send(rs...) // 100 readings over the burst at 1/s: a pause of 100 s
	c.waitAck("d", 105)
	eventually(t, "the connection paused", func() bool { return srv.Stats().RateLimitedFrames == 1 })
	c.ws.Close()
	eventually(t, "the paused connection closed after its peer left", func() bool { return srv.Stats().Connections == 0 })
}
