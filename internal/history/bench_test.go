package history

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// fullReader is a Reader (not running) whose fold holds a full window of
// 12 partitions over 10 regions × 100 substations.
func fullReader(tb testing.TB, window time.Duration) *Reader {
	tb.Helper()
	start := time.Unix(t0, 0)
	r := NewReader(kafka.Options{Prefix: "bench."}, window, nil, WithClock(func() time.Time { return start.Add(window) }))
	r.f.restart(t0)
	secs := int64(window / time.Second)
	for k := range secs {
		for p := range int32(12) {
			var subs []*vppv1.SubstationSample
			for s := int(p); s < 1000; s += 12 {
				subs = append(subs, sub(fmt.Sprintf("sub-%03d", s), fmt.Sprintf("region-%d", s%10), float64(k), 3))
			}
			r.f.addRecord(partRec(p, (t0+k)*1000+int64(p)*50, uint64(k*100)))
			r.f.addRecord(partRec(p, (t0+k)*1000+int64(p)*50+1, uint64(k*100), subs...))
		}
		r.f.advance(r.f.maxTs - graceMs)
	}
	r.f.advance((t0 + secs) * 1000)
	return r
}

func BenchmarkSeriesFleet(b *testing.B) {
	r := fullReader(b, 900*time.Second)
	store := NewStore(r, NewRecorder(0))
	if v := store.Series(fleet.KindFleet, fleet.FleetID, PowerKW, 300); math.IsNaN(v[299]) {
		b.Fatal("no data")
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = store.Series(fleet.KindFleet, fleet.FleetID, PowerKW, 300)
	}
}

func BenchmarkSeriesRegion(b *testing.B) {
	r := fullReader(b, 900*time.Second)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Series(fleet.KindRegion, "region-3", HeadroomDischargeKW, 300)
	}
}

// BenchmarkFoldSecond is the cost of one second of samples (12 partitions
// × 1000 substations) and its finalization.
func BenchmarkFoldSecond(b *testing.B) {
	r := fullReader(b, 60*time.Second)
	recs := make([][]*vppv1.HistoryRecord, 0, 12)
	for p := range int32(12) {
		var subs []*vppv1.SubstationSample
		for s := int(p); s < 1000; s += 12 {
			subs = append(subs, sub(fmt.Sprintf("sub-%03d", s), fmt.Sprintf("region-%d", s%10), 1, 3))
		}
		recs = append(recs, []*vppv1.HistoryRecord{partRec(p, 0, 0, subs...)})
	}
	k := int64(60)
	b.ReportAllocs()
	for b.Loop() {
		for _, rr := range recs {
			rr[0].GetPartition().TsMs = (t0+k)*1000 + 10
			r.f.addRecord(rr[0])
		}
		r.f.advance((t0+k+1)*1000 + 10)
		k++
	}
}

// TestReaderMemory measures the fold's heap for 10 regions × 100
// substations × 900 s (the figure in Reader's doc).
func TestReaderMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a full window")
	}
	before := heapAlloc()
	r := fullReader(t, 900*time.Second)
	after := heapAlloc()
	t.Logf("reader: %.1f MB for %d nodes × 900 s", float64(after-before)/1e6, len(r.f.nodes))
	if len(r.f.nodes) != 1011 {
		t.Fatalf("%d nodes, want 1011", len(r.f.nodes))
	}
	if mb := float64(after-before) / 1e6; mb > 40 {
		t.Errorf("%.1f MB, want <= 40", mb)
	}
	if v := r.Series(fleet.KindFleet, "", PowerKW, 1); v[0] != float64(899*1000) {
		t.Errorf("fleet power %v, want %v", v[0], 899*1000)
	}
}
