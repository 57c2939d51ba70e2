package fleet

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vppctl/vpp/proto/vppv1"
)

func reading(dev string, seq uint64, soc, power, capacity, temp float64, alarms uint32) *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: dev, Seq: seq, TsMs: 1_700_000_000_000 + int64(seq), SocPct: soc, SohPct: 97, PowerKw: power,
		VoltageV: 400, CurrentA: power * 2.5, TemperatureC: temp, CapacityKwh: capacity,
		MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_IDLE, Alarms: alarms,
	}
}

func TestDeviceContribution(t *testing.T) {
	d := &vppv1.DeviceState{
		Last:                reading("d1", 7, 50, -2.5, 13.5, 31.25, uint32(vppv1.Alarm_ALARM_LOW_SOC|vppv1.Alarm_ALARM_BMS_FAULT)),
		AppliedMs:           1234,
		HeadroomDischargeKw: 7.5,
		HeadroomChargeKw:    2.5,
	}
	r := DeviceContribution(d)
	want := Rollup{
		Devices: 1, Online: 1, Alarming: 1,
		NetMicroKW: -2_500_000, ChargeMicroKW: 2_500_000,
		CapacityMicroKWh: 13_500_000, EnergyMicroKWh: 6_750_000,
		HeadroomDischargeMicroKW: 7_500_000, HeadroomChargeMicroKW: 2_500_000,
		Temps: 1, TempMinMicroC: 31_250_000, TempMaxMicroC: 31_250_000, UpdatedMS: 1234,
	}
	want.Alarms[1], want.Alarms[2] = 1, 1
	if r != want {
		t.Fatalf("contribution\n got %+v\nwant %+v", r, want)
	}
	if r.SoCPct() != 50 || r.PowerKW() != -2.5 || r.EnergyKWh() != 6.75 {
		t.Fatalf("accessors: soc %v power %v energy %v", r.SoCPct(), r.PowerKW(), r.EnergyKWh())
	}
	if got := r.AlarmCounts(); len(got) != 2 || got["low_soc"] != 1 || got["bms_fault"] != 1 {
		t.Fatalf("alarm counts %v", got)
	}

	d.Offline = true
	r = DeviceContribution(d)
	if r.Offline != 1 || r.Online != 0 || r.HeadroomDischargeMicroKW != 0 || r.HeadroomChargeMicroKW != 0 {
		t.Fatalf("offline device: %+v", r)
	}
	if r.NetMicroKW != -2_500_000 || r.EnergyMicroKWh != 6_750_000 || r.CapacityMicroKWh != 13_500_000 {
		t.Fatalf("offline device must keep power, energy, capacity: %+v", r)
	}

	d.Last.PowerKw = 3.0000004
	if r := DeviceContribution(d); r.DischargeMicroKW != 3_000_000 || r.ChargeMicroKW != 0 {
		t.Fatalf("rounding/discharge: %+v", r)
	}
	if r := DeviceContribution(&vppv1.DeviceState{}); r.Devices != 1 || r.Online != 1 || r.Temps != 0 {
		t.Fatalf("device without reading: %+v", r)
	}
}

func TestRollupAddSubInverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var acc Rollup
	var parts []Rollup
	for i := range 200 {
		d := randomDevice(rng, fmt.Sprintf("d%d", i), uint64(i+1))
		c := DeviceContribution(d)
		parts = append(parts, c)
		acc.Add(&c)
	}
	for i := range parts {
		acc.Sub(&parts[i])
	}
	acc.UpdatedMS = 0 // an extreme: not subtractable by design
	if acc != (Rollup{}) {
		t.Fatalf("add then sub of the same parts is not zero: %+v", acc)
	}
}

func TestNames(t *testing.T) {
	if got := AlarmNames(uint32(vppv1.Alarm_ALARM_OVER_TEMPERATURE) | 1<<20); !slices.Equal(got, []string{"over_temperature", "bit_20"}) {
		t.Fatalf("alarm names %v", got)
	}
	if got := ModeName(vppv1.Mode_MODE_CHARGING); got != "charging" {
		t.Fatalf("mode %q", got)
	}
}

func randomDevice(rng *rand.Rand, id string, seq uint64) *vppv1.DeviceState {
	var alarms uint32
	if rng.IntN(5) == 0 {
		alarms = 1 << rng.IntN(6)
		if rng.IntN(3) == 0 {
			alarms |= 1 << rng.IntN(32)
		}
	}
	temp := float64(rng.IntN(8)) * 2.5 // ties are common
	if rng.IntN(2) == 0 {
		temp = 10 + rng.Float64()*40
	}
	d := &vppv1.DeviceState{
		Last:                reading(id, seq, rng.Float64()*100, rng.Float64()*20-10, 5+rng.Float64()*15, temp, alarms),
		AppliedMs:           1_700_000_000_000 + rng.Int64N(100_000),
		Offline:             rng.IntN(6) == 0,
		Applied:             seq,
		Duplicates:          uint64(rng.IntN(3)),
		Gaps:                uint64(rng.IntN(2)),
		HeadroomDischargeKw: rng.Float64() * 5,
		HeadroomChargeKw:    rng.Float64() * 5,
	}
	if rng.IntN(50) == 0 {
		d.Last = nil
	}
	return d
}

// randomSite builds a state for site i, possibly placed elsewhere than
// before.
func randomSite(rng *rand.Rand, site string, seq uint64) *vppv1.SiteState {
	reg := rng.IntN(3)
	sub := rng.IntN(3)
	s := &vppv1.SiteState{
		SiteId:       site,
		RegionId:     fmt.Sprintf("region-%d", reg),
		SubstationId: fmt.Sprintf("sub-%d-%d", reg, sub),
		UpdatedMs:    1_700_000_000_000 + rng.Int64N(100_000),
		Partition:    int32(rng.IntN(4)),
	}
	for d := range rng.IntN(6) {
		s.Devices = append(s.Devices, randomDevice(rng, fmt.Sprintf("%s-dev-%d", site, d), seq))
	}
	return s
}

// expected recomputes every rollup from scratch from the current site
// states.
type expected struct {
	fleet       Rollup
	regions     map[string]Rollup
	substations map[string]Rollup
	sites       map[string]Rollup
	subRegion   map[string]string
	siteSub     map[string]string
}

func recompute(model map[string]*vppv1.SiteState) expected {
	e := expected{regions: map[string]Rollup{}, substations: map[string]Rollup{}, sites: map[string]Rollup{}, subRegion: map[string]string{}, siteSub: map[string]string{}}
	for id, s := range model {
		var r Rollup
		for _, d := range s.Devices {
			c := DeviceContribution(d)
			r.Add(&c)
		}
		r.UpdatedMS = max(r.UpdatedMS, s.UpdatedMs)
		e.sites[id] = r
		e.siteSub[id] = s.SubstationId
		e.subRegion[s.SubstationId] = s.RegionId
		sr := e.substations[s.SubstationId]
		sr.Add(&r)
		e.substations[s.SubstationId] = sr
		rr := e.regions[s.RegionId]
		rr.Add(&r)
		e.regions[s.RegionId] = rr
		e.fleet.Add(&r)
	}
	return e
}

func checkSnapshot(t *testing.T, step int, snap *Snapshot, e expected) {
	t.Helper()
	if snap.Fleet.Rollup != e.fleet {
		t.Fatalf("step %d: fleet\n got %+v\nwant %+v", step, snap.Fleet.Rollup, e.fleet)
	}
	if len(snap.Fleet.Children) != len(e.regions) {
		t.Fatalf("step %d: %d regions, want %d", step, len(snap.Fleet.Children), len(e.regions))
	}
	subs, sites := 0, 0
	for _, reg := range snap.Regions() {
		if want, ok := e.regions[reg.ID]; !ok || reg.Rollup != want {
			t.Fatalf("step %d: region %s\n got %+v\nwant %+v (present %v)", step, reg.ID, reg.Rollup, want, ok)
		}
		if len(reg.Children) == 0 {
			t.Fatalf("step %d: empty region %s kept", step, reg.ID)
		}
		for _, sub := range reg.Children {
			subs++
			if want := e.substations[sub.ID]; sub.Rollup != want || e.subRegion[sub.ID] != reg.ID || sub.RegionID != reg.ID {
				t.Fatalf("step %d: substation %s\n got %+v\nwant %+v", step, sub.ID, sub.Rollup, want)
			}
			if len(sub.Children) == 0 {
				t.Fatalf("step %d: empty substation %s kept", step, sub.ID)
			}
			if snap.Substation(sub.ID) != sub {
				t.Fatalf("step %d: lookup of substation %s", step, sub.ID)
			}
			for _, site := range sub.Children {
				sites++
				if want := e.sites[site.ID]; site.Rollup != want || e.siteSub[site.ID] != sub.ID {
					t.Fatalf("step %d: site %s\n got %+v\nwant %+v", step, site.ID, site.Rollup, want)
				}
				if snap.Site(site.ID) != site || site.SubstationID != sub.ID || site.RegionID != reg.ID {
					t.Fatalf("step %d: lookup of site %s", step, site.ID)
				}
			}
		}
	}
	if subs != len(e.substations) || sites != len(e.sites) || snap.Sites() != sites {
		t.Fatalf("step %d: %d substations %d sites, want %d %d", step, subs, sites, len(e.substations), len(e.sites))
	}
}

// TestTreeIncrementalEqualsRecompute applies random site updates (new
// states, moves, offline devices, removals, re-applied old states, which is
// what duplicates and out-of-order delivery look like to the tree) and
// checks after every step that every node's rollup equals a from-scratch
// recomputation exactly. It also checks that snapshots taken earlier never
// change.
func TestTreeIncrementalEqualsRecompute(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			tree := NewTree()
			model := map[string]*vppv1.SiteState{}
			var history []*vppv1.SiteState
			type held struct {
				snap *Snapshot
				want expected
				step int
			}
			var holds []held
			for step := range 1500 {
				site := fmt.Sprintf("site-%02d", rng.IntN(40))
				switch op := rng.IntN(10); {
				case op < 6:
					s := randomSite(rng, site, uint64(step+1))
					history = append(history, s)
					tree.ApplySite(s)
					model[site] = s
				case op < 8 && len(history) > 0: // an old state again
					s := history[rng.IntN(len(history))]
					tree.ApplySite(s)
					model[s.SiteId] = s
				case op < 9: // devices of a site go offline, the rest stays
					if cur := model[site]; cur != nil {
						s := &vppv1.SiteState{SiteId: cur.SiteId, RegionId: cur.RegionId, SubstationId: cur.SubstationId, UpdatedMs: cur.UpdatedMs + 1}
						for _, d := range cur.Devices {
							nd := &vppv1.DeviceState{Last: d.Last, AppliedMs: d.AppliedMs, Offline: true, Applied: d.Applied, HeadroomDischargeKw: d.HeadroomDischargeKw}
							s.Devices = append(s.Devices, nd)
						}
						tree.ApplySite(s)
						model[site] = s
					}
				default:
					removed := tree.RemoveSite(site)
					if _, ok := model[site]; ok != removed {
						t.Fatalf("step %d: RemoveSite(%s) = %v", step, site, removed)
					}
					delete(model, site)
				}
				if step%7 == 0 || rng.IntN(3) == 0 {
					snap := tree.Snapshot()
					want := recompute(model)
					checkSnapshot(t, step, snap, want)
					if rng.IntN(20) == 0 {
						holds = append(holds, held{snap, want, step})
					}
				}
				if got, want := tree.Rollup(), recompute(model).fleet; got != want {
					t.Fatalf("step %d: tree rollup\n got %+v\nwant %+v", step, got, want)
				}
			}
			for _, h := range holds {
				checkSnapshot(t, h.step, h.snap, h.want)
			}
		})
	}
}

func TestTreeRemoveAllLeavesEmpty(t *testing.T) {
	tree := NewTree()
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range 10 {
		tree.ApplySite(randomSite(rng, fmt.Sprintf("s%d", i), 1))
	}
	for i := range 10 {
		tree.RemoveSite(fmt.Sprintf("s%d", i))
	}
	snap := tree.Snapshot()
	if len(snap.Regions()) != 0 || snap.Fleet.Rollup != (Rollup{}) || snap.Sites() != 0 {
		t.Fatalf("not empty: %+v, %d regions", snap.Fleet.Rollup, len(snap.Regions()))
	}
}

func TestSnapshotSharesUnchangedSubtrees(t *testing.T) {
	tree := NewTree()
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 50 {
		tree.ApplySite(randomSite(rng, fmt.Sprintf("s%02d", i), 1))
	}
	a := tree.Snapshot()
	s := proto3Clone(tree.Site("s07"))
	s.UpdatedMs++
	tree.ApplySite(s)
	b := tree.Snapshot()
	if a.Fleet == b.Fleet || a.Site("s07") == b.Site("s07") {
		t.Fatal("changed path not rebuilt")
	}
	same := 0
	for _, reg := range b.Regions() {
		if a.Region(reg.ID) == reg {
			same++
		}
	}
	if same != len(b.Regions())-1 {
		t.Fatalf("%d of %d regions shared, want all but one", same, len(b.Regions()))
	}
	if c := tree.Snapshot(); c.Fleet != b.Fleet {
		t.Fatal("snapshot without changes not shared")
	}
}

func proto3Clone(s *vppv1.SiteState) *vppv1.SiteState {
	return &vppv1.SiteState{SiteId: s.SiteId, RegionId: s.RegionId, SubstationId: s.SubstationId, Devices: s.Devices, UpdatedMs: s.UpdatedMs, Partition: s.Partition}
}

func TestPipelineSums(t *testing.T) {
	tree := NewTree()
	tree.ApplyIngestStats(&vppv1.IngestStats{Instance: "a", Received: 100, Rejected: map[string]uint64{"bad_soc": 2, "skew": 1}, Published: 90, Acked: 88, Connections: 3, UpdatedMs: 5000})
	tree.ApplyIngestStats(&vppv1.IngestStats{Instance: "b", Received: 50, Rejected: map[string]uint64{"bad_soc": 4}, Published: 46, Acked: 46, Connections: 2, UpdatedMs: 7000})
	tree.ApplyIngestStats(&vppv1.IngestStats{Instance: "a", Received: 110, Rejected: map[string]uint64{"bad_soc": 2, "skew": 1}, Published: 100, Acked: 99, Connections: 3, UpdatedMs: 6000})
	tree.ApplyPartition(&vppv1.PartitionState{Partition: 0, NextOffset: 10, HighWaterMark: 15, Consumed: 10, Applied: 9, Duplicates: 1, UpdatedMs: 8000})
	tree.ApplyPartition(&vppv1.PartitionState{Partition: 1, NextOffset: 20, HighWaterMark: 18, Consumed: 20, Applied: 18, Gaps: 2, Undecodable: 1})
	p := tree.Snapshot().Pipeline
	if p.Received != 160 || p.Published != 146 || p.Acked != 145 || p.Connections != 5 || p.RejectedTotal != 7 || p.Rejected["bad_soc"] != 6 || p.Rejected["skew"] != 1 {
		t.Fatalf("ingest sums %+v", p)
	}
	if p.Unaccounted() != 7 {
		t.Fatalf("unaccounted %d", p.Unaccounted())
	}
	if p.Consumed != 30 || p.Applied != 27 || p.Duplicates != 1 || p.Gaps != 2 || p.Undecodable != 1 || p.Lag != 5 {
		t.Fatalf("aggregate sums %+v", p)
	}
	if p.UpdatedAt.UnixMilli() != 8000 || len(p.Partitions) != 2 || len(p.Instances) != 2 || p.Instances[0].Instance != "a" {
		t.Fatalf("pipeline %+v", p)
	}
	tree.RemovePartition(0)
	tree.RemoveIngestStats("b")
	if p := tree.Snapshot().Pipeline; p.Consumed != 20 || p.Received != 110 || p.Lag != 0 {
		t.Fatalf("after removal %+v", p)
	}
}
