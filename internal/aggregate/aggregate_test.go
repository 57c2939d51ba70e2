package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	vppfleet "github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

const (
	testPartitions = 4
	testTimeout    = 30 * time.Second
)

// startKafka starts an embedded broker and creates the topics for prefix.
// startKafka returns options for each prefix (made unique) on the real
// broker of VPP_TEST_BROKERS or on a fresh embedded broker.
func startKafka(t *testing.T, prefixes ...string) []kafka.Options {
	t.Helper()
	return ensureTopics(t, kafkatest.Brokers(t), prefixes, true)
}

func ensureTopics(t *testing.T, brokers []string, prefixes []string, unique bool) []kafka.Options {
	t.Helper()
	var out []kafka.Options
	for _, p := range prefixes {
		if unique {
			p = kafkatest.Prefix(strings.TrimSuffix(p, "."))
		}
		o := kafka.Options{
			Brokers: brokers, Prefix: p, Version: kafka.DefaultVersion,
			Partitions: testPartitions, Replication: 1, ClientID: "vpp-test",
		}
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		err := kafka.EnsureTopics(ctx, o)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func startEmbedded(t *testing.T, prefixes ...string) (*kafka.Embedded, []kafka.Options) {
	t.Helper()
	e, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, ensureTopics(t, []string{e.Addr()}, prefixes, false)
}

// fleet generates readings for devices over sites, with duplicates and
// late older readings mixed in, and remembers each device's last reading.
type fleet struct {
	rng        *rand.Rand
	devices    []*vppv1.Reading // template per device
	sent       map[string][]*vppv1.Reading
	last       map[string]*vppv1.Reading
	produced   int // records
	distinct   int // distinct readings
	duplicates int
}

func newFleet(seed uint64, sites, perSite int) *fleet {
	f := &fleet{rng: rand.New(rand.NewPCG(seed, seed)), sent: map[string][]*vppv1.Reading{}, last: map[string]*vppv1.Reading{}}
	for s := range sites {
		for d := range perSite {
			f.devices = append(f.devices, &vppv1.Reading{
				DeviceId: fmt.Sprintf("dev-%03d-%02d", s, d), SiteId: fmt.Sprintf("site-%03d", s),
				SubstationId: fmt.Sprintf("sub-%d", s%3), RegionId: fmt.Sprintf("region-%d", s%2),
			})
		}
	}
	return f
}

// rounds returns n rounds of one reading per device, each followed with
// probability dup by a repeat of an earlier reading of the same device.
func (f *fleet) rounds(n int, dup float64) []*vppv1.Reading {
	var out []*vppv1.Reading
	modes := []vppv1.Mode{vppv1.Mode_MODE_IDLE, vppv1.Mode_MODE_CHARGING, vppv1.Mode_MODE_DISCHARGING, vppv1.Mode_MODE_STANDBY, vppv1.Mode_MODE_FAULT}
	for range n {
		for _, tmpl := range f.devices {
			r := proto.Clone(tmpl).(*vppv1.Reading)
			r.Seq = uint64(len(f.sent[r.DeviceId]) + 1)
			r.TsMs = 1_700_000_000_000 + int64(r.Seq)*1000
			r.CapacityKwh = 5 + 15*f.rng.Float64()
			r.SocPct = 100 * f.rng.Float64()
			r.SohPct = 90 + 10*f.rng.Float64()
			r.MaxChargeKw, r.MaxDischargeKw = 5, 5
			r.PowerKw = -5 + 10*f.rng.Float64()
			r.Mode = modes[f.rng.IntN(len(modes))]
			f.sent[r.DeviceId] = append(f.sent[r.DeviceId], r)
			f.last[r.DeviceId] = r
			out = append(out, r)
			f.distinct++
			if f.rng.Float64() < dup {
				prev := f.sent[r.DeviceId]
				out = append(out, prev[f.rng.IntN(len(prev))])
				f.duplicates++
			}
		}
	}
	f.produced += len(out)
	return out
}

// newTestProducer is a producer to the test's broker (acks from all
// replicas, as ingest asks); the caller closes it.
func newTestProducer(t *testing.T, o kafka.Options) sarama.SyncProducer {
	t.Helper()
	// The deployment's idempotent producer: a retried send under load must
	// not write a record twice, or the exact consumed counts below would
	// see a reading that was never produced.
	cfg, err := o.ProducerConfig()
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(o.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// produce publishes readings keyed by site ID, as ingest does.
func produce(t *testing.T, o kafka.Options, rs []*vppv1.Reading) {
	t.Helper()
	p := newTestProducer(t, o)
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(rs))
	for i, r := range rs {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = &sarama.ProducerMessage{Topic: o.Topics().Telemetry(), Key: sarama.StringEncoder(r.SiteId), Value: sarama.ByteEncoder(b)}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("produce telemetry: %v", err)
	}
}

// stateView is the state topic folded: the last record of every key.
type stateView struct {
	sites map[string]*vppv1.SiteState
	parts map[int32]*vppv1.PartitionState
	// partOf is the state partition each site record was read from.
	partOf map[string]int32
}

func readState(t *testing.T, client sarama.Client, o kafka.Options) stateView {
	t.Helper()
	topic := o.Topics().State()
	v := stateView{sites: map[string]*vppv1.SiteState{}, parts: map[int32]*vppv1.PartitionState{}, partOf: map[string]int32{}}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for p := range int32(testPartitions) {
		// Compaction may move the partition's start while it is read (the
		// embedded broker moves it to the oldest record it keeps): the
		// reader then stops, and the partition is read again from its new
		// start.
		for attempt := 0; !readStatePartition(t, consumer, client, topic, p, &v); attempt++ {
			if attempt == 5 {
				t.Fatalf("read state partition %d: its start kept moving", p)
			}
		}
	}
	return v
}

// readStatePartition folds state partition p into v; false when the
// reader stopped before the end (the partition's start moved).
func readStatePartition(t *testing.T, consumer sarama.Consumer, client sarama.Client, topic string, p int32, v *stateView) bool {
	t.Helper()
	oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
	newest, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if newest <= oldest {
		return true
	}
	pc, err := consumer.ConsumePartition(topic, p, oldest)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				return false
			}
			rec := &vppv1.StateRecord{}
			if err := proto.Unmarshal(m.Value, rec); err != nil {
				t.Fatalf("state record %s: %v", m.Key, err)
			}
			switch k := string(m.Key); {
			case strings.HasPrefix(k, "s/"):
				if rec.GetSite().GetSiteId() != strings.TrimPrefix(k, "s/") || rec.GetSite().GetPartition() != p {
					t.Fatalf("site record %s in partition %d: %v", k, p, rec)
				}
				vppfleet.CompleteSite(rec.GetSite())
				v.sites[rec.GetSite().GetSiteId()] = rec.GetSite()
				v.partOf[rec.GetSite().GetSiteId()] = p
			case k == fmt.Sprintf("p/%d", p):
				v.parts[p] = rec.GetPartition()
			default:
				t.Fatalf("unexpected key %q in state partition %d", k, p)
			}
			if m.Offset+1 >= newest {
				return true
			}
		case <-timeout:
			t.Fatalf("read state partition %d: timeout", p)
		}
	}
}

func newClient(t *testing.T, o kafka.Options) sarama.Client {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	c, err := sarama.NewClient(o.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// complete reports whether the state reflects every device's last reading
// and every produced record.
func (f *fleet) complete(v stateView) (bool, string) {
	seen := 0
	for _, s := range v.sites {
		for _, d := range s.GetDevices() {
			want := f.last[d.GetLast().GetDeviceId()]
			if want == nil {
				return false, "unknown device " + d.GetLast().GetDeviceId()
			}
			if d.GetLast().GetSeq() != want.Seq {
				return false, fmt.Sprintf("%s at seq %d, want %d", want.DeviceId, d.GetLast().GetSeq(), want.Seq)
			}
			seen++
		}
	}
	if seen != len(f.last) {
		return false, fmt.Sprintf("%d of %d devices in state", seen, len(f.last))
	}
	var consumed uint64
	for _, p := range v.parts {
		consumed += p.GetConsumed()
	}
	if consumed != uint64(f.produced) {
		return false, fmt.Sprintf("consumed %d of %d", consumed, f.produced)
	}
	return true, ""
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.WaitFor(context.Background(), t, testTimeout, 100*time.Millisecond, what, cond)
}

// checkState checks the folded state against the fleet's ground truth.
func (f *fleet) checkState(t *testing.T, v stateView) {
	t.Helper()
	var ids []string
	got := map[string]*vppv1.DeviceState{}
	for _, s := range v.sites {
		if !slices.IsSortedFunc(s.GetDevices(), func(a, b *vppv1.DeviceState) int {
			return strings.Compare(a.GetLast().GetDeviceId(), b.GetLast().GetDeviceId())
		}) {
			t.Errorf("site %s: devices not sorted", s.GetSiteId())
		}
		for _, d := range s.GetDevices() {
			got[d.GetLast().GetDeviceId()] = d
			ids = append(ids, d.GetLast().GetDeviceId())
		}
	}
	slices.Sort(ids)
	var gp, ge, gc, wp, we, wc float64
	for _, id := range ids {
		d, want := got[id], f.last[id]
		if !proto.Equal(d.GetLast(), want) {
			t.Errorf("%s: last %v, want %v", id, d.GetLast(), want)
		}
		if d.GetApplied() != uint64(want.Seq) {
			t.Errorf("%s: applied %d, want %d", id, d.GetApplied(), want.Seq)
		}
		gp += d.GetLast().GetPowerKw()
		ge += d.GetLast().GetSocPct() / 100 * d.GetLast().GetCapacityKwh()
		gc += d.GetLast().GetCapacityKwh()
		wp += want.PowerKw
		we += want.SocPct / 100 * want.CapacityKwh
		wc += want.CapacityKwh
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"power", gp, wp}, {"energy", ge, we}, {"capacity", gc, wc}} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("sum of %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var consumed, applied, dups uint64
	for _, p := range v.parts {
		consumed += p.GetConsumed()
		applied += p.GetApplied()
		dups += p.GetDuplicates()
		if p.GetApplied()+p.GetDuplicates()+p.GetUndecodable() != p.GetConsumed() {
			t.Errorf("partition %d: applied %d + duplicates %d + undecodable %d != consumed %d",
				p.GetPartition(), p.GetApplied(), p.GetDuplicates(), p.GetUndecodable(), p.GetConsumed())
		}
		if p.GetGaps() != 0 {
			t.Errorf("partition %d: %d gaps, want 0", p.GetPartition(), p.GetGaps())
		}
	}
	if consumed != uint64(f.produced) || applied != uint64(f.distinct) || dups != uint64(f.duplicates) {
		t.Errorf("consumed/applied/duplicates = %d/%d/%d, want %d/%d/%d",
			consumed, applied, dups, f.produced, f.distinct, f.duplicates)
	}
}

// runner runs one Aggregator in the background.
type runner struct {
	a      *Aggregator
	cancel context.CancelFunc
	done   chan error
}

func startAggregator(t *testing.T, o kafka.Options, group, name string) *runner {
	t.Helper()
	a, err := New(Config{
		Kafka: o, Group: group, FlushInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("agg", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the aggregator and waits for Run to return nil.
func (r *runner) stop(t *testing.T) {
	t.Helper()
	if r.done == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(testTimeout):
		t.Errorf("Run did not return after cancel")
	}
	r.done = nil
}

func (r *runner) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, "aggregator ready", func() (bool, string) { return r.a.Ready(), "not ready" })
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	o := startKafka(t, "e2e.")[0]
	f := newFleet(1, 12, 5)
	produce(t, o, f.rounds(20, 0.2))
	r := startAggregator(t, o, "g", "a")
	client := newClient(t, o)
	var v stateView
	waitFor(t, "state complete", func() (bool, string) { v = readState(t, client, o); return f.complete(v) })
	f.checkState(t, v)

	st := r.a.Stats()
	if len(st.Partitions) != testPartitions || st.Devices != len(f.last) || st.Consumed != uint64(f.produced) ||
		st.Applied != uint64(f.distinct) || st.Duplicates != uint64(f.duplicates) || st.Lag != 0 {
		t.Errorf("Stats = %+v; want %d partitions, %d devices, consumed %d, applied %d, duplicates %d, lag 0",
			st, testPartitions, len(f.last), f.produced, f.distinct, f.duplicates)
	}
	if !r.a.Ready() {
		t.Error("not ready")
	}
	for site, p := range v.partOf {
		if v.sites[site].GetPartition() != p {
			t.Errorf("site %s in state partition %d, says %d", site, p, v.sites[site].GetPartition())
		}
	}
}

func TestRestoreContinuesCounters(t *testing.T) {
	t.Parallel()
	o := startKafka(t, "restore.")[0]
	client := newClient(t, o)
	f := newFleet(2, 10, 4)
	produce(t, o, f.rounds(10, 0.2))
	r1 := startAggregator(t, o, "g", "first")
	waitFor(t, "first batch", func() (bool, string) { return f.complete(readState(t, client, o)) })
	r1.stop(t)

	produce(t, o, f.rounds(10, 0.3))
	r2 := startAggregator(t, o, "g", "second")
	var v stateView
	waitFor(t, "second batch", func() (bool, string) { v = readState(t, client, o); return f.complete(v) })
	f.checkState(t, v)
	st := r2.a.Stats()
	if st.Consumed != uint64(f.produced) || st.Applied != uint64(f.distinct) {
		t.Errorf("second aggregator's counters consumed/applied = %d/%d, want %d/%d (continued from the first)",
			st.Consumed, st.Applied, f.produced, f.distinct)
	}
	r2.stop(t)
	checkCommitted(t, o, "g", readState(t, client, o))
}

// checkCommitted checks state before offsets after a clean stop: no
// committed offset is ahead of the next_offset in the partition's state, and
// a clean stop committed exactly that.
func checkCommitted(t *testing.T, o kafka.Options, group string, v stateView) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(o.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	parts := []int32{0, 1, 2, 3}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{o.Topics().Telemetry(): parts})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		b := resp.GetBlock(o.Topics().Telemetry(), p)
		if b == nil || !errors.Is(b.Err, sarama.ErrNoError) {
			t.Fatalf("committed offset of partition %d: %v", p, b)
		}
		next := v.parts[p].GetNextOffset()
		if b.Offset > next {
			t.Errorf("partition %d: committed offset %d ahead of durable state's next_offset %d", p, b.Offset, next)
		}
		if next > 0 && b.Offset != next {
			t.Errorf("partition %d: committed %d after a clean stop, want next_offset %d", p, b.Offset, next)
		}
	}
}

func TestStateBeforeOffsets(t *testing.T) {
	t.Parallel()
	o := startKafka(t, "sbo.")[0]
	client := newClient(t, o)
	f := newFleet(3, 8, 3)
	r := startAggregator(t, o, "g", "a")
	r.waitReady(t)
	for range 5 {
		produce(t, o, f.rounds(4, 0.1))
		time.Sleep(30 * time.Millisecond)
	}
	waitFor(t, "state complete", func() (bool, string) { return f.complete(readState(t, client, o)) })
	r.stop(t)
	v := readState(t, client, o)
	f.checkState(t, v)
	checkCommitted(t, o, "g", v)
}

func TestTwoAggregatorsSplitPartitions(t *testing.T) {
	t.Parallel()
	opts := startKafka(t, "two.", "one.")
	two, one := opts[0], opts[1]
	client := newClient(t, two)
	f := newFleet(4, 16, 3)
	batch1, batch2 := f.rounds(8, 0.2), f.rounds(8, 0.2)

	// The reference: one aggregator over the same readings.
	produce(t, one, batch1)
	produce(t, one, batch2)
	ref := startAggregator(t, one, "ref", "ref")

	a := startAggregator(t, two, "g", "a")
	a.waitReady(t)
	produce(t, two, batch1)
	b := startAggregator(t, two, "g", "b")
	waitFor(t, "partitions split", func() (bool, string) {
		pa, pb := a.a.Stats().Partitions, b.a.Stats().Partitions
		ok := len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == testPartitions && a.a.Ready() && b.a.Ready()
		return ok, fmt.Sprintf("a owns %v, b owns %v", pa, pb)
	})
	t.Log("partitions split")
	produce(t, two, batch2)
	var v, rv stateView
	waitFor(t, "state complete", func() (bool, string) { v = readState(t, client, two); return f.complete(v) })
	waitFor(t, "reference complete", func() (bool, string) { rv = readState(t, client, one); return f.complete(rv) })
	t.Log("state complete")
	f.checkState(t, v)

	sa, sb := a.a.Stats(), b.a.Stats()
	if sa.Devices+sb.Devices != len(f.last) {
		t.Errorf("devices %d + %d, want %d", sa.Devices, sb.Devices, len(f.last))
	}
	for _, p := range sa.Partitions {
		if slices.Contains(sb.Partitions, p) {
			t.Errorf("partition %d owned by both", p)
		}
	}
	if len(v.sites) != len(rv.sites) {
		t.Fatalf("%d sites, reference %d", len(v.sites), len(rv.sites))
	}
	for id, s := range v.sites {
		want := rv.sites[id]
		if !proto.Equal(normalizeSite(s), normalizeSite(want)) {
			t.Errorf("site %s differs from the single aggregator's:\n got %v\nwant %v", id, s, want)
		}
	}
	for p, ps := range v.parts {
		want := rv.parts[p]
		if ps.GetConsumed() != want.GetConsumed() || ps.GetApplied() != want.GetApplied() ||
			ps.GetDuplicates() != want.GetDuplicates() || ps.GetNextOffset() != want.GetNextOffset() {
			t.Errorf("partition %d: %v, reference %v", p, ps, want)
		}
	}
	ref.stop(t)
}

// normalizeSite drops the wall-clock times, which differ between runs.
func normalizeSite(s *vppv1.SiteState) *vppv1.SiteState {
	s = proto.Clone(s).(*vppv1.SiteState)
	s.UpdatedMs = 0
	for _, d := range s.Devices {
		d.AppliedMs = 0
	}
	return s
}

// TestRestoreSkipsReflectedRecords starts a second aggregator in a new
// group: nothing is committed, it reads telemetry from the oldest offset,
// and only the restored next_offset keeps it from counting the first batch
// twice.
func TestRestoreSkipsReflectedRecords(t *testing.T) {
	t.Parallel()
	o := startKafka(t, "skip.")[0]
	client := newClient(t, o)
	f := newFleet(5, 6, 4)
	produce(t, o, f.rounds(6, 0.3))
	r1 := startAggregator(t, o, "g1", "first")
	waitFor(t, "first batch", func() (bool, string) { return f.complete(readState(t, client, o)) })
	r1.stop(t)

	produce(t, o, f.rounds(6, 0.3))
	startAggregator(t, o, "g2", "second")
	var v stateView
	waitFor(t, "second batch", func() (bool, string) { v = readState(t, client, o); return f.complete(v) })
	f.checkState(t, v)
}

func TestRunRejectsMismatchedTopics(t *testing.T) {
	t.Parallel()
	o := startKafka(t, "ok.")[0]
	o.Prefix += "mm."
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(o.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for topic, n := range map[string]int32{o.Topics().Telemetry(): 4, o.Topics().State(): 2} {
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(Config{Kafka: o, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	if err := a.Run(ctx); !errors.Is(err, kafka.ErrTopicMismatch) {
		t.Fatalf("Run = %v, want ErrTopicMismatch", err)
	}
	if err := a.Run(ctx); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestNewDefaults(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without brokers succeeded")
	}
	a, err := New(Config{Kafka: kafka.Options{Brokers: []string{"127.0.0.1:1"}, Version: kafka.DefaultVersion}})
	if err != nil {
		t.Fatal(err)
	}
	c := a.cfg
	if c.Group != DefaultGroup || c.OfflineAfter != DefaultOfflineAfter || c.ReserveSoCPct != 0 ||
		c.HeadroomHorizon != DefaultHeadroomHorizon || c.FlushInterval != DefaultFlushInterval ||
		c.HistoryInterval != DefaultHistoryInterval || c.Logger == nil {
		t.Errorf("defaults not applied (or the reserve, 0 = none, not kept): %+v", c)
	}
	if a.twin.reserve != 0 {
		t.Errorf("twin reserve = %v, want 0 as given", a.twin.reserve)
	}
	def := DefaultConfig()
	if def.Group != DefaultGroup || def.OfflineAfter != DefaultOfflineAfter || def.ReserveSoCPct != DefaultReserveSoCPct ||
		def.HeadroomHorizon != DefaultHeadroomHorizon || def.FlushInterval != DefaultFlushInterval ||
		def.HistoryInterval != DefaultHistoryInterval {
		t.Errorf("DefaultConfig() = %+v", def)
	}
	def.Kafka = kafka.Options{Brokers: []string{"127.0.0.1:1"}, Version: kafka.DefaultVersion}
	a, err = New(def)
	if err != nil {
		t.Fatal(err)
	}
	if a.twin.reserve != DefaultReserveSoCPct {
		t.Errorf("twin reserve from DefaultConfig = %v, want %v", a.twin.reserve, DefaultReserveSoCPct)
	}
	for _, bad := range []float64{-1, 101, math.NaN()} {
		def.ReserveSoCPct = bad
		if _, err := New(def); err == nil {
			t.Errorf("New with reserve SoC %v succeeded", bad)
		}
	}
	if a.Ready() {
		t.Error("ready before Run")
	}
	if st := a.Stats(); len(st.Partitions) != 0 || st.Devices != 0 {
		t.Errorf("Stats before Run = %+v", st)
	}
}

// committedOffsets returns the group's committed offset per partition (-1:
// none).
func committedOffsets(t *testing.T, o kafka.Options, group string) map[int32]int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(o.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	parts := []int32{0, 1, 2, 3}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{o.Topics().Telemetry(): parts})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		b := resp.GetBlock(o.Topics().Telemetry(), p)
		if b == nil || !errors.Is(b.Err, sarama.ErrNoError) {
			t.Fatalf("committed offset of partition %d: %v", p, b)
		}
		out[p] = b.Offset
	}
	return out
}

// TestNoOffsetAheadOfStateDuringOutage fails every write to the state
// topic while telemetry flows: the twins advance in memory, but no offset
// may be committed beyond what the state topic holds. Once writes succeed
// again the state catches up exactly.
func TestNoOffsetAheadOfStateDuringOutage(t *testing.T) {
	t.Parallel()
	e, opts := startEmbedded(t, "outage.")
	o := opts[0]
	client := newClient(t, o)
	var failing atomic.Bool
	var rejected atomic.Int64
	failing.Store(true)
	state := o.Topics().State()
	e.Cluster().ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.Cluster().KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !failing.Load() || !slices.ContainsFunc(pr.Topics, func(t kmsg.ProduceRequestTopic) bool { return t.Topic == state }) {
			return nil, nil, false
		}
		rejected.Add(1)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 19 // NOT_ENOUGH_REPLICAS: retriable
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	f := newFleet(6, 8, 3)
	r := startAggregator(t, o, "g", "a")
	r.waitReady(t)
	produce(t, o, f.rounds(5, 0.2))
	waitFor(t, "readings applied in memory", func() (bool, string) {
		st := r.a.Stats()
		return st.Consumed == uint64(f.produced), fmt.Sprintf("consumed %d of %d", st.Consumed, f.produced)
	})
	time.Sleep(1500 * time.Millisecond) // more than the auto-commit interval
	if rejected.Load() == 0 {
		t.Fatal("no state write was attempted")
	}
	v := readState(t, client, o)
	for p, off := range committedOffsets(t, o, "g") {
		if next := v.parts[p].GetNextOffset(); off > next {
			t.Errorf("partition %d: committed offset %d ahead of durable state's next_offset %d", p, off, next)
		}
	}

	failing.Store(false)
	waitFor(t, "state complete", func() (bool, string) { v = readState(t, client, o); return f.complete(v) })
	r.stop(t)
	v = readState(t, client, o)
	f.checkState(t, v)
	checkCommitted(t, o, "g", v)
}
