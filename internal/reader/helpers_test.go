package reader

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// testBackoff reconnects quickly.
func testBackoff() backoff.Policy {
	return backoff.Policy{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}
}

// The helpers below build and check fleets as internal/fleet's tree tests
// do.

func reading(dev string, seq uint64, soc, power, capacity, temp float64, alarms uint32) *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: dev, Seq: seq, TsMs: 1_700_000_000_000 + int64(seq), SocPct: soc, SohPct: 97, PowerKw: power,
		VoltageV: 400, CurrentA: power * 2.5, TemperatureC: temp, CapacityKwh: capacity,
		MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_IDLE, Alarms: alarms,
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
	fleet       fleet.Rollup
	regions     map[string]fleet.Rollup
	substations map[string]fleet.Rollup
	sites       map[string]fleet.Rollup
	subRegion   map[string]string
	siteSub     map[string]string
}

func recompute(model map[string]*vppv1.SiteState) expected {
	e := expected{regions: map[string]fleet.Rollup{}, substations: map[string]fleet.Rollup{}, sites: map[string]fleet.Rollup{}, subRegion: map[string]string{}, siteSub: map[string]string{}}
	for id, s := range model {
		var r fleet.Rollup
		for _, d := range s.Devices {
			c := fleet.DeviceContribution(d)
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

func checkSnapshot(t *testing.T, step int, snap *fleet.Snapshot, e expected) {
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
