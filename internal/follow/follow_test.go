package follow_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
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

// freePort returns a port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestFollowerFatal gives up at once with the cause when Fatal accepts the
// session's error: nothing listening, or a topic that does not exist.
func TestFollowerFatal(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("unreachable", func(t *testing.T) {
		addr := freePort(t)
		f := follow.New(follow.Config{
			Kafka:  kafka.Options{Brokers: []string{addr}, Version: kafka.DefaultVersion},
			Topics: []string{"x.state"}, Apply: func(follow.Record) {}, Name: "test follower", Logger: quiet,
			Fatal: kafka.Persistent,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err := f.Run(ctx)
		var ue *kafka.UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("Run: %v, want an *kafka.UnreachableError", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("gave up after %s", took)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot reach Kafka at "+addr) || !strings.Contains(msg, "connection refused") {
			t.Errorf("error %q does not name the broker and the refusal", msg)
		}
		if err := f.WaitCaughtUp(ctx); err == nil || err.Error() != msg {
			t.Errorf("WaitCaughtUp: %v, want %q", err, msg)
		}
		if p := f.Progress(); p.Started || p.Err == nil {
			t.Errorf("progress %+v: want not started, with the error", p)
		}
	})
	t.Run("missing topic", func(t *testing.T) {
		opts := kafkatest.Options(t, 1)
		topic := opts.Topics().State()
		f := follow.New(follow.Config{
			Kafka: opts, Topics: []string{topic}, Apply: func(follow.Record) {}, Name: "test follower", Logger: quiet,
			Fatal: kafka.Persistent,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := f.Run(ctx)
		var me *kafka.MissingTopicError
		if !errors.As(err, &me) || me.Topic != topic {
			t.Fatalf("Run: %v, want a *kafka.MissingTopicError for %s", err, topic)
		}
		want := "topic " + topic + " does not exist: is an aggregator running with this --topic-prefix?"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want %q", err, want)
		}
	})
}

// TestFollowerProgress holds the follower in the middle of its catch-up
// (Apply blocks on the first record) and checks what Progress says then
// and after catch-up.
func TestFollowerProgress(t *testing.T) {
	opts := kafkatest.Options(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().State()
	var msgs []*sarama.ProducerMessage
	for i := range 20 {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v")})
	}
	produce(t, opts, msgs)

	first := make(chan struct{})
	release := make(chan struct{})
	var n atomic.Int64
	f := follow.New(follow.Config{
		Kafka:  opts,
		Topics: []string{topic},
		Apply: func(follow.Record) {
			if n.Add(1) == 1 {
				close(first)
				<-release
			}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Batch:  1,
	})
	if p := f.Progress(); p.Started || p.CaughtUp {
		t.Fatalf("progress before Run: %+v", p)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	defer func() { stop(); <-done }()
	select {
	case <-first:
	case <-ctx.Done():
		t.Fatal("no record")
	}
	p := f.Progress()
	if !p.Started || p.CaughtUp || p.Partitions != 2 || p.Done != 0 || p.Records != 20 || p.Read != 0 || p.Err != nil {
		t.Errorf("progress while loading: %+v, want started, 0/2 partitions, 0/20 records", p)
	}
	if f.CaughtUpNow() {
		t.Error("caught up while loading")
	}
	close(release)
	if err := f.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	p = f.Progress()
	if !p.CaughtUp || p.Done != 2 || p.Read != 20 || p.Percent() != 100 {
		t.Errorf("progress after catch-up: %+v", p)
	}
}

func TestProgressPercent(t *testing.T) {
	for _, tc := range []struct {
		p    follow.Progress
		want float64
	}{
		{follow.Progress{}, 0},
		{follow.Progress{Started: true, Records: 200, Read: 50}, 25},
		{follow.Progress{Started: true, CaughtUp: true}, 100},
	} {
		if got := tc.p.Percent(); got != tc.want {
			t.Errorf("%+v: %v %%, want %v", tc.p, got, tc.want)
		}
	}
}

// TestFollowerSlowIsNotIdle folds slowly, for many times IdleCatchUp in
// all: records wait for the Run goroutine, so no partition may count as
// read before its records below the mark are applied.
func TestFollowerSlowIsNotIdle(t *testing.T) {
	opts := kafkatest.Options(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	topic := opts.Topics().State()
	const n = 60
	var msgs []*sarama.ProducerMessage
	for i := range n {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v")})
	}
	produce(t, opts, msgs)

	applied, caughtAt := 0, -1
	f := follow.New(follow.Config{
		Kafka:        opts,
		Topics:       []string{topic},
		Apply:        func(follow.Record) { applied++; time.Sleep(20 * time.Millisecond) },
		CaughtUp:     func() { caughtAt = applied },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Batch:        1,
		TickInterval: 5 * time.Millisecond,
		IdleCatchUp:  200 * time.Millisecond, // a sixth of the fold's 1.2 s
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
	if caughtAt != n {
		t.Fatalf("caught up after %d of the %d records below the marks", caughtAt, n)
	}
}
