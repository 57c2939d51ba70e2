package history

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// siteState is a site with one device per power value.
func siteState(site string, powers ...float64) *vppv1.SiteState {
	s := &vppv1.SiteState{SiteId: site, SubstationId: "sub-" + site[len(site)-1:], RegionId: "r"}
	for i, p := range powers {
		s.Devices = append(s.Devices, &vppv1.DeviceState{Last: &vppv1.Reading{
			DeviceId: fmt.Sprintf("%s-d%d", site, i), SiteId: site,
			PowerKw: p, SocPct: 50 + p, CapacityKwh: 10, TemperatureC: 20 + p,
		}})
	}
	return s
}

func at(sec int64) time.Time { return time.Unix(t0+sec, 0) }

func TestRecorderSitesAndRing(t *testing.T) {
	r := NewRecorder(5)
	r.WatchSubstation("sub-1")
	r.WatchSubstation("sub-2")
	tree := fleet.NewTree()
	for k := range int64(8) {
		tree.ApplySite(siteState("site-1", float64(k), 1))
		if k < 3 {
			tree.ApplySite(siteState("site-2", -2))
		} else if k == 3 {
			tree.RemoveSite("site-2")
		}
		r.Observe(tree.Snapshot(), at(k))
	}
	// Ring of 5: the last 5 seconds, older ones NaN.
	want := []float64{nan, nan, 4, 5, 6, 7, 8}
	if got := r.Series(fleet.KindSite, "site-1", PowerKW, 7); !equal(got, want) {
		t.Errorf("site-1 power %v, want %v", got, want)
	}
	// SoC: capacity-weighted over the two devices ((50+k)+(51))/2.
	if got := r.Series(fleet.KindSite, "site-1", SoCPct, 2); !equal(got, []float64{(56 + 51) / 2.0, (57 + 51) / 2.0}) {
		t.Errorf("site-1 SoC %v", got)
	}
	// A site that left the fleet has no values after it left.
	if got := r.Series(fleet.KindSite, "site-2", PowerKW, 6); !equal(got, []float64{nan, nan, nan, nan, nan, nan}) {
		t.Errorf("site-2 after removal %v", got)
	}
	if got := r.Series(fleet.KindSite, "site-1", TemperatureC, 2); !equal(got, []float64{nan, nan}) {
		t.Errorf("site temperature %v, want NaN (not recorded)", got)
	}
	// Seconds without an Observe are unknown.
	r.Observe(tree.Snapshot(), at(10))
	if got := r.Series(fleet.KindSite, "site-1", PowerKW, 4); !equal(got, []float64{8, nan, nan, 8}) {
		t.Errorf("gap %v, want 8 NaN NaN 8", got)
	}
	// Sites not seen for a ring are dropped.
	tree.RemoveSite("site-1")
	for k := int64(11); k < 20; k++ {
		r.Observe(tree.Snapshot(), at(k))
	}
	r.mu.RLock()
	n := len(r.sites)
	r.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d sites kept after leaving, want 0", n)
	}
}

func TestRecorderWatchedDevicesOnly(t *testing.T) {
	r := NewRecorder(10)
	tree := fleet.NewTree()
	tree.ApplySite(siteState("site-1", 1, 2))
	r.Observe(tree.Snapshot(), at(0))
	stop := r.Watch("site-1", "site-1-d1")
	stop2 := r.Watch("site-1", "site-1-d1")
	for k := int64(1); k <= 3; k++ {
		tree.ApplySite(siteState("site-1", 1, float64(k)))
		r.Observe(tree.Snapshot(), at(k))
	}
	if got := r.Series(fleet.KindDevice, "site-1-d1", PowerKW, 4); !equal(got, []float64{nan, 1, 2, 3}) {
		t.Errorf("watched device power %v, want NaN 1 2 3 (recorded from Watch on)", got)
	}
	if got := r.Series(fleet.KindDevice, "site-1-d1", TemperatureC, 1); !equal(got, []float64{23}) {
		t.Errorf("watched device temperature %v", got)
	}
	if got := r.Series(fleet.KindDevice, "site-1-d1", SoCPct, 1); !equal(got, []float64{53}) {
		t.Errorf("watched device SoC %v", got)
	}
	if got := r.Series(fleet.KindDevice, "site-1-d0", PowerKW, 2); !equal(got, []float64{nan, nan}) {
		t.Errorf("unwatched device %v, want NaN", got)
	}
	stop()
	stop() // twice is harmless
	if got := r.Series(fleet.KindDevice, "site-1-d1", PowerKW, 1); !equal(got, []float64{3}) {
		t.Errorf("device still watched by a second viewer: %v", got)
	}
	stop2()
	if got := r.Series(fleet.KindDevice, "site-1-d1", PowerKW, 1); !equal(got, []float64{nan}) {
		t.Errorf("unwatched device kept: %v", got)
	}
}

// TestRecorderWatchedSubstationsOnly: Observe records the sites of the
// watched substations, from the watch on, and nothing else of the fleet;
// the last stop drops them.
func TestRecorderWatchedSubstationsOnly(t *testing.T) {
	r := NewRecorder(10)
	tree := fleet.NewTree()
	for _, id := range []string{"site-a1", "site-b1", "site-a2"} {
		s := siteState(id, 1)
		s.SubstationId = "sub-" + id[len("site-"):len("site-")+1] // sub-a, sub-b
		tree.ApplySite(s)
	}
	recorded := func() int {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return len(r.sites)
	}
	r.Observe(tree.Snapshot(), at(0))
	if n := recorded(); n != 0 {
		t.Fatalf("%d sites recorded with no substation watched, want 0", n)
	}
	if got := r.Series(fleet.KindSite, "site-a1", PowerKW, 1); !equal(got, []float64{nan}) {
		t.Fatalf("unwatched site-a1 %v, want NaN", got)
	}
	stop := r.WatchSubstation("sub-a")
	stop2 := r.WatchSubstation("sub-a")
	for k := int64(1); k <= 3; k++ {
		r.Observe(tree.Snapshot(), at(k))
	}
	if n := recorded(); n != 2 {
		t.Fatalf("%d sites recorded, want 2 (those of sub-a)", n)
	}
	for _, id := range []string{"site-a1", "site-a2"} {
		if got := r.Series(fleet.KindSite, id, PowerKW, 4); !equal(got, []float64{nan, 1, 1, 1}) {
			t.Errorf("%s power %v, want NaN 1 1 1 (recorded from the watch on)", id, got)
		}
	}
	if got := r.Series(fleet.KindSite, "site-b1", PowerKW, 2); !equal(got, []float64{nan, nan}) {
		t.Errorf("site-b1 of the unwatched sub-b %v, want NaN", got)
	}
	// A site that moves into the watched substation is recorded there.
	moved := siteState("site-b1", 5)
	moved.SubstationId = "sub-a"
	tree.ApplySite(moved)
	r.Observe(tree.Snapshot(), at(4))
	if got := r.Series(fleet.KindSite, "site-b1", PowerKW, 2); !equal(got, []float64{nan, 5}) {
		t.Errorf("site-b1 moved into sub-a %v, want NaN 5", got)
	}
	stop()
	stop() // twice is harmless
	r.Observe(tree.Snapshot(), at(5))
	if got := r.Series(fleet.KindSite, "site-a1", PowerKW, 1); !equal(got, []float64{1}) {
		t.Errorf("site-a1 still watched by a second viewer: %v", got)
	}
	stop2()
	if n := recorded(); n != 0 {
		t.Errorf("%d sites kept after the last stop, want 0", n)
	}
	r.Observe(tree.Snapshot(), at(6))
	if n := recorded(); n != 0 {
		t.Errorf("%d sites recorded after the last stop, want 0", n)
	}
	if got := r.Series(fleet.KindSite, "site-a1", PowerKW, 1); !equal(got, []float64{nan}) {
		t.Errorf("site-a1 after the last stop %v, want NaN", got)
	}
}

// TestRecorderConcurrent runs Observe, Watch and Series together (for the
// race detector).
func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder(60)
	tree := fleet.NewTree()
	for i := range 20 {
		tree.ApplySite(siteState(fmt.Sprintf("site-%02d", i), 1, 2))
	}
	snap := tree.Snapshot()
	store := NewStore(nil, r)
	r.WatchSubstation("sub-3")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 200 {
				stop := r.Watch("site-01", "site-01-d0")
				stopSub := r.WatchSubstation(fmt.Sprintf("sub-%d", (g+k)%10))
				_ = store.Series(fleet.KindSite, fmt.Sprintf("site-%02d", (g+k)%20), PowerKW, 30)
				_ = store.Series(fleet.KindDevice, "site-01-d0", PowerKW, 30)
				stop()
				stopSub()
			}
		})
	}
	for k := range int64(200) {
		r.Observe(snap, at(k))
	}
	wg.Wait()
	if got := store.Series(fleet.KindSite, "site-03", PowerKW, 1); !equal(got, []float64{3}) {
		t.Fatalf("site-03 %v", got)
	}
}

// fleetSnapshot is a fleet of sites sites of 2 devices, perSub sites per
// substation (site i in substation i/perSub), 100 substations per region.
func fleetSnapshot(sites, perSub int) *fleet.Snapshot {
	tree := fleet.NewTree()
	for i := range sites {
		s := siteState(fmt.Sprintf("site-%06d", i), 1, -2)
		s.SubstationId = fmt.Sprintf("sub-%06d", i/perSub)
		s.RegionId = fmt.Sprintf("region-%d", i/perSub/100)
		tree.ApplySite(s)
	}
	return tree.Snapshot()
}

// BenchmarkRecorderObserve is one second of a dashboard's recorder: one
// watched substation of 200 sites and one watched device, in fleets of
// 2,000 and 200,000 sites. The two cost the same: Observe is O(what is
// watched), not O(fleet).
func BenchmarkRecorderObserve(b *testing.B) {
	for _, sites := range []int{2_000, 200_000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			snap := fleetSnapshot(sites, 200)
			r := NewRecorder(DefaultPoints)
			r.WatchSubstation("sub-000000")
			r.Watch("site-000001", "site-000001-d0")
			sec := int64(0)
			r.Observe(snap, at(sec))
			if v := r.Series(fleet.KindSite, "site-000001", PowerKW, 1); math.IsNaN(v[0]) {
				b.Fatal("watched site not recorded")
			}
			if n := len(r.sites); n != 200 {
				b.Fatalf("%d sites recorded, want 200", n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				sec++
				r.Observe(snap, at(sec))
			}
		})
	}
}

// TestRecorderMemoryPerSite measures the heap a recorded site (and its
// substation's watch) costs at the default ring length (the figure in
// Recorder's doc).
func TestRecorderMemoryPerSite(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a large fleet")
	}
	const sites, perSub = 10_000, 10
	snap := fleetSnapshot(sites, perSub)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewRecorder(DefaultPoints)
	for i := range sites / perSub {
		r.WatchSubstation(fmt.Sprintf("sub-%06d", i))
	}
	r.Observe(snap, at(0))
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / sites
	t.Logf("recorder: %.0f B per site at %d points", per, DefaultPoints)
	if per > 2200 {
		t.Errorf("%.0f B per site, want <= 2200", per)
	}
	runtime.KeepAlive(r)
	runtime.KeepAlive(snap)
	if v := r.Series(fleet.KindSite, "site-000001", PowerKW, 1); math.IsNaN(v[0]) {
		t.Fatal("site not recorded")
	}
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
