package reader

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/proto/vppv1"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w *tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startBroker(t *testing.T) kafka.Options {
	t.Helper()
	return kafka.Options{
		Brokers:     kafkatest.Brokers(t),
		Prefix:      kafkatest.Prefix("fleet"),
		Version:     kafka.DefaultVersion,
		Partitions:  4,
		Replication: 1,
		ClientID:    "fleet-test",
	}
}

type producer struct {
	t     *testing.T
	p     sarama.SyncProducer
	tp    kafka.Topics
	close func()
}

func newProducer(t *testing.T, opts kafka.Options) *producer {
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
	closeOnce := sync.OnceFunc(func() { _ = p.Close() })
	t.Cleanup(closeOnce)
	return &producer{t: t, p: p, tp: opts.Topics(), close: closeOnce}
}

func (p *producer) send(topic string, partition int32, key string, m proto.Message) {
	p.t.Helper()
	msg := &sarama.ProducerMessage{Topic: topic, Partition: partition, Key: sarama.StringEncoder(key)}
	if m != nil {
		b, err := proto.Marshal(m)
		if err != nil {
			p.t.Fatal(err)
		}
		msg.Value = sarama.ByteEncoder(b)
	}
	if _, _, err := p.p.SendMessage(msg); err != nil {
		p.t.Fatalf("produce %s: %v", key, err)
	}
}

func (p *producer) site(s *vppv1.SiteState) {
	p.send(p.tp.State(), s.Partition, SiteKeyPrefix+s.SiteId, &vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: s}})
}

func (p *producer) partition(ps *vppv1.PartitionState) {
	p.send(p.tp.State(), ps.Partition, PartitionKeyPrefix+strconv.Itoa(int(ps.Partition)), &vppv1.StateRecord{Body: &vppv1.StateRecord_Partition{Partition: ps}})
}

func (p *producer) stats(st *vppv1.IngestStats) {
	p.send(p.tp.Stats(), 0, IngestKeyPrefix+st.Instance, st)
}

// waitFor polls the reader's snapshots until cond holds.
func waitFor(t *testing.T, r *Reader, cond func(*fleet.Snapshot) bool) *fleet.Snapshot {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := r.Changed()
		if s := r.Snapshot(); cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("timed out waiting for the snapshot")
		}
	}
}

func TestReaderIntegration(t *testing.T) {
	opts := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(t, opts)
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[string]*vppv1.SiteState{}
	put := func(s *vppv1.SiteState) {
		prod.site(s)
		model[s.SiteId] = s
	}
	for i := range 12 {
		s := randomSite(rng, fmt.Sprintf("site-%02d", i), 1)
		s.Partition = int32(i % 4)
		put(s)
	}
	// Replace site-00 (and move it) and site-05; remove site-07.
	for _, id := range []string{"site-00", "site-05"} {
		s := randomSite(rng, id, 2)
		s.Partition = model[id].Partition
		s.RegionId, s.SubstationId = "region-9", "sub-9-0"
		put(s)
	}
	prod.send(opts.Topics().State(), model["site-07"].Partition, SiteKeyPrefix+"site-07", nil)
	delete(model, "site-07")
	prod.partition(&vppv1.PartitionState{Partition: 0, NextOffset: 100, HighWaterMark: 130, Consumed: 100, Applied: 90, Duplicates: 10, UpdatedMs: 1000})
	prod.partition(&vppv1.PartitionState{Partition: 2, NextOffset: 50, HighWaterMark: 50, Consumed: 50, Applied: 49, Gaps: 3, Undecodable: 1, UpdatedMs: 2000})
	prod.stats(&vppv1.IngestStats{Instance: "i1", Received: 10, Published: 9, Rejected: map[string]uint64{"bad": 1}})
	prod.stats(&vppv1.IngestStats{Instance: "i2", Received: 200, Published: 190, Acked: 190, Rejected: map[string]uint64{"bad": 2, "skew": 3}, Connections: 7})
	prod.stats(&vppv1.IngestStats{Instance: "i1", Received: 20, Published: 19, Acked: 19, Rejected: map[string]uint64{"bad": 1}, Connections: 1})

	r, err := New(opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { runErr <- r.Run(rctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := r.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	checkSnapshot(t, 0, snap, recompute(model))
	if snap.Site("site-07") != nil || snap.Site("site-00").RegionID != "region-9" || snap.Sites() != 11 {
		t.Fatalf("sites: %d, site-00 in %q", snap.Sites(), snap.Site("site-00").RegionID)
	}
	p := snap.Pipeline
	if p.Received != 220 || p.Published != 209 || p.Acked != 209 || p.RejectedTotal != 6 || p.Rejected["bad"] != 3 || p.Connections != 8 || p.Unaccounted() != 5 {
		t.Fatalf("ingest pipeline %+v", p)
	}
	if p.Consumed != 150 || p.Applied != 139 || p.Duplicates != 10 || p.Gaps != 3 || p.Undecodable != 1 || p.Lag != 30 || p.UpdatedAt.UnixMilli() != 2000 {
		t.Fatalf("aggregate pipeline %+v", p)
	}

	// A later update is reflected.
	v := r.Version()
	if v == 0 {
		t.Fatal("version 0 after catching up")
	}
	s := randomSite(rng, "site-03", 3)
	s.Partition = model["site-03"].Partition
	s.Devices = append(s.Devices, randomDevice(rng, "extra", 3))
	put(s)
	prod.partition(&vppv1.PartitionState{Partition: 0, NextOffset: 130, HighWaterMark: 130, Consumed: 130, Applied: 120, Duplicates: 10, UpdatedMs: 3000})
	want := proto.CloneOf(model["site-03"])
	fleet.CompleteSite(want) // a decoded site's device readings carry the site's IDs
	snap = waitFor(t, r, func(s *fleet.Snapshot) bool {
		return s.Version > v && s.Pipeline.Lag == 0 && proto.Equal(s.Site("site-03").Site(), want)
	})
	checkSnapshot(t, 1, snap, recompute(model))
	if snap.Pipeline.Consumed != 180 {
		t.Fatalf("consumed %d", snap.Pipeline.Consumed)
	}

	stop()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("second Run must fail")
	}
}

// TestReaderStartsBeforeTopics starts the reader before the topics exist:
// it must retry, then catch up with an empty fleet, then follow.
func TestReaderStartsBeforeTopics(t *testing.T) {
	opts := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := New(opts, testLogger(t), WithBackoff(testBackoff()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { _ = r.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	time.Sleep(1500 * time.Millisecond) // longer than sarama's metadata retries: Run must reconnect
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.Snapshot().Fleet.Rollup.Devices; n != 0 {
		t.Fatalf("devices %d", n)
	}
	prod := newProducer(t, opts)
	s := &vppv1.SiteState{SiteId: "s1", RegionId: "r", SubstationId: "x", Partition: 3, Devices: []*vppv1.DeviceState{{Last: reading("d", 1, 50, 1, 10, 20, 0)}}}
	prod.site(s)
	snap := waitFor(t, r, func(s *fleet.Snapshot) bool { return s.Site("s1") != nil })
	if snap.Fleet.Rollup.EnergyMicroKWh != 5_000_000 {
		t.Fatalf("energy %d", snap.Fleet.Rollup.EnergyMicroKWh)
	}
}

func TestWaitCaughtUpContext(t *testing.T) {
	r, err := New(kafka.Options{Brokers: []string{"127.0.0.1:1"}, Version: kafka.DefaultVersion, Prefix: "x."}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.WaitCaughtUp(ctx); err == nil {
		t.Fatal("want an error")
	}
	if _, err := New(kafka.Options{}, nil); err == nil {
		t.Fatal("want an error without brokers")
	}
}

// TestReaderReconnects restarts the broker under a running reader: the
// reader must reconnect, resume where it stopped and follow new records.
func TestReaderReconnects(t *testing.T) {
	dir := t.TempDir()
	b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	opts := kafka.Options{Brokers: []string{addr}, Prefix: "rc.", Version: kafka.DefaultVersion, Partitions: 2, Replication: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(t, opts)
	site := func(id string, p int32, power float64) *vppv1.SiteState {
		return &vppv1.SiteState{SiteId: id, RegionId: "r", SubstationId: "x", Partition: p, Devices: []*vppv1.DeviceState{{Last: reading(id+"-d", 1, 50, power, 10, 20, 0)}}}
	}
	prod.site(site("a", 0, 1))
	prod.site(site("b", 1, 2))
	r, err := New(opts, testLogger(t), WithBackoff(testBackoff()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { _ = r.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Snapshot().Fleet.Rollup.NetMicroKW; got != 3_000_000 {
		t.Fatalf("net %d", got)
	}
	prod.close()
	b.Close()
	time.Sleep(500 * time.Millisecond)
	b2, err := kafka.StartEmbedded(kafka.EmbeddedOptions{DataDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.Close)
	prod = newProducer(t, opts)
	prod.site(site("a", 0, 5))
	prod.site(site("c", 1, 1))
	snap := waitFor(t, r, func(s *fleet.Snapshot) bool { return s.Fleet.Rollup.NetMicroKW == 8_000_000 })
	if snap.Sites() != 3 {
		t.Fatalf("sites %d", snap.Sites())
	}
}
