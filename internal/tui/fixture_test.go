package tui

import (
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/proto/vppv1"
)

// testNow is the fixed clock of the goldens.
var testNow = time.Date(2025, 6, 1, 12, 0, 3, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// fakeData is a fixed snapshot with deterministic series.
type fakeData struct {
	snap *fleet.Snapshot
	// calls counts Series calls.
	calls int
}

func (f *fakeData) Snapshot() *fleet.Snapshot { return f.snap }

// Series returns a deterministic wave per node and metric; the last
// seconds of a device called "dev-nodata" are NaN.
func (f *fakeData) Series(kind fleet.Kind, id string, m history.Metric, n int) []float64 {
	f.calls++
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s/%d", kind, id, m)
	seed := float64(h.Sum32()%1000) / 1000
	out := make([]float64, n)
	for i := range out {
		x := float64(i)/7 + seed*6
		switch m {
		case history.PowerKW:
			amp := 5.0
			if kind != fleet.KindDevice {
				amp = 40.0 / float64(kind+1)
			}
			out[i] = amp * math.Sin(x)
		case history.SoCPct:
			out[i] = 50 + 30*math.Sin(x/3)
		case history.TemperatureC:
			out[i] = 30 + 5*math.Sin(x)
		case history.Lag:
			out[i] = 0
		default:
			out[i] = 1000 + 200*math.Sin(x)
		}
		if i < n/4 {
			out[i] = math.NaN() // the history starts later than the window
		}
	}
	return out
}

// reading is a test reading.
func reading(dev, site, sub, reg string, soc, power, temp float64, alarms vppv1.Alarm) *vppv1.Reading {
	mode := vppv1.Mode_MODE_IDLE
	switch {
	case power > 0:
		mode = vppv1.Mode_MODE_DISCHARGING
	case power < 0:
		mode = vppv1.Mode_MODE_CHARGING
	}
	return &vppv1.Reading{
		DeviceId: dev, SiteId: site, SubstationId: sub, RegionId: reg,
		Seq: 1200, TsMs: testNow.Add(-1500 * time.Millisecond).UnixMilli(),
		SocPct: soc, SohPct: 97, PowerKw: power, VoltageV: 400, CurrentA: power * 1000 / 400,
		TemperatureC: temp, CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5,
		Mode: mode, Alarms: uint32(alarms),
	}
}

// testSnapshot is a small fleet: three regions, four substations, six
// sites, 3 devices each; one device offline, one over-temperature, one
// low on charge.
func testSnapshot() *fleet.Snapshot {
	t := fleet.NewTree()
	type siteDef struct{ reg, sub, site string }
	sites := []siteDef{
		{"north", "sub-01", "site-0001"},
		{"north", "sub-01", "site-0002"},
		{"north", "sub-02", "site-0003"},
		{"south", "sub-07", "site-0042"},
		{"south", "sub-07", "site-0043"},
		{"west", "sub-11", "site-0101"},
	}
	for si, s := range sites {
		st := &vppv1.SiteState{SiteId: s.site, SubstationId: s.sub, RegionId: s.reg, UpdatedMs: testNow.Add(-800 * time.Millisecond).UnixMilli(), Partition: int32(si % 3)}
		for d := 1; d <= 3; d++ {
			id := fmt.Sprintf("dev-%s-%d", s.site[5:], d)
			soc := 40 + float64((si*3+d)*7%50)
			power := float64((si*3+d)%7) - 3
			temp := 25 + float64(d)
			var alarms vppv1.Alarm
			off := false
			switch id {
			case "dev-0042-2":
				temp, alarms = 61.5, vppv1.Alarm_ALARM_OVER_TEMPERATURE
			case "dev-0042-3":
				soc, power, alarms = 6.5, 0, vppv1.Alarm_ALARM_LOW_SOC
			case "dev-0003-1":
				off = true
			}
			ds := &vppv1.DeviceState{
				Last: reading(id, s.site, s.sub, s.reg, soc, power, temp, alarms), AppliedMs: testNow.Add(-time.Second).UnixMilli(),
				Offline: off, Applied: 1200, Duplicates: uint64(d - 1), Gaps: 0,
			}
			if off {
				ds.AppliedMs = testNow.Add(-3*time.Minute - 5*time.Second).UnixMilli()
			} else {
				ds.HeadroomDischargeKw = 5 - math.Max(0, power)
				ds.HeadroomChargeKw = 5 + math.Min(0, power)
			}
			st.Devices = append(st.Devices, ds)
		}
		t.ApplySite(st)
	}
	t.ApplyIngestStats(&vppv1.IngestStats{
		Instance: "ingest-a", Received: 1_234_567, Rejected: map[string]uint64{"bad_seq": 10, "clock_skew": 2},
		Published: 1_234_500, Acked: 1_234_400, Connections: 18, Frames: 400_000, Buffered: 55, BufferCapacity: 10_000,
		UpdatedMs: testNow.Add(-600 * time.Millisecond).UnixMilli(),
	})
	t.ApplyPartition(&vppv1.PartitionState{Partition: 0, NextOffset: 1_234_400, HighWaterMark: 1_234_500, Consumed: 1_234_400, Applied: 1_234_000, Duplicates: 400, UpdatedMs: testNow.Add(-700 * time.Millisecond).UnixMilli()})
	return t.Snapshot()
}

// bigSnapshot is regions × substations × sites × devices.
func bigSnapshot(regions, subs, sites, devs int) *fleet.Snapshot {
	t := fleet.NewTree()
	for r := range regions {
		for s := range subs {
			for si := range sites {
				reg, sub, site := fmt.Sprintf("r%02d", r), fmt.Sprintf("r%02d-s%02d", r, s), fmt.Sprintf("r%02d-s%02d-%03d", r, s, si)
				st := &vppv1.SiteState{SiteId: site, SubstationId: sub, RegionId: reg, UpdatedMs: testNow.UnixMilli()}
				for d := range devs {
					id := fmt.Sprintf("%s-d%02d", site, d)
					var al vppv1.Alarm
					if (r+s+si+d)%97 == 0 {
						al = vppv1.Alarm_ALARM_LOW_SOC
					}
					st.Devices = append(st.Devices, &vppv1.DeviceState{
						Last:      reading(id, site, sub, reg, float64(10+(si*7+d)%90), float64((si+d)%9)-4, 30, al),
						AppliedMs: testNow.Add(-time.Second).UnixMilli(), HeadroomDischargeKw: 2, HeadroomChargeKw: 3,
					})
				}
				t.ApplySite(st)
			}
		}
	}
	return t.Snapshot()
}
