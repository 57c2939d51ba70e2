package fleet

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vppctl/vpp/proto/vppv1"
)

// benchFleet builds sites×devices devices: 10 regions, 100 substations per
// region at 10,000 sites.
func benchFleet(sites, devices int) (*Tree, [][2]*vppv1.SiteState) {
	rng := rand.New(rand.NewPCG(1, 1))
	tree := NewTree()
	versions := make([][2]*vppv1.SiteState, sites)
	subs := max(1, sites/100)
	for i := range sites {
		sub := i % subs
		for v := range 2 {
			s := &vppv1.SiteState{
				SiteId:       fmt.Sprintf("site-%06d", i),
				SubstationId: fmt.Sprintf("sub-%04d", sub),
				RegionId:     fmt.Sprintf("region-%02d", sub%10),
				UpdatedMs:    1_700_000_000_000 + int64(v),
				Partition:    int32(i % 12),
			}
			for d := range devices {
				s.Devices = append(s.Devices, randomDevice(rng, fmt.Sprintf("dev-%06d-%02d", i, d), uint64(v+1)))
			}
			versions[i][v] = s
		}
		tree.ApplySite(versions[i][0])
	}
	return tree, versions
}

// BenchmarkApplySite measures one incremental site update (10 devices) in
// a fleet of 10,000 sites / 100,000 devices.
func BenchmarkApplySite(b *testing.B) {
	tree, versions := benchFleet(10_000, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		site := versions[i%len(versions)]
		tree.ApplySite(site[(i/len(versions)+1)%2])
	}
}

// BenchmarkSnapshot measures Snapshot with 100,000 devices (10,000 sites):
// "incremental" after 100 site updates (a 100 ms publish batch at 1,000
// site updates/s), "one" after one update, "full" with every node changed
// (the worst case, e.g. the first snapshot).
func BenchmarkSnapshot(b *testing.B) {
	for _, tc := range []struct {
		name    string
		updates int
	}{{"one", 1}, {"incremental-100", 100}, {"full", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			tree, versions := benchFleet(10_000, 10)
			tree.Snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				b.StopTimer()
				if tc.updates < 0 {
					markDirty(tree.root)
				}
				for range tc.updates {
					site := versions[(n*7919)%len(versions)]
					tree.ApplySite(site[n%2])
					n++
				}
				b.StartTimer()
				s := tree.Snapshot()
				if s.Fleet.Rollup.Devices != 100_000 {
					b.Fatal(s.Fleet.Rollup.Devices)
				}
			}
		})
	}
}

func markDirty(n *tnode) {
	n.dirty = true
	for _, c := range n.children {
		markDirty(c)
	}
}

// BenchmarkSnapshotWhileLoading measures a snapshot after 100 sites
// appeared (a fleet being loaded), in trees of 2,000 and 20,000 sites with
// the same 20 substations: the site index grows by the new sites instead of
// being rebuilt over all of them (before: 0.83 and 4.3 ms, after: 0.2 and
// 0.4 ms on this project's machine); what still grows is the copy of the
// changed substations' child lists (1,000 sites each at 20,000).
func BenchmarkSnapshotWhileLoading(b *testing.B) {
	for _, sites := range []int{2_000, 20_000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(2, 2))
			tree := NewTree()
			add := func(i int) {
				tree.ApplySite(&vppv1.SiteState{
					SiteId: fmt.Sprintf("site-%07d", i), SubstationId: fmt.Sprintf("sub-%02d", i%20),
					RegionId: fmt.Sprintf("region-%d", i%4), Devices: []*vppv1.DeviceState{randomDevice(rng, fmt.Sprintf("dev-%07d", i), 1)},
				})
			}
			for i := range sites {
				add(i)
			}
			tree.Snapshot()
			next := sites
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				for range 100 {
					add(next)
					next++
				}
				b.StartTimer()
				tree.Snapshot()
			}
		})
	}
}
