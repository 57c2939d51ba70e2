package aggregate

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// states returns the site's devices as DeviceState protos, sorted by ID,
// in buf (grown as needed, its elements and their readings reused), with
// the headroom of testTwin.
func (s *siteTwin) states(buf []*vppv1.DeviceState) []*vppv1.DeviceState {
	for len(buf) < len(s.devices) {
		buf = append(buf, &vppv1.DeviceState{})
	}
	out := buf[:len(s.devices)]
	for i := range s.devices {
		s.devices[i].fill(out[i], s, &testTwin)
	}
	return out
}

// recordDevices is states as a site record holds them: the readings
// without the site's IDs.
func recordDevices(states []*vppv1.DeviceState) []*vppv1.DeviceState {
	for _, st := range states {
		st.Last.SiteId, st.Last.SubstationId, st.Last.RegionId = "", "", ""
	}
	return states
}

// randomSite is a site of n devices with values covering what the encoder
// must get right: zeros (omitted), -0 (written), negatives, NaN, offline
// devices, large counters, empty and non-ASCII IDs.
func randomSite(rng *rand.Rand, n int) *siteTwin {
	pick := func(vals ...float64) float64 { return vals[rng.IntN(len(vals))] }
	f := func() float64 {
		return pick(0, math.Copysign(0, -1), rng.NormFloat64()*100, -rng.Float64()*1e6, math.NaN(), math.Inf(1), 1e-300)
	}
	u := func() uint64 { return []uint64{0, 1, 127, 128, 1 << 35, math.MaxUint64}[rng.IntN(6)] }
	s := &siteTwin{id: fmt.Sprintf("site-%d", rng.IntN(1000)), substation: []string{"", "sub-1", "Umspannwerk-Süd"}[rng.IntN(3)],
		region: []string{"", "north"}[rng.IntN(2)]}
	for i := range n {
		s.devices = append(s.devices, twin{
			id: []string{"", fmt.Sprintf("dev-%06d", i)}[min(i, 1)], seq: u(), tsMs: int64(u()), appliedMs: []int64{0, -1, 1_780_000_000_000}[rng.IntN(3)],
			soc: f(), soh: f(), power: f(), voltage: f(), current: f(), temp: f(),
			capacity: f(), maxCharge: f(), maxDischarge: f(),
			applied: u(), duplicates: u(), gaps: u(), alarms: uint32(u()), mode: vppv1.Mode(rng.IntN(6)), offline: rng.IntN(2) == 0,
		})
		if rng.IntN(2) == 0 {
			s.devices[i].sp = &reportedSetpoint{id: []string{"", "d-1", "Lastgang-Ä"}[rng.IntN(3)], seq: u(), kw: f(),
				state: vppv1.SetpointState(rng.IntN(5)), reason: vppv1.SetpointReason(rng.IntN(5))}
		}
	}
	return s
}

// TestAppendSiteRecordMatchesProto checks the hand-written encoder against
// proto.Marshal of the equivalent messages, byte for byte, for sites from
// empty to large enough that every length prefix needs more bytes than
// guessed, and fewer.
func TestAppendSiteRecordMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r vppv1.Reading
	for _, n := range []int{0, 1, 2, 5, 40, 200, 20_000} {
		for range 20 {
			s := randomSite(rng, n)
			now, part := []int64{0, 1_780_000_000_123, -5}[rng.IntN(3)], []int32{0, 7, -1}[rng.IntN(3)]
			want, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: &vppv1.SiteState{
				SiteId: s.id, SubstationId: s.substation, RegionId: s.region, Devices: recordDevices(s.states(nil)), UpdatedMs: now, Partition: part,
			}}})
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("earlier record")
			got := appendSiteRecord(bytes.Clone(prefix), s, now, part, &testTwin, &r)
			if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
				t.Fatalf("site of %d devices: encoded %d bytes, proto.Marshal %d; first difference at %d",
					n, len(got)-len(prefix), len(want), firstDiff(got[len(prefix):], want))
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
