package follow_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vppctl/vpp/internal/follow"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
)

// TestFollowerSlowFetchIsNotIdle stalls the consumer's fetches (the broker
// holds every fetch that waits for records, as a fetch shared by many
// partitions is slow at a large fleet) for many times IdleCatchUp while
// records wait below the marks: nothing waits in the follower, so the
// partitions look idle, but the broker still holds their records, and the
// follower must not catch up before it delivered them. The stall starts
// before the first fetch, or after the first records came (the records
// are larger than one fetch), as at 1M devices, where a partition 52k
// records short of its mark was taken for idle.
func TestFollowerSlowFetchIsNotIdle(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int // records per partition
		value  int // bytes
		midway bool
	}{
		{"from the start", 20, 1, false},
		{"after the first records", 40, 64 << 10, true}, // 2.5 MiB a partition, sarama fetches 1 MiB
	} {
		t.Run(tc.name, func(t *testing.T) { testSlowFetch(t, tc.n, tc.value, tc.midway) })
	}
}

func testSlowFetch(t *testing.T, n, value int, midway bool) {
	b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	// Fault injection needs the embedded broker, even where the other
	// tests run against a real one.
	opts := kafka.Options{Brokers: []string{b.Addr()}, Prefix: kafkatest.Prefix("test"), Version: kafka.DefaultVersion, Partitions: 2, Replication: 1, ClientID: "vpp-test"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().State()
	val := make([]byte, value)
	_, _ = rand.Read(val) // incompressible: the fetches carry what they count
	var msgs []*sarama.ProducerMessage
	for i := range 2 * n {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(val)})
	}
	produce(t, opts, msgs)

	const stall = 1500 * time.Millisecond
	var release atomic.Int64 // unix ns the stall ends, 0 before it starts
	if !midway {
		release.Store(time.Now().Add(stall).UnixNano())
	}
	var fetches, stalled atomic.Int64
	cl := b.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		// The consumer's fetches wait for records; the follower's check
		// of a quiet partition asks with MaxWaitTime 0 and is answered.
		if fr, ok := req.(*kmsg.FetchRequest); !ok || fr.MaxWaitMillis == 0 {
			return nil, nil, false
		}
		if fetches.Add(1) == 2 && midway {
			// The first fetch carried 1 MiB of each partition; the
			// others wait.
			release.CompareAndSwap(0, time.Now().Add(stall).UnixNano())
		}
		if until := time.Unix(0, release.Load()); time.Now().Before(until) {
			stalled.Add(1)
			cl.SleepControl(func() { time.Sleep(time.Until(until)) })
		}
		return nil, nil, false // then served as usual
	})

	applied, caughtAt := 0, -1
	f := follow.New(follow.Config{
		Kafka:        opts,
		Topics:       []string{topic},
		Apply:        func(follow.Record) { applied++ },
		CaughtUp:     func() { caughtAt = applied },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		TickInterval: 5 * time.Millisecond,
		IdleCatchUp:  50 * time.Millisecond, // a thirtieth of the stall
		MaxWait:      100 * time.Millisecond,
	})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	if err := f.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if caughtAt != 2*n {
		t.Fatalf("caught up after %d of the %d records below the marks (%d fetches stalled)", caughtAt, 2*n, stalled.Load())
	}
	if stalled.Load() == 0 {
		t.Fatalf("no fetch was stalled (%d fetches): the test did not test", fetches.Load())
	}
}

// TestFollowerIdleBelowMark has a partition whose last offset below its
// mark is never delivered (a transaction's commit marker, as a record
// that compaction removed): the broker holds no record there, so the
// follower catches up once the partition is quiet.
func TestFollowerIdleBelowMark(t *testing.T) {
	opts := kafkatest.Options(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().State()
	cfg, err := opts.ProducerConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Transaction.ID = "follow-test-" + opts.Prefix
	p, err := sarama.NewSyncProducer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 5
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.CommitTxn(); err != nil {
		t.Fatal(err)
	}
	// Kafka writes the commit marker after CommitTxn returns.
	client, err := sarama.NewClient(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for {
		hwm, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == n+1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("high-water mark %d, want %d with the commit marker", hwm, n+1)
		}
		time.Sleep(10 * time.Millisecond)
	}

	applied := 0
	f := follow.New(follow.Config{
		Kafka:        opts,
		Topics:       []string{topic},
		Apply:        func(follow.Record) { applied++ },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		TickInterval: 5 * time.Millisecond,
		IdleCatchUp:  50 * time.Millisecond,
	})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	werr := f.WaitCaughtUp(wctx)
	prog := f.Progress()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatal(werr)
	}
	if applied != n {
		t.Errorf("%d records, want %d", applied, n)
	}
	if prog.Records != n+1 || !prog.CaughtUp || prog.Done != 1 {
		t.Errorf("progress %+v: want caught up, 1/1 partitions, %d offsets below the mark (the marker's too)", prog, n+1)
	}
}

// TestFollowerRecordsDeletedBelowMark deletes every record of a partition
// (retention, DeleteRecords) after the follower took its mark and before
// it read any: its check finds the next offset out of range and the oldest
// left at the mark, so the partition is idle and the follower catches up.
func TestFollowerRecordsDeletedBelowMark(t *testing.T) {
	b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	opts := kafka.Options{Brokers: []string{b.Addr()}, Prefix: kafkatest.Prefix("test"), Version: kafka.DefaultVersion, Partitions: 1, Replication: 1, ClientID: "vpp-test"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().History() // not compacted
	const n = 10
	var msgs []*sarama.ProducerMessage
	for i := range n {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v")})
	}
	produce(t, opts, msgs)

	// The consumer's fetches wait until the records are deleted.
	deleted := make(chan struct{})
	cl := b.Cluster()
	cl.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if fr, ok := req.(*kmsg.FetchRequest); ok && fr.MaxWaitMillis > 0 {
			cl.SleepControl(func() { <-deleted })
		}
		return nil, nil, false
	})

	var applied atomic.Int64 // read while Run runs
	f := follow.New(follow.Config{
		Kafka:        opts,
		Topics:       []string{topic},
		Apply:        func(follow.Record) { applied.Add(1) },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		TickInterval: 5 * time.Millisecond,
		IdleCatchUp:  50 * time.Millisecond,
	})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	defer func() { stop(); <-done }()
	for !f.Progress().Started {
		if ctx.Err() != nil {
			t.Fatal("the follower did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteRecords(topic, map[int32]int64{0: n}); err != nil {
		t.Fatal(err)
	}
	close(deleted)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := f.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	if p := f.Progress(); !p.CaughtUp || p.Records != n || applied.Load() != 0 {
		t.Errorf("progress %+v, %d records applied: want caught up with %d offsets below the mark, none left to apply", p, applied.Load(), n)
	}
}
