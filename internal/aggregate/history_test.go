package aggregate

import (
	"testing"

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
