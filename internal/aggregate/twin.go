package aggregate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Key prefixes of the records in the state topic.
const (
	sitePrefix      = "s/"
	partitionPrefix = "p/"
)

// SiteKey is the state-topic key of a site's SiteState record.
func SiteKey(siteID string) string { return sitePrefix + siteID }

// PartitionKey is the state-topic key of a partition's PartitionState record.
func PartitionKey(p int32) string { return partitionPrefix + strconv.Itoa(int(p)) }

// twinConfig is what applying readings needs from the Config.
type twinConfig struct {
	offlineAfter time.Duration
	reserve      float64
	horizon      time.Duration
}

// siteTwin is the twin of one site: its devices, kept sorted by device ID.
// The site's own IDs are held once here, not per device.
type siteTwin struct {
	id, substation, region string
	devices                []twin // sorted by device ID
	dirty                  bool
}

// twin is the compact state of one device: the numbers of its last reading
// and its counters, without the protobuf overhead or the site's IDs (about
// 200 bytes a device where a DeviceState with its Reading held about 460).
// DeviceState protos are built from it only to publish.
type twin struct {
	id                                      string
	seq                                     uint64
	tsMs, appliedMs                         int64
	soc, soh, power, voltage, current, temp float64
	capacity, maxCharge, maxDischarge       float64
	headroomDischarge, headroomCharge       float64
	applied, duplicates, gaps               uint64
	alarms                                  uint32
	mode                                    vppv1.Mode
	offline                                 bool
}

// find returns the index of device id in s.devices, or where to insert it.
func (s *siteTwin) find(id string) (int, bool) {
	return slices.BinarySearchFunc(s.devices, id, func(d twin, id string) int { return strings.Compare(d.id, id) })
}

// setReading copies r's values into d.
func (d *twin) setReading(r *vppv1.Reading) {
	d.seq, d.tsMs = r.GetSeq(), r.GetTsMs()
	d.soc, d.soh, d.power = r.GetSocPct(), r.GetSohPct(), r.GetPowerKw()
	d.voltage, d.current, d.temp = r.GetVoltageV(), r.GetCurrentA(), r.GetTemperatureC()
	d.capacity, d.maxCharge, d.maxDischarge = r.GetCapacityKwh(), r.GetMaxChargeKw(), r.GetMaxDischargeKw()
	d.alarms, d.mode = r.GetAlarms(), r.GetMode()
}

// fill writes d as a DeviceState of site s into st, reusing st and its
// Reading (so a caller can fold many devices without allocating).
func (d *twin) fill(st *vppv1.DeviceState, s *siteTwin) {
	r := st.Last
	if r == nil {
		r = &vppv1.Reading{}
	}
	*r = vppv1.Reading{
		DeviceId: d.id, SiteId: s.id, SubstationId: s.substation, RegionId: s.region,
		Seq: d.seq, TsMs: d.tsMs, SocPct: d.soc, SohPct: d.soh, PowerKw: d.power,
		VoltageV: d.voltage, CurrentA: d.current, TemperatureC: d.temp,
		CapacityKwh: d.capacity, MaxChargeKw: d.maxCharge, MaxDischargeKw: d.maxDischarge,
		Mode: d.mode, Alarms: d.alarms,
	}
	*st = vppv1.DeviceState{
		Last: r, AppliedMs: d.appliedMs, Offline: d.offline,
		Applied: d.applied, Duplicates: d.duplicates, Gaps: d.gaps,
		HeadroomDischargeKw: d.headroomDischarge, HeadroomChargeKw: d.headroomCharge,
	}
}

// twinOf is the twin of a published DeviceState.
func twinOf(st *vppv1.DeviceState) twin {
	d := twin{
		id: st.GetLast().GetDeviceId(), appliedMs: st.GetAppliedMs(), offline: st.GetOffline(),
		applied: st.GetApplied(), duplicates: st.GetDuplicates(), gaps: st.GetGaps(),
		headroomDischarge: st.GetHeadroomDischargeKw(), headroomCharge: st.GetHeadroomChargeKw(),
	}
	d.setReading(st.GetLast())
	return d
}

// states returns the site's devices as DeviceState protos, sorted by ID.
func (s *siteTwin) states() []*vppv1.DeviceState {
	out := make([]*vppv1.DeviceState, len(s.devices))
	for i := range s.devices {
		out[i] = &vppv1.DeviceState{}
		s.devices[i].fill(out[i], s)
	}
	return out
}

// partState is the twin state of one telemetry partition: its sites and its
// accounting. One ConsumeClaim goroutine mutates it; mu guards the fields
// that Stats reads (counters, devices, sites, hwm, restored).
type partState struct {
	mu       sync.Mutex
	id       int32
	cfg      twinConfig
	sites    map[string]*siteTwin
	dirty    []*siteTwin
	acct     *vppv1.PartitionState // counters and next_offset
	acctDirt bool
	devices  int
	restored bool
	done     chan struct{} // closed when the owning ConsumeClaim returned
}

func newPartState(p int32, cfg twinConfig) *partState {
	return &partState{
		id:    p,
		cfg:   cfg,
		sites: make(map[string]*siteTwin),
		acct:  &vppv1.PartitionState{Partition: p},
		done:  make(chan struct{}),
	}
}

// outcome is what applying one reading did.
type outcome int

const (
	outcomeApplied outcome = iota
	outcomeDuplicate
)

// apply folds one reading into the twin of its device. The caller holds mu
// (or owns the state exclusively). The twin keeps r: callers must not reuse
// it.
func (ps *partState) apply(r *vppv1.Reading, nowMs int64) outcome {
	s := ps.sites[r.GetSiteId()]
	if s == nil {
		s = &siteTwin{id: r.GetSiteId()}
		ps.sites[s.id] = s
	}
	s.substation, s.region = r.GetSubstationId(), r.GetRegionId()
	i, found := s.find(r.GetDeviceId())
	if !found {
		if len(s.devices) == cap(s.devices) {
			// Grow by an eighth, not append's doubling: twins are most of
			// an aggregator's memory and sites rarely gain devices.
			grown := make([]twin, len(s.devices), len(s.devices)+len(s.devices)/8+1)
			copy(grown, s.devices)
			s.devices = grown
		}
		s.devices = slices.Insert(s.devices, i, twin{id: r.GetDeviceId()})
		ps.devices++
	}
	d := &s.devices[i]
	ps.markDirty(s)
	if found && r.GetSeq() <= d.seq {
		d.duplicates++
		ps.acct.Duplicates++
		return outcomeDuplicate
	}
	if seq := r.GetSeq(); seq > d.seq+1 {
		d.gaps += seq - d.seq - 1
		ps.acct.Gaps += seq - d.seq - 1
	}
	d.setReading(r)
	d.appliedMs = nowMs
	d.offline = false
	d.applied++
	d.headroomDischarge, d.headroomCharge = Headroom(r, ps.cfg.reserve, ps.cfg.horizon)
	ps.acct.Applied++
	return outcomeApplied
}

// record accounts for the telemetry record at offset with value, decoding and
// applying it; it returns the reading's timestamp when the reading was
// applied (not a duplicate, not undecodable). The caller holds mu and has
// already skipped offsets below acct.NextOffset.
func (ps *partState) record(offset int64, value []byte, nowMs int64) (tsMs int64, applied bool) {
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

func (ps *partState) markDirty(s *siteTwin) {
	if !s.dirty {
		s.dirty = true
		ps.dirty = append(ps.dirty, s)
	}
}

// markOffline flags the devices not heard from for offlineAfter as offline
// (no headroom) and returns how many changed. The caller holds mu.
func (ps *partState) markOffline(nowMs int64) int {
	if ps.cfg.offlineAfter <= 0 {
		return 0
	}
	limit := nowMs - ps.cfg.offlineAfter.Milliseconds()
	n := 0
	for _, s := range ps.sites {
		for i := range s.devices {
			d := &s.devices[i]
			if !d.offline && d.appliedMs < limit {
				d.offline = true
				d.headroomDischarge, d.headroomCharge = 0, 0
				ps.markDirty(s)
				n++
			}
		}
	}
	return n
}

// pending reports whether a flush has anything to write.
func (ps *partState) pending() bool { return ps.acctDirt || len(ps.dirty) > 0 }

// stateRecord is one key and value for the state topic.
type stateRecord struct {
	key   string
	value []byte
}

// flushRecords returns the records to publish: every dirty site, then the
// partition record. The dirty set stays until flushed is called, so a failed
// publish is retried with the newer state on the next flush.
func (ps *partState) flushRecords(nowMs, hwm int64) ([]stateRecord, error) {
	out := make([]stateRecord, 0, len(ps.dirty)+1)
	for _, s := range ps.dirty {
		rec := &vppv1.StateRecord{Body: &vppv1.StateRecord_Site{Site: &vppv1.SiteState{
			SiteId:       s.id,
			SubstationId: s.substation,
			RegionId:     s.region,
			Devices:      s.states(),
			UpdatedMs:    nowMs,
			Partition:    ps.id,
		}}}
		b, err := proto.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("marshal site %s: %w", s.id, err)
		}
		out = append(out, stateRecord{key: SiteKey(s.id), value: b})
	}
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm
	}
	ps.acct.UpdatedMs = nowMs
	b, err := proto.Marshal(&vppv1.StateRecord{Body: &vppv1.StateRecord_Partition{Partition: ps.acct}})
	if err != nil {
		return nil, fmt.Errorf("marshal partition %d: %w", ps.id, err)
	}
	return append(out, stateRecord{key: PartitionKey(ps.id), value: b}), nil
}

// flushed clears the dirty set after a successful publish.
func (ps *partState) flushed() {
	for _, s := range ps.dirty {
		s.dirty = false
	}
	clear(ps.dirty)
	ps.dirty = ps.dirty[:0]
	ps.acctDirt = false
}

// restore folds one record of the state topic into the state: the last
// record of a key wins, a nil value (tombstone) deletes a site.
func (ps *partState) restore(key string, value []byte) error {
	switch {
	case strings.HasPrefix(key, sitePrefix):
		id := strings.TrimPrefix(key, sitePrefix)
		if old := ps.sites[id]; old != nil {
			ps.devices -= len(old.devices)
			delete(ps.sites, id)
		}
		if value == nil {
			return nil
		}
		rec := &vppv1.StateRecord{}
		if err := proto.Unmarshal(value, rec); err != nil {
			return fmt.Errorf("decode state of site %s: %w", id, err)
		}
		ss := rec.GetSite()
		if ss == nil {
			return fmt.Errorf("state record %s: not a site", key)
		}
		s := &siteTwin{id: id, substation: ss.GetSubstationId(), region: ss.GetRegionId(),
			devices: make([]twin, 0, len(ss.GetDevices()))}
		for _, d := range ss.GetDevices() {
			if d.GetLast().GetDeviceId() == "" {
				continue
			}
			s.devices = append(s.devices, twinOf(d))
		}
		slices.SortFunc(s.devices, func(a, b twin) int { return strings.Compare(a.id, b.id) })
		s.devices = slices.CompactFunc(s.devices, func(a, b twin) bool { return a.id == b.id })
		ps.sites[id] = s
		ps.devices += len(s.devices)
	case key == PartitionKey(ps.id):
		if value == nil {
			ps.acct = &vppv1.PartitionState{Partition: ps.id}
			return nil
		}
		rec := &vppv1.StateRecord{}
		if err := proto.Unmarshal(value, rec); err != nil {
			return fmt.Errorf("decode state of partition %d: %w", ps.id, err)
		}
		if rec.GetPartition() == nil {
			return fmt.Errorf("state record %s: not a partition", key)
		}
		ps.acct = rec.GetPartition()
		ps.acct.Partition = ps.id
	}
	return nil
}
