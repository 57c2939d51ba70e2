package history_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/reader"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

const (
	rounds     = 3
	roundEvery = 2 * time.Second
)

func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.WaitFor(ctx, t, 0, 50*time.Millisecond, what, cond)
}

func near(a, b float64) bool {
	return !math.IsNaN(a) && math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
}

// produceSync writes msgs and fails the test on error.
func produceSync(t *testing.T, o kafka.Options, msgs []*sarama.ProducerMessage) {
	t.Helper()
	cfg, err := o.ProducerConfig() // idempotent: a retry writes no record twice
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(o.Brokers, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// TestBackfillFromAggregator runs a real aggregator over telemetry sent in
// rounds, then starts a history Reader: its fleet series is backfilled
// with every round's total and ends at the fleet rollup of the state topic;
// ingest stats in the history topic give ReceivedPerSec.
func TestBackfillFromAggregator(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	o := kafkatest.Options(t, 3)
	if err := kafka.EnsureTopics(ctx, o); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	agg, err := aggregate.New(aggregate.Config{
		Kafka: o, Group: "hist", FlushInterval: 50 * time.Millisecond,
		HistoryInterval: 200 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	aggCtx, stopAgg := context.WithCancel(ctx)
	aggDone := make(chan error, 1)
	go func() { aggDone <- agg.Run(aggCtx) }()
	defer func() {
		stopAgg()
		if err := <-aggDone; err != nil {
			t.Errorf("aggregator: %v", err)
		}
	}()
	waitFor(ctx, t, "aggregator ready", func() (bool, string) {
		st := agg.Stats()
		return agg.Ready() && len(st.Partitions) == 3, fmt.Sprintf("partitions %v", st.Partitions)
	})

	// 6 sites × 2 devices in 2 regions and 3 substations; every round
	// gives each device a new power.
	const sites, perSite = 6, 2
	totals := make([]float64, rounds) // fleet power after each round, kW
	base := time.Now().Truncate(time.Second)
	for k := range rounds {
		var msgs []*sarama.ProducerMessage
		var sum int64
		for s := range sites {
			for d := range perSite {
				p := float64((s+1)*(d+2)) * float64(k+1) * 0.37
				if (s+d+k)%3 == 0 {
					p = -p
				}
				sum += fleet.ToMicro(p)
				r := &vppv1.Reading{
					DeviceId: fmt.Sprintf("dev-%d-%d", s, d), SiteId: fmt.Sprintf("site-%d", s),
					SubstationId: fmt.Sprintf("sub-%d", s%3), RegionId: fmt.Sprintf("region-%d", s%2),
					Seq: uint64(k + 1), TsMs: time.Now().UnixMilli(), PowerKw: p, SocPct: 40 + float64(k),
					CapacityKwh: 10, MaxChargeKw: 20, MaxDischargeKw: 20, Mode: vppv1.Mode_MODE_IDLE,
				}
				b, err := proto.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, &sarama.ProducerMessage{Topic: o.Topics().Telemetry(), Key: sarama.StringEncoder(r.SiteId), Value: sarama.ByteEncoder(b)})
			}
		}
		totals[k] = fleet.FromMicro(sum)
		// Ingest's accounting, as ingest writes it: 12 readings per
		// round, two seconds apart: 6 per second.
		st := &vppv1.IngestStats{Instance: "ing-1", Received: uint64(12 * k), Published: uint64(12 * k),
			StartedMs: base.UnixMilli() - 10_000, UpdatedMs: base.Add(time.Duration(k) * roundEvery).UnixMilli()}
		hb, err := proto.Marshal(&vppv1.HistoryRecord{Body: &vppv1.HistoryRecord_Ingest{Ingest: st}})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: o.Topics().History(), Key: sarama.StringEncoder("ingest/ing-1"),
			Value: sarama.ByteEncoder(hb), Timestamp: time.UnixMilli(st.UpdatedMs)})
		if d := time.Until(base.Add(time.Duration(k) * roundEvery)); d > 0 {
			time.Sleep(d)
		}
		produceSync(t, o, msgs)
		waitFor(ctx, t, fmt.Sprintf("round %d applied", k), func() (bool, string) {
			st := agg.Stats()
			return st.Applied == uint64((k+1)*sites*perSite), fmt.Sprintf("applied %d", st.Applied)
		})
	}

	// The state topic's view at the end.
	fr, err := reader.New(o, logger)
	if err != nil {
		t.Fatal(err)
	}
	frCtx, stopFR := context.WithCancel(ctx)
	defer stopFR()
	go func() { _ = fr.Run(frCtx) }()
	waitFor(ctx, t, "state topic complete", func() (bool, string) {
		ru := fr.Snapshot().Fleet.Rollup
		return ru.Devices == sites*perSite && near(ru.PowerKW(), totals[rounds-1]), fmt.Sprintf("%d devices, %v kW", ru.Devices, ru.PowerKW())
	})
	// Quiet for more than a second: samples of the final state fill a
	// whole second before the reader starts.
	time.Sleep(1500 * time.Millisecond)

	// The history reader starts only now.
	started := time.Now()
	hr := history.NewReader(o, time.Minute, logger)
	hrCtx, stopHR := context.WithCancel(ctx)
	hrDone := make(chan error, 1)
	go func() { hrDone <- hr.Run(hrCtx) }()
	defer func() {
		stopHR()
		if err := <-hrDone; err != nil {
			t.Errorf("history reader: %v", err)
		}
	}()
	if err := hr.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "history past the reader's start", func() (bool, string) {
		end, ok := hr.Latest()
		return ok && end.Unix() >= started.Unix(), fmt.Sprintf("latest %v, started %v", end, started)
	})

	store := history.NewStore(hr, history.NewRecorder(0))
	const n = 30
	end, _ := hr.Latest()
	pw := store.Series(fleet.KindFleet, fleet.FleetID, history.PowerKW, n)
	sec := func(i int) int64 { return end.Unix() - int64(n-1-i) }
	t.Logf("fleet power %v (rounds %v, started %d, end %d)", pw, totals, started.Unix(), end.Unix())

	// Backfilled: every round's total shows, in order, in seconds before
	// the reader started.
	next := 0
	for i, v := range pw {
		if next < rounds && sec(i) < started.Unix() && near(v, totals[next]) {
			next++
		}
	}
	if next != rounds {
		t.Errorf("backfill shows %d of the %d round totals %v in order before the start: %v", next, rounds, totals, pw)
	}
	// The latest value is the fleet rollup of the state topic.
	snap := fr.Snapshot()
	if got, want := pw[n-1], snap.Fleet.Rollup.PowerKW(); !near(got, want) {
		t.Errorf("latest fleet power %v, state topic says %v", got, want)
	}
	for _, reg := range snap.Regions() {
		got := store.Series(fleet.KindRegion, reg.ID, history.PowerKW, 1)[0]
		if !near(got, reg.Rollup.PowerKW()) {
			t.Errorf("region %s power %v, state topic says %v", reg.ID, got, reg.Rollup.PowerKW())
		}
		for _, sub := range reg.Children {
			got := store.Series(fleet.KindSubstation, sub.ID, history.SoCPct, 1)[0]
			if !near(got, sub.Rollup.SoCPct()) {
				t.Errorf("substation %s SoC %v, state topic says %v", sub.ID, got, sub.Rollup.SoCPct())
			}
		}
	}
	if got, want := store.Series(fleet.KindFleet, "", history.Online, 1)[0], float64(snap.Fleet.Rollup.Online); !near(got, want) {
		t.Errorf("online %v, want %v", got, want)
	}
	// Ingest stats in the topic show up as a rate.
	recv := store.Series(fleet.KindFleet, fleet.FleetID, history.ReceivedPerSec, n)
	found := false
	for i, v := range recv {
		found = found || (sec(i) < started.Unix() && near(v, 6))
	}
	if !found {
		t.Errorf("received/s %v: no 6/s before the reader started", recv)
	}
	applied := store.Series(fleet.KindFleet, fleet.FleetID, history.AppliedPerSec, n)
	positive := false
	for _, v := range applied {
		positive = positive || v > 0
	}
	if !positive {
		t.Errorf("applied/s %v: never positive", applied)
	}
}
