package history

import (
	"math"
	"testing"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

const t0 = 1_700_000_000 // a second, Unix

func sub(id, region string, netKW float64, devices int32) *vppv1.SubstationSample {
	return &vppv1.SubstationSample{
		SubstationId: id, RegionId: region,
		NetMicroKw:       fleet.ToMicro(netKW),
		DischargeMicroKw: fleet.ToMicro(max(netKW, 0)),
		ChargeMicroKw:    fleet.ToMicro(max(-netKW, 0)),
		EnergyMicroKwh:   fleet.ToMicro(float64(devices) * 5),
		CapacityMicroKwh: fleet.ToMicro(float64(devices) * 10),
		Devices:          devices, Online: devices,
	}
}

func partRec(p int32, tsMs int64, consumed uint64, subs ...*vppv1.SubstationSample) *vppv1.HistoryRecord {
	return &vppv1.HistoryRecord{Body: &vppv1.HistoryRecord_Partition{Partition: &vppv1.PartitionSample{
		Partition: p, TsMs: tsMs, Consumed: consumed, Applied: consumed, Lag: int64(p), Substations: subs,
	}}}
}

func ingestRec(instance string, tsMs, startedMs int64, received uint64) *vppv1.HistoryRecord {
	return &vppv1.HistoryRecord{Body: &vppv1.HistoryRecord_Ingest{Ingest: &vppv1.IngestStats{
		Instance: instance, UpdatedMs: tsMs, StartedMs: startedMs, Received: received, Published: received,
		Rejected: map[string]uint64{"bad": received / 10},
	}}}
}

func series(f *fold, kind fleet.Kind, id string, m Metric, n int) []float64 {
	out := make([]float64, n)
	f.series(kind, id, m, out)
	return out
}

// equal compares with NaN == NaN and a float32 tolerance.
func equal(got, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if math.IsNaN(g) || math.IsNaN(w) {
			if math.IsNaN(g) != math.IsNaN(w) {
				return false
			}
			continue
		}
		if math.Abs(g-w) > 1e-6*math.Max(1, math.Abs(w)) {
			return false
		}
	}
	return true
}

var nan = math.NaN()

// TestFoldSumsStaggered feeds three partitions sampled at staggered times
// within each second, arriving out of order, and checks per-second sums
// of substations, regions and the fleet against hand-computed values,
// carry-forward and a missing partition.
func TestFoldSumsStaggered(t *testing.T) {
	f := newFold(60, t0)
	ms := func(sec int64, frac int64) int64 { return (t0+sec)*1000 + frac }
	// Second k (0..3): p0 at .100 has sub-a(r1)=1+k kW and sub-c(r2)=10 kW;
	// p1 at .400 has sub-a(r1)=100 kW, sub-b(r1)=-20 kW; p2 at .900 has
	// sub-c(r2)=1000·(k+1) kW, but p2 stops after second 1.
	var recs []*vppv1.HistoryRecord
	for k := range int64(4) {
		recs = append(recs,
			partRec(1, ms(k, 400), 0, sub("sub-a", "r1", 100, 2), sub("sub-b", "r1", -20, 1)),
			partRec(0, ms(k, 100), 0, sub("sub-a", "r1", float64(1+k), 1), sub("sub-c", "r2", 10, 1)),
		)
		if k <= 1 {
			recs = append(recs, partRec(2, ms(k, 900), 0, sub("sub-c", "r2", float64(1000*(k+1)), 3)))
		}
	}
	// p0 and p1 keep sampling up to second 9.
	for k := int64(4); k < 10; k++ {
		recs = append(recs,
			partRec(0, ms(k, 100), 0, sub("sub-a", "r1", float64(1+k), 1), sub("sub-c", "r2", 10, 1)),
			partRec(1, ms(k, 400), 0, sub("sub-a", "r1", 100, 2), sub("sub-b", "r1", -20, 1)))
	}
	for _, r := range recs {
		f.addRecord(r)
		f.advance(f.maxTs - graceMs)
	}
	f.advance((t0 + 10) * 1000) // finalize seconds 0..9
	if end, ok := f.end(); !ok || end != t0+9 {
		t.Fatalf("end %d %v, want %d", end, ok, t0+9)
	}

	// p2's last sample is at second 1 (.900): carried forward while
	// end(s) - 5s <= 1.9s, i.e. up to second 5; missing from second 6.
	subA := []float64{101, 102, 103, 104, 105, 106, 107, 108, 109, 110}
	if got := series(f, fleet.KindSubstation, "sub-a", PowerKW, 10); !equal(got, subA) {
		t.Errorf("sub-a %v, want %v", got, subA)
	}
	r1 := make([]float64, 10)
	for i := range r1 {
		r1[i] = subA[i] - 20
	}
	if got := series(f, fleet.KindRegion, "r1", PowerKW, 10); !equal(got, r1) {
		t.Errorf("r1 %v, want %v", got, r1)
	}
	r2 := []float64{1010, 2010, 2010, 2010, 2010, 2010, nan, nan, nan, nan}
	if got := series(f, fleet.KindRegion, "r2", PowerKW, 10); !equal(got, r2) {
		t.Errorf("r2 %v, want %v", got, r2)
	}
	if got := series(f, fleet.KindSubstation, "sub-c", PowerKW, 10); !equal(got, r2) {
		t.Errorf("sub-c %v, want %v", got, r2)
	}
	fl := make([]float64, 10)
	for i := range fl {
		fl[i] = r1[i] + r2[i]
	}
	if got := series(f, fleet.KindFleet, fleet.FleetID, PowerKW, 10); !equal(got, fl) {
		t.Errorf("fleet %v, want %v", got, fl)
	}
	// Charge is a magnitude; online devices and SoC sum too.
	wantCharge := []float64{20, 20, 20}
	if got := series(f, fleet.KindRegion, "r1", ChargeKW, 3); !equal(got, wantCharge) {
		t.Errorf("r1 charge %v, want %v", got, wantCharge)
	}
	if got := series(f, fleet.KindFleet, "", Online, 1); !equal(got, []float64{nan}) {
		t.Errorf("fleet online while p2 is missing %v, want NaN", got)
	}
	if got := series(f, fleet.KindSubstation, "sub-a", SoCPct, 1); !equal(got, []float64{50}) {
		t.Errorf("sub-a SoC %v, want 50", got)
	}
	if got := series(f, fleet.KindRegion, "r1", Online, 1); !equal(got, []float64{4}) {
		t.Errorf("r1 online %v, want 4", got)
	}
	// Unknown seconds (before the start), nodes and metrics are NaN.
	got := series(f, fleet.KindSubstation, "sub-a", PowerKW, 12)
	if !math.IsNaN(got[0]) || !math.IsNaN(got[1]) || got[2] != 101 {
		t.Errorf("series before the start %v, want NaN NaN 101 ...", got[:3])
	}
	for _, g := range [][]float64{
		series(f, fleet.KindSubstation, "nope", PowerKW, 3),
		series(f, fleet.KindRegion, "r1", TemperatureC, 3),
		series(f, fleet.KindRegion, "r1", ReceivedPerSec, 3),
		series(f, fleet.KindFleet, "not-the-fleet", PowerKW, 3),
	} {
		if !equal(g, []float64{nan, nan, nan}) {
			t.Errorf("unknown series %v, want NaN", g)
		}
	}
}

// TestFoldEmptyIsNaN: nothing finalized, nothing known.
func TestFoldEmptyIsNaN(t *testing.T) {
	f := newFold(60, t0)
	if got := series(f, fleet.KindFleet, "", PowerKW, 3); !equal(got, []float64{nan, nan, nan}) {
		t.Fatalf("empty fold %v", got)
	}
	f.advance((t0 + 5) * 1000) // seconds pass without samples
	if got := series(f, fleet.KindFleet, "", PowerKW, 3); !equal(got, []float64{nan, nan, nan}) {
		t.Fatalf("fold without samples %v", got)
	}
	if got := series(f, fleet.KindFleet, "", ConsumedPerSec, 3); !equal(got, []float64{nan, nan, nan}) {
		t.Fatalf("rates without samples %v", got)
	}
}

// TestFoldRatesNeverNegative: partition counters and ingest counters that
// go down (owner change, instance restart) give rates >= 0; rates sum over
// partitions and instances.
func TestFoldRatesNeverNegative(t *testing.T) {
	f := newFold(60, t0)
	ms := func(k int64) int64 { return (t0+k)*1000 + 500 }
	consumed := []uint64{100, 300, 600, 50, 150} // reset at second 3
	received := []uint64{0, 100, 300, 40, 140}   // i1 restarts at second 2.9
	for k := range int64(5) {
		f.addRecord(partRec(0, ms(k), consumed[k]))
		f.addRecord(partRec(1, ms(k), 10*uint64(k)))
		started := int64(t0 * 1000)
		if k >= 3 {
			started = (t0+2)*1000 + 900
		}
		f.addRecord(ingestRec("i1", ms(k), started, received[k]))
		f.addRecord(ingestRec("i2", ms(k), t0*1000, 7*uint64(k)))
	}
	f.advance((t0 + 5) * 1000)
	wantConsumed := []float64{nan, 200 + 10, 300 + 10, 0 + 10, 100 + 10}
	if got := series(f, fleet.KindFleet, "", ConsumedPerSec, 5); !equal(got, wantConsumed) {
		t.Errorf("consumed/s %v, want %v", got, wantConsumed)
	}
	// Second 3: i1 restarted 0.6 s before its sample, with 40 received.
	wantReceived := []float64{nan, 100 + 7, 200 + 7, 40/0.6 + 7, 100 + 7}
	if got := series(f, fleet.KindFleet, "", ReceivedPerSec, 5); !equal(got, wantReceived) {
		t.Errorf("received/s %v, want %v", got, wantReceived)
	}
	for _, m := range []Metric{ReceivedPerSec, RejectedPerSec, PublishedPerSec, AckedPerSec, ConsumedPerSec, AppliedPerSec, DuplicatesPerSec, GapsPerSec, Lag} {
		for i, v := range series(f, fleet.KindFleet, "", m, 5) {
			if v < 0 {
				t.Errorf("metric %d second %d: %v < 0", m, i, v)
			}
		}
	}
	if got := series(f, fleet.KindFleet, "", Lag, 1); !equal(got, []float64{1}) {
		t.Errorf("lag %v, want 0+1", got)
	}
	// An instance that stops stops contributing; others keep the rate
	// known.
	f.addRecord(ingestRec("i2", ms(5), t0*1000, 35))
	f.addRecord(ingestRec("i2", ms(6), t0*1000, 42))
	f.addRecord(partRec(0, ms(5), 160))
	f.addRecord(partRec(1, ms(5), 50))
	f.addRecord(partRec(0, ms(6), 170))
	f.addRecord(partRec(1, ms(6), 60))
	f.advance((t0 + 7) * 1000)
	// i1's last sample is at 4.5: still carried at 5 and 6 (rate 100).
	if got := series(f, fleet.KindFleet, "", ReceivedPerSec, 2); !equal(got, []float64{107, 107}) {
		t.Errorf("received/s %v", got)
	}
	for k := int64(7); k < 12; k++ {
		f.addRecord(ingestRec("i2", ms(k), t0*1000, 7*uint64(k)))
	}
	f.advance((t0 + 12) * 1000)
	if got := series(f, fleet.KindFleet, "", ReceivedPerSec, 2); !equal(got, []float64{7, 7}) {
		t.Errorf("received/s after i1 stopped %v, want 7 7", got)
	}
}

// TestFoldLateSampleAndWindow: a sample older than the partition's latest
// is ignored; the ring keeps only the window.
func TestFoldLateSampleAndWindow(t *testing.T) {
	f := newFold(10, t0)
	for k := range int64(30) {
		f.addRecord(partRec(0, (t0+k)*1000+10, 0, sub("s", "r", float64(k), 1)))
		if k == 20 {
			f.addRecord(partRec(0, (t0+k)*1000+5, 0, sub("s", "r", -999, 1))) // older: ignored
		}
		f.advance((t0 + k + 1) * 1000)
	}
	got := series(f, fleet.KindSubstation, "s", PowerKW, 12)
	want := []float64{nan, nan, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}
	if !equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
}

// TestFoldNodesSwept: a substation that left every partition disappears
// after a window.
func TestFoldNodesSwept(t *testing.T) {
	f := newFold(10, t0)
	for k := range int64(200) {
		subs := []*vppv1.SubstationSample{sub("keep", "r", 1, 1)}
		if k < 5 {
			subs = append(subs, sub("gone", "r", 1, 1))
		}
		f.addRecord(partRec(0, (t0+k)*1000+10, 0, subs...))
		f.advance((t0 + k + 1) * 1000)
	}
	if f.subs["gone"] != nil || f.subs["keep"] == nil || len(f.nodes) != 3 {
		t.Fatalf("nodes after sweep: %d, gone=%v", len(f.nodes), f.subs["gone"] != nil)
	}
}
