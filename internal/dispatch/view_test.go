package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// startService creates the topics and runs a View with a Store until the
// test ends.
func startService(t *testing.T) (*Service, kafka.Options) {
	t.Helper()
	opts := kafkatest.Options(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := NewView(opts, testutil.Logger(slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(vctx) }()
	t.Cleanup(func() { vcancel(); <-done })
	if err := v.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	return &Service{Writer: st, View: v, Logger: testutil.Logger(slog.LevelDebug)}, opts
}

func TestServiceCreateCancel(t *testing.T) {
	s, opts := startService(t)
	ctx := context.Background()
	r := goodRequest()
	r.IdempotencyKey = "retry-1"
	e, created, _, err := s.Create(ctx, r)
	if err != nil || !created {
		t.Fatalf("Create: %v created %v", err, created)
	}
	id := e.Dispatch.GetId()
	if id != IdempotentID("alice", "retry-1") {
		t.Errorf("ID %s, want the derived one", id)
	}
	// The retry returns the same dispatch and writes nothing.
	e2, created, _, err := s.Create(ctx, r)
	if err != nil || created || e2.Dispatch.GetId() != id {
		t.Fatalf("retry: %v created %v id %s", err, created, e2.Dispatch.GetId())
	}
	// The same key for another request is a conflict.
	r3 := r
	r3.PowerKW = 1
	if _, _, _, err := s.Create(ctx, r3); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "power 5000 kW, not 1 kW") {
		t.Errorf("other request with the key: %v", err)
	}
	// Without a key: a new random dispatch every time.
	r4 := goodRequest()
	e4, created, _, err := s.Create(ctx, r4)
	if err != nil || !created || e4.Dispatch.GetId() == id {
		t.Fatalf("second create: %v", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d entries, %v", len(list), err)
	}

	c, err := s.Cancel(ctx, id, "bob")
	if err != nil || c.Dispatch.GetCancelledBy() != "bob" || c.Dispatch.GetCancelledMs() == 0 || StateName(c.State(time.Now())) != "cancelled" {
		t.Fatalf("Cancel = %v, %v", c.Dispatch, err)
	}
	if _, err := s.Cancel(ctx, id, "bob"); !errors.Is(err, ErrConflict) {
		t.Errorf("second cancel: %v", err)
	}
	if _, err := s.Cancel(ctx, "d-nosuch", "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
	if _, err := s.Get("bad/id"); !errors.Is(err, ErrInvalid) {
		t.Errorf("get malformed: %v", err)
	}

	// A second view reads everything back from the topic, with the
	// engine's records folded in.
	producer(t, opts, map[string]proto.Message{
		AllocationKey(id): &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Allocation{Allocation: &vppv1.DispatchAllocation{Epoch: 3, FeasibleKw: 4000}}},
		ReportKey(id, 1):  &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Report{Report: &vppv1.DispatchReport{ActualKw: 1500}}},
		ReportKey(id, 0):  &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Report{Report: &vppv1.DispatchReport{ActualKw: 1000}}},
		StatusKey("d-orphan"): &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Status{Status: &vppv1.DispatchStatus{
			State: vppv1.DispatchState_DISPATCH_STATE_FAILED}}},
		"junk": nil,
	})
	v2, err := NewView(opts, testutil.Logger(slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- v2.Run(vctx) }()
	defer func() { vcancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := v2.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	got, ok := v2.Get(id)
	if !ok || got.Dispatch.GetCancelledBy() != "bob" || got.Allocation.GetEpoch() != 3 || len(got.Reports) != 2 ||
		got.Reports[1].GetPartition() != 1 || got.Reports[1].GetDispatchId() != id || got.ActualKW() != 2500 {
		t.Errorf("second view: %+v", got)
	}
	if _, ok := v2.Get("d-orphan"); ok {
		t.Error("a status without a request is listed")
	}
	if n := len(v2.List()); n != 2 {
		t.Errorf("second view lists %d", n)
	}
	// A tombstone removes a report.
	producer(t, opts, map[string]proto.Message{ReportKey(id, 1): nil})
	if err := v2.WaitFor(wctx, id, func(e Entry, ok bool) bool { return ok && len(e.Reports) == 1 }); err != nil {
		t.Error(err)
	}
	if got.Reports[1] == nil {
		t.Error("a reader's entry changed under it")
	}
}

// producer writes records (nil: a tombstone; a nil message under "junk" is
// a malformed record) to the dispatch topic.
func producer(t *testing.T, opts kafka.Options, recs map[string]proto.Message) {
	t.Helper()
	cfg, err := opts.ProducerConfig()
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for k, m := range recs {
		msg := &sarama.ProducerMessage{Topic: opts.Topics().Dispatch(), Key: sarama.StringEncoder(k)}
		switch {
		case k == "junk":
			msg.Value = sarama.ByteEncoder("\xff\xff")
		case m != nil:
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			msg.Value = sarama.ByteEncoder(b)
		}
		if _, _, err := p.SendMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
}
