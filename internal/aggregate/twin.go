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

// siteTwin is the twin of one site: its devices, each the DeviceState that
// is published as is, kept sorted by device ID.
type siteTwin struct {
	id, substation, region string
	byID                   map[string]*vppv1.DeviceState
	devices                []*vppv1.DeviceState // sorted by device ID
	dirty                  bool
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
		s = &siteTwin{id: r.GetSiteId(), byID: make(map[string]*vppv1.DeviceState)}
		ps.sites[s.id] = s
	}
	s.substation, s.region = r.GetSubstationId(), r.GetRegionId()
	d := s.byID[r.GetDeviceId()]
	if d == nil {
		d = &vppv1.DeviceState{}
		s.byID[r.GetDeviceId()] = d
		i, _ := slices.BinarySearchFunc(s.devices, r.GetDeviceId(), func(e *vppv1.DeviceState, id string) int {
			return strings.Compare(e.GetLast().GetDeviceId(), id)
		})
		s.devices = slices.Insert(s.devices, i, d)
		ps.devices++
	}
	ps.markDirty(s)
	last := d.GetLast().GetSeq()
	if d.Last != nil && r.GetSeq() <= last {
		d.Duplicates++
		ps.acct.Duplicates++
		return outcomeDuplicate
	}
	if seq := r.GetSeq(); seq > last+1 {
		d.Gaps += seq - last - 1
		ps.acct.Gaps += seq - last - 1
	}
	d.Last = r
	d.AppliedMs = nowMs
	d.Offline = false
	d.Applied++
	d.HeadroomDischargeKw, d.HeadroomChargeKw = Headroom(r, ps.cfg.reserve, ps.cfg.horizon)
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
		for _, d := range s.devices {
			if !d.Offline && d.AppliedMs < limit {
				d.Offline = true
				d.HeadroomDischargeKw, d.HeadroomChargeKw = 0, 0
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
			Devices:      s.devices,
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
			byID: make(map[string]*vppv1.DeviceState, len(ss.GetDevices()))}
		for _, d := range ss.GetDevices() {
			did := d.GetLast().GetDeviceId()
			if did == "" || s.byID[did] != nil {
				continue
			}
			s.byID[did] = d
			s.devices = append(s.devices, d)
		}
		slices.SortFunc(s.devices, func(a, b *vppv1.DeviceState) int {
			return strings.Compare(a.GetLast().GetDeviceId(), b.GetLast().GetDeviceId())
		})
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
