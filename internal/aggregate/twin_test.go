package aggregate

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

var testTwin = twinConfig{offlineAfter: 30 * time.Second, reserve: 10, horizon: 15 * time.Minute}

func reading(site, dev string, seq uint64, power float64) *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: dev, SiteId: site, SubstationId: "sub-1", RegionId: "north",
		Seq: seq, TsMs: int64(seq) * 1000, SocPct: 50, SohPct: 99, PowerKw: power,
		CapacityKwh: 10, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_IDLE,
	}
}

// device returns the published form of a device's twin: a snapshot, so
// tests read it again after changing the twin.
func device(t *testing.T, ps *partState, site, dev string) *vppv1.DeviceState {
	t.Helper()
	s := ps.sites[site]
	if s == nil {
		t.Fatalf("no twin for site %s", site)
	}
	i, ok := s.find(dev)
	if !ok {
		t.Fatalf("no twin for %s/%s", site, dev)
	}
	st := &vppv1.DeviceState{}
	s.devices[i].fill(st, s, &testTwin)
	return st
}

func TestApplyIgnoresDuplicates(t *testing.T) {
	ps := newPartState(0, testTwin)
	for _, seq := range []uint64{1, 2, 2, 1, 3, 3} {
		ps.apply(reading("s1", "d1", seq, float64(seq)), 1000)
	}
	d := device(t, ps, "s1", "d1")
	if d.Applied != 3 || d.Duplicates != 3 || d.Gaps != 0 {
		t.Errorf("device applied/duplicates/gaps = %d/%d/%d, want 3/3/0", d.Applied, d.Duplicates, d.Gaps)
	}
	if ps.acct.Applied != 3 || ps.acct.Duplicates != 3 {
		t.Errorf("partition applied/duplicates = %d/%d, want 3/3", ps.acct.Applied, ps.acct.Duplicates)
	}
	if d.Last.GetSeq() != 3 || d.Last.GetPowerKw() != 3 {
		t.Errorf("last = seq %d power %v, want seq 3 power 3", d.Last.GetSeq(), d.Last.GetPowerKw())
	}
}

func TestApplyIgnoresOlderOutOfOrder(t *testing.T) {
	ps := newPartState(0, testTwin)
	if got := ps.apply(reading("s1", "d1", 5, 5), 1000); got != outcomeApplied {
		t.Fatalf("seq 5: outcome %v, want applied", got)
	}
	if got := ps.apply(reading("s1", "d1", 3, 3), 2000); got != outcomeDuplicate {
		t.Fatalf("seq 3 after 5: outcome %v, want duplicate", got)
	}
	d := device(t, ps, "s1", "d1")
	if d.Last.GetSeq() != 5 || d.Last.GetPowerKw() != 5 || d.AppliedMs != 1000 {
		t.Errorf("older reading changed the twin: %v", d)
	}
	ps.apply(reading("s1", "d1", 6, 6), 3000)
	d = device(t, ps, "s1", "d1")
	if d.Last.GetSeq() != 6 || d.AppliedMs != 3000 {
		t.Errorf("seq 6 not applied: %v", d)
	}
	// The first reading at seq 5 means 1..4 never arrived; 3 arriving late
	// does not undo that count (it is a duplicate of nothing applied).
	if d.Gaps != 4 || d.Duplicates != 1 || d.Applied != 2 {
		t.Errorf("gaps/duplicates/applied = %d/%d/%d, want 4/1/2", d.Gaps, d.Duplicates, d.Applied)
	}
}

func TestApplyCountsGaps(t *testing.T) {
	ps := newPartState(0, testTwin)
	for _, seq := range []uint64{1, 4, 5, 9} {
		ps.apply(reading("s1", "d1", seq, 1), 1000)
	}
	ps.apply(reading("s1", "d2", 1, 1), 1000)
	if d := device(t, ps, "s1", "d1"); d.Gaps != 5 {
		t.Errorf("d1 gaps = %d, want 5 (2,3 and 6,7,8)", d.Gaps)
	}
	if d := device(t, ps, "s1", "d2"); d.Gaps != 0 {
		t.Errorf("d2 gaps = %d, want 0", d.Gaps)
	}
	if ps.acct.Gaps != 5 {
		t.Errorf("partition gaps = %d, want 5", ps.acct.Gaps)
	}
}

func TestRecordCountsUndecodable(t *testing.T) {
	ps := newPartState(0, testTwin)
	good, err := proto.Marshal(reading("s1", "d1", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	ps.record(10, []byte{0xff, 0xff, 0xff}, 1000)
	ps.record(11, good, 1000)
	ps.record(12, nil, 1000) // decodes to an empty reading: no device
	if ps.acct.Consumed != 3 || ps.acct.Undecodable != 2 || ps.acct.Applied != 1 || ps.acct.NextOffset != 13 {
		t.Errorf("acct = %v, want consumed 3, undecodable 2, applied 1, next 13", ps.acct)
	}
}

func TestOffline(t *testing.T) {
	ps := newPartState(0, testTwin)
	t0 := int64(1_000_000)
	ps.apply(reading("s1", "d1", 1, 0), t0)
	ps.apply(reading("s1", "d2", 1, 0), t0+20_000)
	ps.flushed()
	d1, d2 := device(t, ps, "s1", "d1"), device(t, ps, "s1", "d2")
	if d1.HeadroomDischargeKw != 5 || d1.HeadroomChargeKw != 5 {
		t.Fatalf("headroom = %v/%v, want 5/5", d1.HeadroomDischargeKw, d1.HeadroomChargeKw)
	}
	if n := ps.markOffline(t0 + 30_000); n != 0 || ps.pending() {
		t.Errorf("offline at exactly 30s: %d changed, pending %v", n, ps.pending())
	}
	if n := ps.markOffline(t0 + 30_001); n != 1 || !ps.pending() {
		t.Errorf("offline after 30s: %d changed, pending %v; want 1, true", n, ps.pending())
	}
	d1, d2 = device(t, ps, "s1", "d1"), device(t, ps, "s1", "d2")
	if !d1.Offline || d1.HeadroomDischargeKw != 0 || d1.HeadroomChargeKw != 0 {
		t.Errorf("d1 = %v, want offline without headroom", d1)
	}
	if d2.Offline {
		t.Errorf("d2 offline too early")
	}
	if d1.Last.GetPowerKw() != 0 || d1.Last == nil {
		t.Errorf("offline device lost its last reading")
	}
	ps.apply(reading("s1", "d1", 2, 1), t0+40_000)
	d1 = device(t, ps, "s1", "d1")
	if d1.Offline || d1.HeadroomDischargeKw != 4 {
		t.Errorf("d1 after a new reading = %v, want online with 4 kW discharge headroom", d1)
	}
	// The site's devices keep their own deadlines: d2 (last heard at 20 s)
	// goes at 50 s, d1 (heard again at 40 s) only at 70 s.
	if n := ps.markOffline(t0 + 50_001); n != 1 || !device(t, ps, "s1", "d2").Offline || device(t, ps, "s1", "d1").Offline {
		t.Errorf("at 50 s: %d changed, d2 offline %v, d1 offline %v; want 1, true, false",
			n, device(t, ps, "s1", "d2").Offline, device(t, ps, "s1", "d1").Offline)
	}
	if n := ps.markOffline(t0 + 70_001); n != 1 || !device(t, ps, "s1", "d1").Offline {
		t.Errorf("at 70 s: %d changed, d1 offline %v; want 1, true", n, device(t, ps, "s1", "d1").Offline)
	}
	if len(ps.silence) != 0 {
		t.Errorf("%d silence entries with every device offline, want 0", len(ps.silence))
	}
}

func TestFlushAndRestore(t *testing.T) {
	ps := newPartState(3, testTwin)
	for i, dev := range []string{"d3", "d1", "d2"} {
		ps.apply(reading("s1", dev, 1, float64(i)), 1000)
	}
	ps.apply(reading("s2", "d9", 2, 7), 1000)
	ps.apply(reading("s2", "d9", 2, 7), 1000)
	ps.acct.NextOffset, ps.acct.Consumed = 42, 5
	recs, err := ps.flushRecords(2000, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || string(recs[2].key) != "p/3" {
		t.Fatalf("records %v, want 2 sites then p/3", keys(recs))
	}
	ps.flushed()
	if ps.pending() {
		t.Error("pending after flushed")
	}

	re := newPartState(3, testTwin)
	re.restore("s/gone", mustSite(t, "gone"))
	for _, r := range recs {
		if err := re.restore(string(r.key), r.value); err != nil {
			t.Fatal(err)
		}
	}
	re.restore("s/gone", nil) // tombstone
	if len(re.sites) != 2 || re.devices != 4 {
		t.Fatalf("restored %d sites, %d devices; want 2, 4", len(re.sites), re.devices)
	}
	if re.acct.NextOffset != 42 || re.acct.Consumed != 5 || re.acct.HighWaterMark != 50 || re.acct.Applied != 4 || re.acct.Duplicates != 1 {
		t.Errorf("restored acct = %v", re.acct)
	}
	var ids []string
	for _, d := range re.sites["s1"].devices {
		ids = append(ids, d.id)
	}
	if fmt.Sprint(ids) != "[d1 d2 d3]" {
		t.Errorf("devices %v, want sorted", ids)
	}
	for id, s := range ps.sites {
		for _, d := range s.devices {
			if got, want := device(t, re, id, d.id), device(t, ps, id, d.id); !proto.Equal(got, want) {
				t.Errorf("%s/%s restored %v, want %v", id, d.id, got, want)
			}
		}
	}
	// A restored twin keeps deduplicating.
	if re.apply(reading("s2", "d9", 2, 7), 3000) != outcomeDuplicate {
		t.Error("restored twin applied a duplicate")
	}
}

func keys(recs []stateRecord) []string {
	var k []string
	for _, r := range recs {
		k = append(k, string(r.key))
	}
	return k
}

func mustSite(t *testing.T, id string) []byte {
	t.Helper()
	b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: &vppv1.SiteState{
		SiteId: id, Devices: []*vppv1.DeviceState{{Last: reading(id, "x", 1, 0)}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkApply(b *testing.B) {
	const devices = 10_000
	ps := newPartState(0, testTwin)
	// Two readings per device, used in turn: the twin keeps the one it
	// applied last, so the benchmark renumbers the other.
	var rs [2][]*vppv1.Reading
	for k := range rs {
		rs[k] = make([]*vppv1.Reading, devices)
		for i := range rs[k] {
			rs[k][i] = reading(fmt.Sprintf("site-%04d", i/10), fmt.Sprintf("dev-%05d", i), 1, 1)
		}
	}
	for i := range devices {
		ps.apply(rs[0][i], 0)
	}
	seq := make([]uint64, devices)
	for i := range seq {
		seq[i] = 1
	}
	before := ps.acct.Applied
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d := i % devices
		seq[d]++
		r := rs[(seq[d]+1)%2][d]
		r.Seq = seq[d]
		ps.apply(r, int64(i))
		if len(ps.dirty) > 1000 {
			ps.flushed()
		}
	}
	b.StopTimer()
	if got := ps.acct.Applied - before; got != uint64(b.N) {
		b.Fatalf("applied %d of %d readings", got, b.N)
	}
}

// refRecord is how record worked before it parsed readings itself:
// proto.Unmarshal, then apply.
func refRecord(ps *partState, offset int64, value []byte, nowMs int64) (tsMs int64, applied bool) {
	ps.acct.Consumed++
	ps.acct.NextOffset = offset + 1
	ps.acctDirt = true
	r := &vppv1.Reading{}
	if err := proto.Unmarshal(value, r); err != nil || r.GetDeviceId() == "" || r.GetSiteId() == "" {
		ps.acct.Undecodable++
		return 0, false
	}
	return r.GetTsMs(), ps.apply(r, nowMs) == outcomeApplied
}

// sameState reports how a and b differ ("" when they hold the same twins
// and accounting).
func sameState(a, b *partState) string {
	if !proto.Equal(a.acct, b.acct) || a.devices != b.devices || len(a.sites) != len(b.sites) || len(a.dirty) != len(b.dirty) {
		return fmt.Sprintf("acct %v / %v, devices %d / %d, sites %d / %d", a.acct, b.acct, a.devices, b.devices, len(a.sites), len(b.sites))
	}
	for id, sa := range a.sites {
		sb := b.sites[id]
		if sb == nil || sa.id != sb.id || sa.substation != sb.substation || sa.region != sb.region || len(sa.devices) != len(sb.devices) {
			return fmt.Sprintf("site %q differs", id)
		}
		for i := range sa.devices {
			da, db := sa.devices[i], sb.devices[i]
			if da != db && !(da.id == db.id && fmt.Sprint(da) == fmt.Sprint(db)) { // NaN != NaN
				return fmt.Sprintf("site %q device %d: %+v / %+v", id, i, da, db)
			}
		}
	}
	return ""
}

func TestRecordMatchesUnmarshalApply(t *testing.T) {
	got, want := newPartState(0, testTwin), newPartState(0, testTwin)
	var values [][]byte
	for i, seq := range []uint64{1, 2, 2, 5, 3, 6} {
		for _, dev := range []string{"d2", "d1", "d3"} {
			r := reading(fmt.Sprintf("s%d", i%2), dev, seq, float64(seq))
			r.SubstationId = fmt.Sprintf("sub-%d", i%3) // a site's substation changes
			values = append(values, mustMarshal(t, r))
		}
	}
	values = append(values, nil, []byte{0xff}, []byte{0x0a, 0x01, 0xff}, mustMarshal(t, &vppv1.Reading{DeviceId: "x"}))
	for i, v := range values {
		ts1, ok1 := got.record(int64(i), v, int64(i)*100)
		ts2, ok2 := refRecord(want, int64(i), v, int64(i)*100)
		if ts1 != ts2 || ok1 != ok2 {
			t.Fatalf("record %d: (%d, %v), reference (%d, %v)", i, ts1, ok1, ts2, ok2)
		}
		if d := sameState(got, want); d != "" {
			t.Fatalf("after record %d: %s", i, d)
		}
	}
}

// FuzzRecord: record on any bytes does what proto.Unmarshal and apply did.
func FuzzRecord(f *testing.F) {
	f.Add(mustMarshal(f, reading("s1", "d1", 1, 1)))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, want := newPartState(0, testTwin), newPartState(0, testTwin)
		for _, ps := range []*partState{got, want} {
			ps.apply(reading("s1", "d1", 1, 1), 0)
		}
		ts1, ok1 := got.record(1, v, 1000)
		ts2, ok2 := refRecord(want, 1, v, 1000)
		if ts1 != ts2 || ok1 != ok2 {
			t.Fatalf("record: (%d, %v), reference (%d, %v)", ts1, ok1, ts2, ok2)
		}
		if d := sameState(got, want); d != "" {
			t.Fatal(d)
		}
	})
}

func mustMarshal(t testing.TB, r *vppv1.Reading) []byte {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecordAllocs: a reading of a known device allocates nothing, and
// record keeps nothing of the bytes it was given.
func TestRecordAllocs(t *testing.T) {
	ps := newPartState(0, testTwin)
	r := reading("site-1", "dev-1", 1, 1)
	v := mustMarshal(t, r)
	ps.record(0, v, 0)
	seq := uint64(1)
	n := testing.AllocsPerRun(100, func() {
		seq++
		r.Seq = seq
		v, _ = proto.MarshalOptions{}.MarshalAppend(v[:0], r)
		if _, ok := ps.record(int64(seq), v, 0); !ok {
			t.Fatal("not applied")
		}
	})
	if n != 0 && !raceEnabled {
		t.Fatalf("record allocates %v times per known device", n)
	}
	for i := range v {
		v[i] = 'x' // the twin must not change
	}
	if s := ps.sites["site-1"]; s == nil || s.devices[0].id != "dev-1" || s.substation != "sub-1" || s.region != "north" {
		t.Fatalf("twin kept the record's bytes: %+v", s)
	}
}

// refFlushRecords is how flushRecords built the records before it reused
// its messages and buffer.
func refFlushRecords(ps *partState, nowMs, hwm int64) [][]byte {
	var out [][]byte
	for _, s := range ps.dirty {
		states := make([]*vppv1.DeviceState, len(s.devices))
		for i := range s.devices {
			states[i] = &vppv1.DeviceState{}
			s.devices[i].fill(states[i], s, &ps.cfg)
		}
		b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: &vppv1.SiteState{
			SiteId: s.id, SubstationId: s.substation, RegionId: s.region,
			Devices: recordDevices(states), UpdatedMs: nowMs, Partition: ps.id, ThroughOffset: ps.pos,
		}}})
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm
	}
	ps.acct.UpdatedMs = nowMs
	b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Partition{Partition: ps.acct}})
	if err != nil {
		panic(err)
	}
	return append(out, b)
}

// TestFlushRecordsFormat: the state records are byte for byte what
// proto.Marshal made of freshly built messages, flush after flush, with
// sites of different sizes (the reused messages and buffer carry nothing
// over).
func TestFlushRecordsFormat(t *testing.T) {
	ps := newPartState(2, testTwin)
	for round := range 4 {
		for site := range 5 {
			for dev := range (site*7+round*3)%11 + 1 {
				r := reading(fmt.Sprintf("s%d", site), fmt.Sprintf("d%02d", dev), uint64(round+1), float64(dev)-2.5)
				r.Alarms = uint32(round * dev)
				r.RegionId = fmt.Sprintf("r%d", round%2)
				ps.apply(r, int64(round*1000+dev))
			}
		}
		if round == 2 {
			ps.markOffline(1_000_000)
		}
		nowMs := int64(10_000 + round)
		want := refFlushRecords(ps, nowMs, int64(99+round))
		recs, err := ps.flushRecords(nowMs, int64(99+round))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(recs), len(want))
		}
		for i, r := range recs {
			if !bytes.Equal(r.value, want[i]) {
				t.Fatalf("round %d: record %s differs from proto.Marshal", round, r.key)
			}
		}
		if round%2 == 0 {
			ps.flushed()
		}
	}
}

// BenchmarkRecord measures record on serialized readings: decode, twin
// update, accounting. Like BenchmarkApply: 10,000 devices, 10 per site,
// each reading one seq above the device's last.
func BenchmarkRecord(b *testing.B) {
	const devices = 10_000
	ps := newPartState(0, testTwin)
	// The bytes of each device's reading without its seq; the seq is
	// appended per record (field order does not matter on the wire).
	prefix := make([][]byte, devices)
	for i := range prefix {
		r := reading(fmt.Sprintf("site-%04d", i/10), fmt.Sprintf("dev-%05d", i), 1, 1)
		r.TemperatureC, r.VoltageV, r.CurrentA = 25, 400, 2.5
		ps.apply(r, 0)
		r.Seq = 0
		m := mustMarshal(b, r)
		prefix[i] = append(make([]byte, 0, len(m)+16), m...)
	}
	seq := make([]uint64, devices)
	for i := range seq {
		seq[i] = 1
	}
	before := ps.acct.Applied
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d := i % devices
		seq[d]++
		v := protowire.AppendVarint(append(prefix[d], 5<<3), seq[d])
		if _, ok := ps.record(int64(i), v, int64(i)); !ok {
			b.Fatal("not applied")
		}
		if len(ps.dirty) > 1000 {
			ps.flushed()
		}
	}
	b.StopTimer()
	if got := ps.acct.Applied - before; got != uint64(b.N) {
		b.Fatalf("applied %d of %d readings", got, b.N)
	}
}

// BenchmarkStateEncode measures flushRecords for 100 dirty sites of 40
// devices: building and serializing their SiteState records, per device.
func BenchmarkStateEncode(b *testing.B) {
	const sites, perSite = 100, 40
	ps := newPartState(0, testTwin)
	for i := range sites * perSite {
		r := reading(fmt.Sprintf("site-%04d", i/perSite), fmt.Sprintf("dev-%05d", i), 7, float64(i%11)-5)
		r.TemperatureC, r.VoltageV, r.CurrentA, r.Alarms = 25, 400, 2.5, uint32(i%3)
		ps.apply(r, 1000)
	}
	if len(ps.dirty) != sites {
		b.Fatalf("%d dirty sites", len(ps.dirty))
	}
	var bytes int
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		recs, err := ps.flushRecords(int64(i), 0) // the dirty set stays
		if err != nil {
			b.Fatal(err)
		}
		bytes = 0
		for _, r := range recs {
			bytes += len(r.value)
		}
	}
	b.StopTimer()
	n := float64(b.N) * sites * perSite
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/device")
	b.ReportMetric(float64(bytes)/(sites*perSite), "B/device-encoded")
}

// TestTakeSettle checks the bookkeeping of a publication in flight: a site
// changed while its previous state is being published is published again,
// a site whose publication failed is dirty again, and a published site
// that did not change is not.
func TestTakeSettle(t *testing.T) {
	dirtyIDs := func(ps *partState) []string {
		var ids []string
		for _, s := range ps.dirty {
			ids = append(ids, s.id)
		}
		slices.Sort(ids)
		return ids
	}
	ps := newPartState(0, testTwin)
	ps.apply(reading("s1", "d1", 1, 1), 1000)
	ps.apply(reading("s2", "d2", 1, 1), 1000)
	if _, err := ps.flushRecords(1000, 0); err != nil {
		t.Fatal(err)
	}
	ps.take()
	if ps.pending() {
		t.Fatalf("pending after take: dirty %v", dirtyIDs(ps))
	}
	ps.apply(reading("s1", "d1", 2, 2), 1100) // while the publication is in flight
	ps.settle(true)
	if got := dirtyIDs(ps); !slices.Equal(got, []string{"s1"}) || !ps.pending() {
		t.Fatalf("after success: dirty %v, want [s1]", got)
	}

	if _, err := ps.flushRecords(1200, 0); err != nil {
		t.Fatal(err)
	}
	ps.take()
	ps.apply(reading("s2", "d2", 2, 2), 1300)
	ps.settle(false)
	if got := dirtyIDs(ps); !slices.Equal(got, []string{"s1", "s2"}) || !ps.acctDirt {
		t.Fatalf("after failure: dirty %v (partition record dirty %v), want [s1 s2] and true", got, ps.acctDirt)
	}
}
