package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	vppfleet "github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TestSampleSumsSubstations checks a partition sample against the rollups a
// fleet reader computes from the same twins' site states.
func TestSampleSumsSubstations(t *testing.T) {
	ps := newPartState(3, testTwin)
	var offset int64
	add := func(r *vppv1.Reading) {
		ps.apply(r, 1000)
		ps.acct.Consumed++
		offset++
		ps.acct.NextOffset = offset
	}
	r := reading("s1", "d1", 1, 2.5)
	add(r)
	add(reading("s1", "d2", 1, -1.25))
	r = reading("s2", "d3", 1, 4)
	r.SubstationId, r.RegionId, r.Alarms = "sub-2", "south", 1
	add(r)
	add(reading("s3", "d4", 1, 0.5)) // sub-1 again, another site
	add(reading("s1", "d1", 1, 9))   // duplicate
	ps.markOffline(1000 + testTwin.offlineAfter.Milliseconds() + 1)
	add(reading("s3", "d4", 2, 0.75)) // d4 online again; others offline

	s := ps.sample(5000, 10)
	if s.Partition != 3 || s.TsMs != 5000 || s.Consumed != 6 || s.Applied != 5 || s.Duplicates != 1 || s.Lag != 10-6 {
		t.Fatalf("sample header %v", s)
	}
	if len(s.Substations) != 2 || s.Substations[0].SubstationId != "sub-1" || s.Substations[1].SubstationId != "sub-2" {
		t.Fatalf("substations %v, want sub-1, sub-2 sorted", s.Substations)
	}
	// Expected: the sum of the sites' contributions per substation.
	want := map[string]*vppfleet.Rollup{}
	for _, site := range ps.sites {
		c := vppfleet.SiteContribution(&vppv1.SiteState{Devices: site.states(nil)})
		if want[site.substation] == nil {
			want[site.substation] = &vppfleet.Rollup{}
		}
		want[site.substation].Add(&c)
	}
	for _, sub := range s.Substations {
		w := want[sub.SubstationId]
		if sub.NetMicroKw != w.NetMicroKW || sub.ChargeMicroKw != w.ChargeMicroKW || sub.DischargeMicroKw != w.DischargeMicroKW ||
			sub.EnergyMicroKwh != w.EnergyMicroKWh || sub.CapacityMicroKwh != w.CapacityMicroKWh ||
			sub.HeadroomDischargeMicroKw != w.HeadroomDischargeMicroKW || sub.HeadroomChargeMicroKw != w.HeadroomChargeMicroKW ||
			int64(sub.Devices) != w.Devices || int64(sub.Online) != w.Online || int64(sub.Alarming) != w.Alarming {
			t.Errorf("substation %s: %v, want %+v", sub.SubstationId, sub, w)
		}
	}
	if got := s.Substations[0]; got.NetMicroKw != vppfleet.ToMicro(2.5-1.25+0.75) || got.Devices != 3 || got.Online != 1 {
		t.Errorf("sub-1 %v: want net 2.0 kW, 3 devices, 1 online", got)
	}
	if got := s.Substations[1]; got.RegionId != "south" || got.Alarming != 1 || got.Online != 0 {
		t.Errorf("sub-2 %v: want region south, 1 alarming, offline", got)
	}
}

// sampleFull is the partition's substation sums computed from every
// device, the way a sample was computed before the sums were kept: the
// oracle of the kept sums.
func sampleFull(ps *partState) map[subKey]*vppv1.SubstationSample {
	subs := make(map[subKey]*vppv1.SubstationSample)
	var st vppv1.DeviceState
	for _, s := range ps.sites {
		k := subKey{s.region, s.substation}
		sub := subs[k]
		if sub == nil {
			sub = &vppv1.SubstationSample{SubstationId: s.substation, RegionId: s.region}
			subs[k] = sub
		}
		for i := range s.devices {
			s.devices[i].fill(&st, s, &testTwin)
			c := vppfleet.DeviceContribution(&st)
			sub.NetMicroKw += c.NetMicroKW
			sub.ChargeMicroKw += c.ChargeMicroKW
			sub.DischargeMicroKw += c.DischargeMicroKW
			sub.EnergyMicroKwh += c.EnergyMicroKWh
			sub.CapacityMicroKwh += c.CapacityMicroKWh
			sub.HeadroomDischargeMicroKw += c.HeadroomDischargeMicroKW
			sub.HeadroomChargeMicroKw += c.HeadroomChargeMicroKW
			sub.Devices += int32(c.Devices)
			sub.Online += int32(c.Online)
			sub.Alarming += int32(c.Alarming)
		}
	}
	return subs
}

// TestSampleKeptSumsMatchFullSum applies random readings (sites moving
// substation and region among them), offline marks and a restore, and
// checks after every step that the kept sums equal a full recomputation.
func TestSampleKeptSumsMatchFullSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ps := newPartState(0, testTwin)
	seq := map[string]uint64{}
	now := int64(1000)
	lastMark := int64(math.MinInt64 / 2)
	check := func(step int) {
		t.Helper()
		want := sampleFull(ps)
		got := ps.sample(now, 0)
		n := 0
		for _, w := range want {
			if w.Devices > 0 {
				n++
			}
		}
		if len(got.Substations) != n {
			t.Fatalf("step %d: %d substations sampled, want %d", step, len(got.Substations), n)
		}
		for _, g := range got.Substations {
			w := want[subKey{g.RegionId, g.SubstationId}]
			if w == nil || !proto.Equal(g, w) {
				t.Fatalf("step %d: substation %s/%s = %v, want %v", step, g.RegionId, g.SubstationId, g, w)
			}
		}
	}
	for step := range 3000 {
		now += int64(rng.IntN(2000))
		switch x := rng.IntN(100); {
		case x < 90:
			site := fmt.Sprintf("s%d", rng.IntN(20))
			dev := fmt.Sprintf("%s-d%d", site, rng.IntN(4))
			r := reading(site, dev, seq[dev]+1, rng.Float64()*10-5)
			if rng.IntN(10) > 0 {
				seq[dev]++
			} // else a duplicate
			r.SubstationId = fmt.Sprintf("sub-%d", rng.IntN(3))
			r.RegionId = fmt.Sprintf("r-%d", rng.IntN(2))
			r.SocPct, r.CapacityKwh, r.Alarms = rng.Float64()*100, 5+rng.Float64()*10, uint32(rng.IntN(3))
			if rng.IntN(2) == 0 {
				ps.apply(r, now)
			} else {
				b, err := proto.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				ps.record(int64(step), b, now)
			}
		case x < 97:
			ps.markOffline(now)
			lastMark = now
		default:
			// Restore a fresh partition from this one's site states.
			next := newPartState(0, testTwin)
			for _, s := range ps.sites {
				b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: &vppv1.SiteState{
					SiteId: s.id, SubstationId: s.substation, RegionId: s.region, Devices: s.states(nil)}}})
				if err != nil {
					t.Fatal(err)
				}
				if err := next.restore(SiteKey(s.id), b); err != nil {
					t.Fatal(err)
				}
			}
			ps = newPartState(0, testTwin)
			ps.adopt(next)
		}
		check(step)
		// Offline exactly when silent for offlineAfter as of the latest
		// mark (and not before the mark that found it).
		after := testTwin.offlineAfter.Milliseconds()
		for _, s := range ps.sites {
			for i := range s.devices {
				d := &s.devices[i]
				if silent := d.appliedMs < lastMark-after; silent != d.offline {
					t.Fatalf("step %d: device %s applied at %d, offline %v after a mark at %d", step, d.id, d.appliedMs, d.offline, lastMark)
				}
			}
		}
	}
}

// BenchmarkSample times a history sample at two partition sizes with the
// same 15 substations: the sample costs O(substations), so the two agree
// (it walked every device before, 100× apart).
func BenchmarkSample(b *testing.B) {
	for _, devices := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			ps := newPartState(0, testTwin)
			for i := range devices {
				site := fmt.Sprintf("s%d", i/5)
				r := reading(site, fmt.Sprintf("%s-d%d", site, i%5), 1, 1.5)
				r.SubstationId = fmt.Sprintf("sub-%d", (i/5)%15)
				ps.apply(r, 1000)
			}
			b.ResetTimer()
			for range b.N {
				ps.sample(2000, 0)
			}
		})
	}
}

// BenchmarkMarkOffline times the offline check of every flush at two
// partition sizes, every device heard from a second ago: it costs what is
// due, not a walk over the devices, so the two agree.
func BenchmarkMarkOffline(b *testing.B) {
	for _, devices := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			ps := newPartState(0, testTwin)
			for i := range devices {
				site := fmt.Sprintf("s%d", i/5)
				ps.apply(reading(site, fmt.Sprintf("%s-d%d", site, i%5), 1, 1.5), 1000)
			}
			b.ResetTimer()
			for range b.N {
				ps.markOffline(2000)
			}
		})
	}
}
