package follow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/follow"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
)

func produce(t *testing.T, opts kafka.Options, msgs []*sarama.ProducerMessage) {
	t.Helper()
	cfg, err := opts.ProducerConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

// collector records what a follower hands over; the callbacks run on the
// Run goroutine, so it is read only after Run returned.
type collector struct {
	records  []follow.Record
	flushes  int
	caughtAt int // records applied when CaughtUp ran
}

func TestFollowerCatchesUpAndFollows(t *testing.T) {
	opts := kafkatest.Options(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().State()
	var msgs []*sarama.ProducerMessage
	for i := range 20 {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Key: sarama.StringEncoder(fmt.Sprintf("k%02d", i)), Value: sarama.StringEncoder("v")})
	}
	msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 1, Key: sarama.StringEncoder("gone")}) // a tombstone
	produce(t, opts, msgs)

	c := &collector{caughtAt: -1}
	var applied atomic.Int64
	caught := make(chan bool, 1)
	f := follow.New(follow.Config{
		Kafka:    opts,
		Topics:   []string{topic},
		Apply:    func(r follow.Record) { c.records = append(c.records, r); applied.Add(1) },
		Flush:    func() { c.flushes++ },
		CaughtUp: func() { c.caughtAt = len(c.records) },
		Name:     "test follower",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Batch:    4,
		Backoff:  backoff.Policy{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if f.CaughtUpNow() {
		t.Fatal("caught up before Run")
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	if err := f.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	caught <- f.CaughtUpNow()
	produce(t, opts, []*sarama.ProducerMessage{{Topic: topic, Partition: 0, Key: sarama.StringEncoder("late"), Value: sarama.StringEncoder("v")}})
	deadline := time.Now().Add(10 * time.Second)
	for applied.Load() < 22 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(c.records) != 22 {
		t.Fatalf("%d records, want 22", len(c.records))
	}
	if !<-caught {
		t.Error("CaughtUpNow false after WaitCaughtUp")
	}
	if c.caughtAt != 21 {
		t.Errorf("CaughtUp ran after %d records, want all 21 below the marks", c.caughtAt)
	}
	if c.flushes < 21/4 {
		t.Errorf("%d flushes for 22 records in batches of at most 4", c.flushes)
	}
	next := map[int32]int64{}
	tombstones := 0
	for _, r := range c.records {
		if r.Topic != topic {
			t.Fatalf("record of topic %q", r.Topic)
		}
		if r.Offset < next[r.Partition] {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, next[r.Partition]-1)
		}
		next[r.Partition] = r.Offset + 1
		if r.Value == nil {
			tombstones++
			if string(r.Key) != "gone" {
				t.Errorf("tombstone %q", r.Key)
			}
		}
	}
	if tombstones != 1 {
		t.Errorf("%d tombstones, want 1", tombstones)
	}
	if err := f.Run(context.Background()); err == nil {
		t.Error("second Run must fail")
	}
}

// TestFollowerFrom starts at a time: only records at or after it arrive,
// and an empty remainder counts as caught up.
func TestFollowerFrom(t *testing.T) {
	opts := kafkatest.Options(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().History()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []*sarama.ProducerMessage
	for i := range 10 {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v"), Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	produce(t, opts, msgs)

	for _, tc := range []struct {
		from time.Time
		want int
	}{{base.Add(6 * time.Minute), 4}, {time.Now(), 0}} {
		var got []follow.Record
		f := follow.New(follow.Config{
			Kafka:  opts,
			Topics: []string{topic},
			From:   func() time.Time { return tc.from },
			Apply:  func(r follow.Record) { got = append(got, r) },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
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
		if len(got) != tc.want {
			t.Fatalf("from %s: %d records, want %d", tc.from.Sub(base), len(got), tc.want)
		}
		for _, r := range got {
			if r.Timestamp.Before(tc.from) {
				t.Errorf("record at %s before the start %s", r.Timestamp, tc.from)
			}
		}
	}
}

func TestFollowerUnusableConfig(t *testing.T) {
	f := follow.New(follow.Config{Topics: []string{"x"}, Apply: func(follow.Record) {}, Name: "bad follower"})
	if err := f.Run(context.Background()); err == nil {
		t.Fatal("Run without brokers must fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.WaitCaughtUp(ctx); err == nil {
		t.Fatal("WaitCaughtUp after a failed Run must fail")
	}
}
