package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TestReflectedCountsEveryReading checks the freshness bookkeeping: a
// site record that moves a device from seq a to b adds one sample per
// reading a+1 … b, each timed from its own due time.
func TestReflectedCountsEveryReading(t *testing.T) {
	w := newStateWatcher(2*time.Second, 1) // a device reports every 2 s
	const now = 100_000.0                  // ms
	w.reflected([]byte("d1"), 1, 99_900, now)
	w.reflected([]byte("d1"), 1, 99_900, now+50) // same seq: nothing new
	w.reflected([]byte("d1"), 4, 99_950, now+100)
	w.reflected([]byte("d1"), 3, 99_000, now+200)           // older: ignored
	want := []int32{100_000, 150_000, 2_150_000, 4_150_000} // µs: seq 1; 4; 3 (2 s older); 2 (4 s older)
	got := w.percentiles()
	if got.N != len(want) {
		t.Fatalf("%d samples, want %d", got.N, len(want))
	}
	if got.Max != time.Duration(want[3])*time.Microsecond || got.P50 != time.Duration(want[1])*time.Microsecond {
		t.Fatalf("percentiles %+v, want max %v p50 %v", got, want[3], want[1])
	}
}

// TestRun runs the whole harness at a small scale against Kafka (real in
// CI) with child vpp processes: the plumbing, not the performance. Every
// reading the simulator generated must be applied and counted once in the
// freshness samples.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vpp and runs child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := testutil.BuildVPP(ctx, t)
	o := kafkatest.Options(t, 4)
	res, err := Run(ctx, Config{
		Kafka: o, Exe: bin, FloorRecords: 5_000, Step: 3 * time.Second, Devices: 200, Rates: []float64{1_000},
		ReaderDevices: 2_000, TwinDevices: 100_000, FlushInterval: 100 * time.Millisecond, FreshnessSample: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.FloorRate <= 0 || res.FloorBytes < 100 {
		t.Errorf("floor %v records/s of %d bytes", res.FloorRate, res.FloorBytes)
	}
	if len(res.Steps) != 1 {
		t.Fatalf("%d steps, want 1", len(res.Steps))
	}
	st := res.Steps[0]
	if st.Sent < 2_000 {
		t.Errorf("simulator sent %d readings in 3 s at 1000/s", st.Sent)
	}
	if st.Freshness.N != int(st.Sent) {
		t.Errorf("%d freshness samples for %d readings sent", st.Freshness.N, st.Sent)
	}
	if st.DrainTime >= time.Minute {
		t.Errorf("backlog did not drain: %+v", st)
	}
	if st.IngestCPU <= 0 || st.AggregateCPU <= 0 {
		t.Errorf("process CPU per reading unknown: ingest %v aggregate %v", st.IngestCPU, st.AggregateCPU)
	}
	if res.ReaderDevices != 2_000 || res.ReaderFold <= 0 || res.Frame.Refresh <= 0 {
		t.Errorf("reader cost %d devices in %v, frame %+v", res.ReaderDevices, res.ReaderFold, res.Frame)
	}
	if res.TwinBytes <= 0 || res.TwinDevices != 100_000 {
		t.Errorf("twin memory %v at %d devices", res.TwinBytes, res.TwinDevices)
	}
	// The freshness steps at 50 % and 90 % run only after a sustained step.
	if st.Sustained && (res.Half == nil || res.Ninety == nil) {
		t.Errorf("no freshness steps at 50 %% and 90 %% of the maximum")
	}
}

// TestSampledSites checks that a watcher sampling 1 site in 4 counts every
// reading of the sampled sites and none of the others, and that about a
// quarter of the sites are sampled.
func TestSampledSites(t *testing.T) {
	const sites, perSite = 400, 3
	w := newStateWatcher(time.Second, 4)
	want, inSample := 0, 0
	for i := range sites {
		id := fmt.Sprintf("site-%04d", i)
		st := &vppv1.SiteState{SiteId: id}
		for d := range perSite {
			st.Devices = append(st.Devices, &vppv1.DeviceState{Last: &vppv1.Reading{
				DeviceId: fmt.Sprintf("%s-d%d", id, d), SiteId: id, Seq: 2, TsMs: 1_000}})
		}
		b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: st}})
		if err != nil {
			t.Fatal(err)
		}
		w.observe(b, time.UnixMilli(2_000))
		if sampled([]byte(id), 4) {
			inSample++
			want += perSite * 2 // seq 1 and 2 of each device
		}
	}
	if got := w.percentiles().N; got != want {
		t.Fatalf("%d samples, want %d (%d sampled sites)", got, want, inSample)
	}
	if inSample < sites/4-40 || inSample > sites/4+40 {
		t.Fatalf("%d of %d sites sampled, want about a quarter", inSample, sites)
	}
}

// TestSearch: the search grows the rate by half until a step fails, then
// bisects until the highest sustained and the lowest failed rate are within
// 8 %, and never reports a failed rate as the maximum.
func TestSearch(t *testing.T) {
	for _, tc := range []struct {
		limit float64 // highest rate the fake pipeline sustains
		want  []float64
		max   float64
	}{
		{160_000, []float64{10_000, 25_000, 50_000, 100_000, 150_000, 225_000, 188_000, 169_000, 160_000}, 160_000},
		{175_000, []float64{10_000, 25_000, 50_000, 100_000, 150_000, 225_000, 188_000, 169_000, 179_000}, 169_000},
		{40_000, []float64{10_000, 25_000, 50_000, 38_000, 44_000, 41_000}, 38_000},
		{5_000, []float64{10_000}, 0},
	} {
		res := &Result{}
		var tried []float64
		err := search(Config{MaxRate: 2_000_000}, res, func(r float64) (Step, error) {
			tried = append(tried, r)
			return Step{Requested: r, Applied: r, Sustained: r <= tc.limit}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tried, tc.want) {
			t.Errorf("limit %.0f: tried %v, want %v", tc.limit, tried, tc.want)
		}
		got := 0.0
		if best := res.MaxSustained(); best != nil {
			got = best.Requested
		}
		if got != tc.max {
			t.Errorf("limit %.0f: maximum %.0f, want %.0f", tc.limit, got, tc.max)
		}
	}
}
