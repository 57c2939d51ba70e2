package history

import (
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
)

// TestStoreDispatch: fleet, regions and substations come from the reader,
// the sites of watched substations and watched devices from the recorder,
// pipeline metrics from the fleet node only.
func TestStoreDispatch(t *testing.T) {
	r := fullReader(t, 20*time.Second)
	rec := NewRecorder(10)
	tree := fleet.NewTree()
	tree.ApplySite(siteState("site-1", 3))
	stop := rec.Watch("site-1", "site-1-d0")
	defer stop()
	defer rec.WatchSubstation("sub-1")()
	rec.Observe(tree.Snapshot(), at(0))
	s := NewStore(r, rec)
	for _, tt := range []struct {
		kind fleet.Kind
		id   string
		m    Metric
		want float64
	}{
		{fleet.KindFleet, fleet.FleetID, PowerKW, 19 * 1000},
		{fleet.KindRegion, "region-1", PowerKW, 19 * 100},
		{fleet.KindSubstation, "sub-007", PowerKW, 19},
		{fleet.KindFleet, "", ConsumedPerSec, 12 * 100},
		{fleet.KindRegion, "region-1", ConsumedPerSec, nan},
		{fleet.KindSite, "site-1", PowerKW, 3},
		{fleet.KindSite, "site-1", SoCPct, 53},
		{fleet.KindDevice, "site-1-d0", TemperatureC, 23},
		{fleet.KindSite, "sub-007", PowerKW, nan},
		{fleet.KindDevice, "site-1-d0", Online, nan},
	} {
		if got := s.Series(tt.kind, tt.id, tt.m, 1); !equal(got, []float64{tt.want}) {
			t.Errorf("%v %s metric %d: %v, want %v", tt.kind, tt.id, tt.m, got, tt.want)
		}
	}
	if got := s.Series(fleet.KindFleet, "", PowerKW, 0); got != nil {
		t.Errorf("n=0: %v", got)
	}
	if got := NewStore(nil, nil).Series(fleet.KindFleet, "", PowerKW, 2); !equal(got, []float64{nan, nan}) {
		t.Errorf("empty store %v", got)
	}
}
