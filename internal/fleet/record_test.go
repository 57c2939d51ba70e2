package fleet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

func siteRecord(t testing.TB, s *vppv1.SiteState) []byte {
	t.Helper()
	b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: s}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseSiteRecordMatchesDecode: the rollup and header read off a site
// record's bytes are those of the decoded SiteState, for sites of every
// shape (offline devices, devices without a reading, alarms, no devices).
func TestParseSiteRecordMatchesDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 2000 {
		s := randomSite(rng, fmt.Sprintf("site-%d", i), uint64(i))
		h, got, err := parseSiteRecord(siteRecord(t, s))
		if err != nil {
			t.Fatalf("site %d: %v", i, err)
		}
		if want := SiteContribution(s); got != want {
			t.Fatalf("site %d: rollup\n%+v, want\n%+v", i, got, want)
		}
		if string(h.id) != s.SiteId || string(h.substation) != s.SubstationId || string(h.region) != s.RegionId || h.partition != s.Partition {
			t.Fatalf("site %d: header %q %q %q %d", i, h.id, h.substation, h.region, h.partition)
		}
	}
}

func TestParseSiteRecordRejects(t *testing.T) {
	good := siteRecord(t, &vppv1.SiteState{SiteId: "s1", Devices: []*vppv1.DeviceState{{Last: &vppv1.Reading{DeviceId: "d1"}}}})
	part, _ := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Partition{Partition: &vppv1.PartitionState{Partition: 1}}})
	badUTF8 := bytes.Replace(siteRecord(t, &vppv1.SiteState{SiteId: "sX"}), []byte("sX"), []byte{'s', 0xff}, 1)
	for name, b := range map[string][]byte{
		"truncated":   good[:len(good)-1],
		"partition":   part,
		"bad UTF-8":   badUTF8,
		"not a proto": {0xff, 0xff, 0xff},
	} {
		if _, _, err := parseSiteRecord(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	tree := NewTree()
	if err := tree.ApplySiteRecord("s2", good); err == nil || tree.Sites() != 0 {
		t.Errorf("a record of s1 under key s2: err %v, %d sites", err, tree.Sites())
	}
}

// FuzzParseSiteRecord: no input makes the parser panic, and a record that
// both it and proto.Unmarshal accept, in canonical form, gives the decoded
// site's rollup.
func FuzzParseSiteRecord(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 8 {
		f.Add(siteRecord(f, randomSite(rng, fmt.Sprint("s", i), 1)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, got, err := parseSiteRecord(b)
		var rec vppv1.StateRecord
		if err != nil || proto.Unmarshal(b, &rec) != nil || rec.GetSite() == nil {
			return
		}
		opts := proto.MarshalOptions{Deterministic: true}
		if canon, _ := opts.Marshal(&rec); !bytes.Equal(canon, b) {
			return // repeated or unordered fields: proto merges, vpp never writes them
		}
		if want := SiteContribution(rec.GetSite()); got != want {
			t.Fatalf("rollup %+v, want %+v", got, want)
		}
	})
}

// BenchmarkApplySiteRecord folds site records (5 devices each) into trees
// of two sizes: the cost per record and the heap per device must not grow
// with the fleet.
func BenchmarkApplySiteRecord(b *testing.B) {
	for _, sites := range []int{4_000, 200_000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			recs := make([][]byte, sites)
			ids := make([]string, sites)
			for i := range recs {
				s := randomSite(rng, fmt.Sprintf("site-%07d", i), 1)
				s.RegionId, s.SubstationId = fmt.Sprintf("r%d", i%4), fmt.Sprintf("sub%d", i%20)
				s.Devices = s.Devices[:0]
				for d := range 5 {
					s.Devices = append(s.Devices, randomDevice(rng, fmt.Sprintf("dev-%07d-%d", i, d), 1))
				}
				recs[i], ids[i] = siteRecord(b, s), s.SiteId
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tree := NewTree()
			for i, r := range recs {
				if err := tree.ApplySiteRecord(ids[i], r); err != nil {
					b.Fatal(err)
				}
			}
			tree.Snapshot()
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(5*sites)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				j := i % sites
				if err := tree.ApplySiteRecord(ids[j], recs[j]); err != nil {
					b.Fatal(err)
				}
			}
			runtime.KeepAlive(tree)
			b.ReportMetric(heap, "heap-B/device")
		})
	}
}
