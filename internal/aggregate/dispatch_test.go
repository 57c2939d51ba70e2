package aggregate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// testDevices is a fleet that follows setpoints the way the protocol asks
// (at once, exactly, unless a device's limit says otherwise), in the test:
// it reads the setpoints topic and produces a reading per device per round.
type testDevices struct {
	t        *testing.T
	o        kafka.Options
	producer sarama.SyncProducer
	rng      *rand.Rand

	mu      sync.Mutex
	devs    []*vppv1.Reading           // last reading per device
	held    map[string]*vppv1.Setpoint // the setpoint each device follows
	latest  map[string]*vppv1.Setpoint // the last FIXED setpoint received per device
	gotAt   map[string]time.Time       // when it was received
	release map[string]int             // RELEASE setpoints received per dispatch
}

func newTestDevices(t *testing.T, o kafka.Options, sites, perSite int) *testDevices {
	t.Helper()
	p := newTestProducer(t, o)
	t.Cleanup(func() { _ = p.Close() })
	td := &testDevices{t: t, o: o, producer: p, rng: rand.New(rand.NewPCG(5, 6)),
		held: map[string]*vppv1.Setpoint{}, latest: map[string]*vppv1.Setpoint{}, gotAt: map[string]time.Time{},
		release: map[string]int{}}
	for s := range sites {
		for d := range perSite {
			td.devs = append(td.devs, &vppv1.Reading{
				DeviceId: fmt.Sprintf("dev-%03d-%02d", s, d), SiteId: fmt.Sprintf("site-%03d", s),
				SubstationId: fmt.Sprintf("sub-%d", s%3), RegionId: fmt.Sprintf("region-%d", s%2),
				SocPct: 20 + 60*td.rng.Float64(), SohPct: 100, CapacityKwh: 10, MaxChargeKw: 5, MaxDischargeKw: 5,
				Mode: vppv1.Mode_MODE_IDLE, VoltageV: 400, TemperatureC: 25,
			})
		}
	}
	return td
}

// round produces one reading per device, following its setpoint.
func (td *testDevices) round() {
	td.t.Helper()
	td.mu.Lock()
	msgs := make([]*sarama.ProducerMessage, 0, len(td.devs))
	now := time.Now().UnixMilli()
	for _, r := range td.devs {
		r.Seq++
		r.TsMs = now
		r.PowerKw, r.SetpointId, r.SetpointSeq, r.SetpointKw = 0, "", 0, 0
		r.SetpointState, r.SetpointReason = vppv1.SetpointState_SETPOINT_STATE_NONE, vppv1.SetpointReason_SETPOINT_REASON_NONE
		if sp := td.held[r.DeviceId]; sp != nil && now < sp.GetExpiryMs() {
			r.PowerKw = math.Max(-r.MaxChargeKw, math.Min(r.MaxDischargeKw, sp.GetTargetKw()))
			r.SetpointId, r.SetpointSeq, r.SetpointKw = sp.GetDispatchId(), sp.GetSeq(), r.PowerKw
			r.SetpointState = vppv1.SetpointState_SETPOINT_STATE_APPLIED
			if r.PowerKw != sp.GetTargetKw() {
				r.SetpointState, r.SetpointReason = vppv1.SetpointState_SETPOINT_STATE_CLAMPED, vppv1.SetpointReason_SETPOINT_REASON_POWER_LIMIT
			}
		}
		b, err := proto.Marshal(r)
		if err != nil {
			td.t.Fatal(err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: td.o.Topics().Telemetry(), Key: sarama.StringEncoder(r.SiteId), Value: sarama.ByteEncoder(b)})
	}
	td.mu.Unlock()
	if err := td.producer.SendMessages(msgs); err != nil {
		td.t.Errorf("produce telemetry: %v", err)
	}
}

// follow reads the setpoints topic until ctx ends.
func (td *testDevices) follow(ctx context.Context, client sarama.Client) {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		td.t.Error(err)
		return
	}
	defer consumer.Close()
	parts, err := client.Partitions(td.o.Topics().Setpoints())
	if err != nil {
		td.t.Error(err)
		return
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(td.o.Topics().Setpoints(), p, sarama.OffsetOldest)
		if err != nil {
			td.t.Error(err)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-pc.Messages():
					var b vppv1.SetpointBatch
					if err := proto.Unmarshal(m.Value, &b); err != nil {
						td.t.Errorf("setpoint batch: %v", err)
						continue
					}
					td.mu.Lock()
					for _, sp := range b.GetSetpoints() {
						switch sp.GetMode() {
						case vppv1.SetpointMode_SETPOINT_MODE_FIXED:
							if cur := td.held[sp.GetDeviceId()]; cur == nil || sp.GetSeq() >= cur.GetSeq() || cur.GetDispatchId() != sp.GetDispatchId() {
								td.held[sp.GetDeviceId()] = sp
							}
							td.latest[sp.GetDeviceId()] = sp
							td.gotAt[sp.GetDeviceId()] = time.Now()
						case vppv1.SetpointMode_SETPOINT_MODE_RELEASE:
							td.release[sp.GetDispatchId()]++
							if cur := td.held[sp.GetDeviceId()]; cur != nil && cur.GetDispatchId() == sp.GetDispatchId() {
								delete(td.held, sp.GetDeviceId())
							}
						}
					}
					td.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}

// sumLatest sums the latest FIXED setpoint of every device for dispatch id,
// of those received since since.
func (td *testDevices) sumLatest(id string, since time.Time) (kw float64, n int) {
	td.mu.Lock()
	defer td.mu.Unlock()
	for dev, sp := range td.latest {
		if sp.GetDispatchId() == id && !td.gotAt[dev].Before(since) {
			kw += sp.GetTargetKw()
			n++
		}
	}
	return kw, n
}

func (td *testDevices) following(id string) int {
	td.mu.Lock()
	defer td.mu.Unlock()
	n := 0
	for _, sp := range td.held {
		if sp.GetDispatchId() == id {
			n++
		}
	}
	return n
}

// readDispatchTopic folds the dispatch topic: the last value of every key.
func readDispatchTopic(t *testing.T, client sarama.Client, o kafka.Options) map[string]*vppv1.DispatchRecord {
	t.Helper()
	topic := o.Topics().Dispatch()
	hwm, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*vppv1.DispatchRecord{}
	if hwm == 0 {
		return out
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for {
		select {
		case m := <-pc.Messages():
			var rec vppv1.DispatchRecord
			if err := proto.Unmarshal(m.Value, &rec); err != nil {
				t.Fatalf("dispatch record %s: %v", m.Key, err)
			}
			if m.Value == nil {
				delete(out, string(m.Key)) // a tombstone
			} else {
				out[string(m.Key)] = &rec
			}
			if m.Offset+1 >= hwm {
				return out
			}
		case <-time.After(testTimeout):
			t.Fatal("dispatch topic not read")
		}
	}
}

func putDispatch(t *testing.T, o kafka.Options, d *vppv1.Dispatch) {
	t.Helper()
	p := newTestProducer(t, o)
	defer p.Close()
	v, err := proto.Marshal(&vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Dispatch{Dispatch: d}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: o.Topics().Dispatch(), Key: sarama.StringEncoder(dispatch.DispatchKey(d.GetId())), Value: sarama.ByteEncoder(v)}); err != nil {
		t.Fatal(err)
	}
}

// runDevices drives the test fleet: a round of readings every 200 ms.
func runDevices(t *testing.T, td *testDevices, client sarama.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); td.follow(ctx, client) }()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				td.round()
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// checkDispatch creates a dispatch on region-0 and checks, with the given
// aggregators running: the allocation sums to the target, the devices'
// setpoints sum to it, the status tracks the devices, and a cancel
// releases every device. move, if not nil, moves partitions between
// aggregators mid-dispatch.
func checkDispatch(t *testing.T, o kafka.Options, td *testDevices, client sarama.Client, move func()) {
	t.Helper()
	now := time.Now()
	const target = 80.0 // kW over 30 devices of region-0 (150 kW of limits)
	d := &vppv1.Dispatch{Id: "d-test", Node: "region/region-0", TargetKw: target,
		StartMs: now.UnixMilli(), EndMs: now.Add(10 * time.Minute).UnixMilli(), CreatedMs: now.UnixMilli(),
		CreatedBy: "test", Source: "test"}
	putDispatch(t, o, d)

	region0 := 0
	for _, r := range td.devs {
		if r.GetRegionId() == "region-0" {
			region0++
		}
	}
	waitFor(t, "every region-0 device has a setpoint summing to the target", func() (bool, string) {
		kw, n := td.sumLatest(d.Id, time.Time{})
		return n == region0 && math.Abs(kw-target) <= 1e-3, fmt.Sprintf("%d devices, %.6f kW", n, kw)
	})
	waitFor(t, "the status tracks target against actual", func() (bool, string) {
		recs := readDispatchTopic(t, client, o)
		a := recs[dispatch.AllocationKey(d.Id)].GetAllocation()
		st := recs[dispatch.StatusKey(d.Id)].GetStatus()
		if a == nil || st == nil {
			return false, "no allocation or status yet"
		}
		sum := 0.0
		for _, kw := range a.GetShares() {
			sum += kw
		}
		if math.Abs(sum-target) > 1e-3 || math.Abs(a.GetFeasibleKw()-target) > 1e-3 {
			return false, fmt.Sprintf("shares sum %.6f, feasible %.6f", sum, a.GetFeasibleKw())
		}
		ok := st.GetState() == vppv1.DispatchState_DISPATCH_STATE_ACTIVE && int(st.GetFollowing()) == region0 &&
			int(st.GetDevices()) == region0 && math.Abs(st.GetActualKw()-target) <= 0.05*target && st.GetReachedMs() > 0
		return ok, fmt.Sprintf("%+v", st)
	})

	if move != nil {
		move()
		moved := time.Now()
		waitFor(t, "after the partitions moved, every device's setpoint was sent again and they sum to the target", func() (bool, string) {
			kw, n := td.sumLatest(d.Id, moved)
			return n == region0 && math.Abs(kw-target) <= 1e-3 && td.following(d.Id) == region0,
				fmt.Sprintf("%d devices, %.6f kW, %d following", n, kw, td.following(d.Id))
		})
	}

	// No device outside the node follows; no device charges.
	td.mu.Lock()
	for dev, sp := range td.latest {
		if sp.GetDispatchId() == d.Id && sp.GetTargetKw() < 0 {
			t.Errorf("device %s charges (%v kW) for a discharge", dev, sp.GetTargetKw())
		}
	}
	td.mu.Unlock()

	d.CancelledMs, d.CancelledBy = time.Now().UnixMilli(), "test"
	putDispatch(t, o, d)
	waitFor(t, "a cancel releases every device", func() (bool, string) {
		n := td.following(d.Id)
		td.mu.Lock()
		rel := td.release[d.Id]
		td.mu.Unlock()
		return n == 0 && rel >= region0, fmt.Sprintf("%d still following, %d releases", n, rel)
	})
	waitFor(t, "the final status says cancelled; reports and allocation are tombstoned, the request kept", func() (bool, string) {
		recs := readDispatchTopic(t, client, o)
		st := recs[dispatch.StatusKey(d.Id)].GetStatus()
		var left []string
		for k := range recs {
			if strings.HasPrefix(k, "r/"+d.Id+"/") || k == dispatch.AllocationKey(d.Id) {
				left = append(left, k)
			}
		}
		return st.GetState() == vppv1.DispatchState_DISPATCH_STATE_CANCELLED && len(left) == 0 && recs[dispatch.DispatchKey(d.Id)] != nil,
			fmt.Sprintf("%v, left %v", st.GetState(), left)
	})
}

// startDispatchFleet starts the broker, the test fleet (12 sites of 5
// devices, one round of readings) and one aggregator, ready, with the
// devices following their setpoints.
func startDispatchFleet(t *testing.T, prefix string) (kafka.Options, *testDevices, sarama.Client) {
	t.Helper()
	o := startKafka(t, prefix)[0]
	td := newTestDevices(t, o, 12, 5)
	td.round()
	r := startAggregator(t, o, "g", "a")
	r.waitReady(t)
	client := newClient(t, o)
	runDevices(t, td, client)
	return o, td, client
}

func TestDispatchOneAggregator(t *testing.T) {
	t.Parallel()
	o, td, client := startDispatchFleet(t, "disp1.")
	checkDispatch(t, o, td, client, func() {
		// Steady state: a pass a second, each writing a report per
		// partition and a status, not a pass woken by the last one's
		// records.
		before, err := client.GetOffset(o.Topics().Dispatch(), 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		after, err := client.GetOffset(o.Topics().Dispatch(), 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if n, most := after-before, int64(6*(testPartitions+1)); n > most {
			t.Errorf("%d dispatch records in 3 s of a steady dispatch, want at most %d", n, most)
		}
	})
}

func TestDispatchThreeAggregators(t *testing.T) {
	t.Parallel()
	o := startKafka(t, "disp3.")[0]
	td := newTestDevices(t, o, 12, 5)
	td.round()
	rs := []*runner{startAggregator(t, o, "g", "a"), startAggregator(t, o, "g", "b"), startAggregator(t, o, "g", "c")}
	waitFor(t, "the partitions are spread over the three", func() (bool, string) {
		n, owners := 0, 0
		for _, r := range rs {
			st := r.a.Stats()
			n += len(st.Partitions)
			if len(st.Partitions) > 0 {
				owners++
			}
			if !r.a.Ready() {
				return false, "not ready"
			}
		}
		return n == testPartitions && owners >= 2, fmt.Sprintf("%d partitions over %d owners", n, owners)
	})
	client := newClient(t, o)
	runDevices(t, td, client)
	checkDispatch(t, o, td, client, func() {
		// Stop the owner of the most partitions: its partitions move to
		// the other two mid-dispatch.
		most := 0
		for i, r := range rs {
			if len(r.a.Stats().Partitions) > len(rs[most].a.Stats().Partitions) {
				most = i
			}
		}
		rs[most].stop(t)
		rest := append(append([]*runner{}, rs[:most]...), rs[most+1:]...)
		waitFor(t, "the other two own every partition", func() (bool, string) {
			n := 0
			for _, r := range rest {
				n += len(r.a.Stats().Partitions)
				if !r.a.Ready() {
					return false, "not ready"
				}
			}
			return n == testPartitions, fmt.Sprintf("%d partitions", n)
		})
	})
}

// TestDispatchOverlapAndShortfall runs three dispatches on one aggregator:
// an infeasible discharge of region-0 (clamped to what its devices can do,
// the rest reported as a shortfall), a charge of one of its sites at a
// lower priority number (which takes that site's devices: the region's
// dispatch fills with the others), and a newer dispatch on the same region
// that supersedes the first.
func TestDispatchOverlapAndShortfall(t *testing.T) {
	t.Parallel()
	o, td, client := startDispatchFleet(t, "dispo.")

	now := time.Now()
	region := &vppv1.Dispatch{Id: "d-region", Node: "region/region-0", TargetKw: 1000, Priority: 5,
		StartMs: now.UnixMilli(), EndMs: now.Add(10 * time.Minute).UnixMilli(), CreatedMs: now.UnixMilli()}
	putDispatch(t, o, region)
	status := func(id string) *vppv1.DispatchStatus {
		return readDispatchTopic(t, client, o)[dispatch.StatusKey(id)].GetStatus()
	}
	// Every device at its limit: min(5 kW, what its energy above the 10 %
	// reserve sustains for the 15 min horizon); their sum the feasible
	// target, the rest of the target the shortfall.
	atLimits := func() string {
		td.mu.Lock()
		defer td.mu.Unlock()
		for _, dev := range td.devs {
			sp := td.latest[dev.GetDeviceId()]
			if dev.GetRegionId() != "region-0" || sp == nil {
				continue
			}
			want := math.Min(5, (dev.GetSocPct()-10)/100*10/0.25)
			if math.Abs(sp.GetTargetKw()-want) > 1e-6 {
				return fmt.Sprintf("device %s (SoC %.1f) asked for %.4f kW, want its limit %.4f", dev.GetDeviceId(), dev.GetSocPct(), sp.GetTargetKw(), want)
			}
		}
		return ""
	}
	waitFor(t, "the infeasible target is clamped and the rest reported as shortfall", func() (bool, string) {
		st := status(region.Id)
		kw, n := td.sumLatest(region.Id, time.Time{})
		feasible := st.GetFeasibleKw()
		if msg := atLimits(); msg != "" {
			return false, msg
		}
		ok := n == 30 && feasible > 0 && feasible < 150+1e-9 && math.Abs(kw-feasible) <= 1e-3 &&
			math.Abs(st.GetShortfallKw()-(1000-feasible)) <= 1e-3
		return ok, fmt.Sprintf("%d devices, Σ %.3f kW, status %+v", n, kw, st)
	})

	site := &vppv1.Dispatch{Id: "d-site", Node: "site/site-000", TargetKw: -10, Priority: 1,
		StartMs: now.UnixMilli(), EndMs: now.Add(10 * time.Minute).UnixMilli(), CreatedMs: time.Now().UnixMilli()}
	putDispatch(t, o, site)
	waitFor(t, "the site's devices charge for the site dispatch; the region's dispatch keeps the others", func() (bool, string) {
		skw, sn := td.sumLatestHeld(site.Id)
		rkw, rn := td.sumLatestHeld(region.Id)
		return sn == 5 && math.Abs(skw+10) <= 1e-3 && rn == 25 && rkw > 0,
			fmt.Sprintf("site: %d devices %.3f kW; region: %d devices %.3f kW", sn, skw, rn, rkw)
	})

	newer := &vppv1.Dispatch{Id: "d-region-2", Node: "region/region-0", TargetKw: 20, Priority: 5,
		StartMs: now.UnixMilli(), EndMs: now.Add(10 * time.Minute).UnixMilli(), CreatedMs: time.Now().UnixMilli() + 1}
	putDispatch(t, o, newer)
	waitFor(t, "the newer dispatch on the region supersedes the first", func() (bool, string) {
		st := status(region.Id)
		kw, n := td.sumLatestHeld(newer.Id)
		_, old := td.sumLatestHeld(region.Id)
		return st.GetState() == vppv1.DispatchState_DISPATCH_STATE_SUPERSEDED && st.GetReason() == "superseded by "+newer.Id &&
				n == 25 && math.Abs(kw-20) <= 1e-3 && old == 0,
			fmt.Sprintf("first: %v %q; newer: %d devices %.3f kW; %d still on the first", st.GetState(), st.GetReason(), n, kw, old)
	})
}

// sumLatestHeld sums the setpoints of dispatch id that devices follow now.
func (td *testDevices) sumLatestHeld(id string) (kw float64, n int) {
	td.mu.Lock()
	defer td.mu.Unlock()
	for _, sp := range td.held {
		if sp.GetDispatchId() == id {
			kw += sp.GetTargetKw()
			n++
		}
	}
	return kw, n
}
