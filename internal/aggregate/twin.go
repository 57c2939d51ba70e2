package aggregate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/wire"
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
	// holdCaptures is how many captures a published site waits before it
	// is published again (the state interval in flush intervals); 0 or 1
	// publishes every change at the next capture.
	holdCaptures uint32
}

// siteTwin is the twin of one site: its devices, kept sorted by device ID.
// The site's own IDs are held once here, not per device.
type siteTwin struct {
	id, substation, region string
	devices                []twin   // sorted by device ID
	sub                    *subSums // the sums its devices count in
	// through is the telemetry offset below which the site's last
	// published state reflects every record (SiteState.through_offset).
	through int64
	// lastPub is the capture that last took the site for publication, 0
	// before any: the site waits for capture lastPub+holdCaptures.
	lastPub uint32
	dirty   bool
	// watched is set while the site has an entry in the silence heap.
	watched bool
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
	applied, duplicates, gaps               uint64
	alarms                                  uint32
	mode                                    vppv1.Mode
	offline                                 bool
	// sp is what the device's last reading says about dispatch, nil when
	// it reported no setpoint (most devices most of the time: kept out of
	// line, it costs 8 bytes a device instead of 40).
	sp *reportedSetpoint
	// asg is the setpoint this aggregator holds for the device (nil when
	// none: the device is on local control as far as vpp is concerned).
	asg *assignment
}

// reportedSetpoint is the setpoint a device's reading says it follows (or
// refused, or saw end) and what it does with it.
type reportedSetpoint struct {
	id     string
	seq    uint64
	kw     float64
	state  vppv1.SetpointState
	reason vppv1.SetpointReason
}

// setpoint returns what d's last reading says about dispatch (the zero
// value when it reported no setpoint).
func (d *twin) setpoint() reportedSetpoint {
	if d.sp == nil {
		return reportedSetpoint{}
	}
	return *d.sp
}

// headroom is how much more d could discharge and absorb now (kW, see
// headroom), 0 when offline. Derived from the twin's values on demand, not
// stored: the same inputs give the same figures wherever they are summed.
func (d *twin) headroom(cfg *twinConfig) (dischargeKW, chargeKW float64) {
	if d.offline {
		return 0, 0
	}
	return headroom(d.mode, d.soc, d.capacity, d.maxDischarge, d.maxCharge, d.power, cfg.reserve, cfg.horizon)
}

// find returns the index of device id in s.devices, or where to insert it.
func (s *siteTwin) find(id string) (int, bool) {
	lo, hi := 0, len(s.devices)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.devices[m].id < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.devices) && s.devices[lo].id == id
}

// findBytes is find for an ID as bytes (the comparisons do not allocate).
func (s *siteTwin) findBytes(id []byte) (int, bool) {
	lo, hi := 0, len(s.devices)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.devices[m].id < string(id) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.devices) && s.devices[lo].id == string(id)
}

// setReading copies r's values (not its IDs) into d.
func (d *twin) setReading(r *wire.Reading) {
	d.seq, d.tsMs = r.Seq, r.TsMs
	d.soc, d.soh, d.power = r.SocPct, r.SohPct, r.PowerKw
	d.voltage, d.current, d.temp = r.VoltageV, r.CurrentA, r.TemperatureC
	d.capacity, d.maxCharge, d.maxDischarge = r.CapacityKwh, r.MaxChargeKw, r.MaxDischargeKw
	d.alarms, d.mode = r.Alarms, r.Mode
	if len(r.SetpointID) == 0 && r.SetpointSeq == 0 && r.SetpointKw == 0 &&
		r.SetpointState == vppv1.SetpointState_SETPOINT_STATE_NONE &&
		r.SetpointReason == vppv1.SetpointReason_SETPOINT_REASON_NONE {
		d.sp = nil
		return
	}
	if d.sp == nil {
		d.sp = &reportedSetpoint{}
	}
	if string(r.SetpointID) != d.sp.id { // compared without allocating
		d.sp.id = string(r.SetpointID)
	}
	d.sp.seq, d.sp.kw, d.sp.state, d.sp.reason = r.SetpointSeq, r.SetpointKw, r.SetpointState, r.SetpointReason
}

// fill writes d as a DeviceState of site s into st, reusing st and its
// Reading (so a caller can fold many devices without allocating).
func (d *twin) fill(st *vppv1.DeviceState, s *siteTwin, cfg *twinConfig) {
	r := st.Last
	if r == nil {
		r = &vppv1.Reading{}
	}
	d.reading(r, s)
	dis, ch := d.headroom(cfg)
	*st = vppv1.DeviceState{
		Last: r, AppliedMs: d.appliedMs, Offline: d.offline,
		Applied: d.applied, Duplicates: d.duplicates, Gaps: d.gaps,
		HeadroomDischargeKw: dis, HeadroomChargeKw: ch,
	}
}

// reading writes d's last reading, of site s, into r.
func (d *twin) reading(r *vppv1.Reading, s *siteTwin) {
	*r = vppv1.Reading{
		DeviceId: d.id, SiteId: s.id, SubstationId: s.substation, RegionId: s.region,
		Seq: d.seq, TsMs: d.tsMs, SocPct: d.soc, SohPct: d.soh, PowerKw: d.power,
		VoltageV: d.voltage, CurrentA: d.current, TemperatureC: d.temp,
		CapacityKwh: d.capacity, MaxChargeKw: d.maxCharge, MaxDischargeKw: d.maxDischarge,
		Mode: d.mode, Alarms: d.alarms,
	}
	if sp := d.sp; sp != nil {
		r.SetpointId, r.SetpointSeq, r.SetpointKw, r.SetpointState, r.SetpointReason = sp.id, sp.seq, sp.kw, sp.state, sp.reason
	}
}

// twinOf is the twin of a published DeviceState.
func twinOf(st *vppv1.DeviceState) twin {
	d := twin{
		id: st.GetLast().GetDeviceId(), appliedMs: st.GetAppliedMs(), offline: st.GetOffline(),
		applied: st.GetApplied(), duplicates: st.GetDuplicates(), gaps: st.GetGaps(),
	}
	var v wire.Reading
	v.SetValues(st.GetLast())
	v.SetpointID = []byte(st.GetLast().GetSetpointId())
	d.setReading(&v)
	return d
}

// partState is the twin state of one telemetry partition: its sites and its
// accounting. One ConsumeClaim goroutine mutates it; mu guards the fields
// that Stats reads (counters, devices, sites, hwm, restored).
type partState struct {
	mu       sync.Mutex
	id       int32
	cfg      twinConfig
	sites    map[string]*siteTwin
	subs     map[subKey]*subSums // per substation, over the partition's devices
	silence  silenceHeap         // when a site's online devices may go offline unless heard from
	dirty    []*siteTwin
	taken    []*siteTwin           // dirty sites whose state is being published
	acct     *vppv1.PartitionState // counters and next_offset
	acctDirt bool
	// held are the dirty sites that wait for a later capture (published
	// less than the state interval ago), in a wheel by the capture that
	// takes them: held[c % len(held)]. nil without a state interval.
	held [][]*siteTwin
	// captures counts the captures of this claim; pos is the offset after
	// the last telemetry record applied, replayed ones included, and
	// posAt[c % len(posAt)] its value at capture c, for replay_from.
	captures uint32
	pos      int64
	posAt    []int64
	devices  int
	restored bool
	// assigned is set while any device of the partition holds a setpoint
	// (the dispatch engine skips partitions without work).
	assigned bool
	done     chan struct{} // closed when the owning ConsumeClaim returned
	enc      stateEncoder
}

// stateEncoder is the scratch space of flushRecords, reused from flush to
// flush.
type stateEncoder struct {
	reading *vppv1.Reading // one device's, while its site is encoded
	buf     []byte         // the serialized records
	out     []stateRecord
}

// maxKeptEncodeBuffer bounds the encoding buffer a partition keeps between
// flushes; a flush that needs more allocates it.
const maxKeptEncodeBuffer = 8 << 20

func newPartState(p int32, cfg twinConfig) *partState {
	return &partState{
		id:    p,
		cfg:   cfg,
		sites: make(map[string]*siteTwin),
		subs:  make(map[subKey]*subSums),
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
// (or owns the state exclusively). The twin keeps r's ID strings, not r.
func (ps *partState) apply(r *vppv1.Reading, nowMs int64) outcome {
	s := ps.sites[r.GetSiteId()]
	if s == nil {
		s = &siteTwin{id: r.GetSiteId()}
		ps.sites[s.id] = s
	}
	if s.sub == nil || s.substation != r.GetSubstationId() || s.region != r.GetRegionId() {
		ps.detach(s)
		s.substation, s.region = r.GetSubstationId(), r.GetRegionId()
		ps.attach(s)
	}
	i, found := s.find(r.GetDeviceId())
	var v wire.Reading
	v.SetValues(r)
	return ps.applyAt(s, i, found, r.GetDeviceId(), &v, nowMs)
}

// applyWire is apply for a reading decoded by wire.Parse. It allocates only
// for what the twins did not hold yet: a new site, a new device, a site's
// changed substation or region. It keeps nothing of r's bytes.
func (ps *partState) applyWire(r *wire.Reading, nowMs int64) outcome {
	s := ps.sites[string(r.SiteID)]
	if s == nil {
		s = &siteTwin{id: string(r.SiteID)}
		ps.sites[s.id] = s
	}
	if s.sub == nil || s.substation != string(r.SubstationID) || s.region != string(r.RegionID) {
		ps.detach(s)
		if s.substation != string(r.SubstationID) {
			s.substation = string(r.SubstationID)
		}
		if s.region != string(r.RegionID) {
			s.region = string(r.RegionID)
		}
		ps.attach(s)
	}
	i, found := s.findBytes(r.DeviceID)
	id := ""
	if !found {
		id = string(r.DeviceID)
	}
	return ps.applyAt(s, i, found, id, r, nowMs)
}

// applyAt folds the values of a reading into device i of site s (found
// there, or to be inserted at i with ID id).
func (ps *partState) applyAt(s *siteTwin, i int, found bool, id string, r *wire.Reading, nowMs int64) outcome {
	if !found {
		if len(s.devices) == cap(s.devices) {
			// Grow by an eighth, not append's doubling: twins are most of
			// an aggregator's memory and sites rarely gain devices.
			grown := make([]twin, len(s.devices), len(s.devices)+len(s.devices)/8+1)
			copy(grown, s.devices)
			s.devices = grown
		}
		s.devices = slices.Insert(s.devices, i, twin{id: id})
		ps.devices++
	}
	d := &s.devices[i]
	ps.markDirty(s)
	if found && r.Seq <= d.seq {
		d.duplicates++
		ps.acct.Duplicates++
		return outcomeDuplicate
	}
	if seq := r.Seq; seq > d.seq+1 {
		d.gaps += seq - d.seq - 1
		ps.acct.Gaps += seq - d.seq - 1
	}
	if found {
		s.sub.add(d.contribution(&ps.cfg), -1)
	}
	d.setReading(r)
	d.appliedMs = nowMs
	wasSilent := !found || d.offline
	d.offline = false
	d.applied++
	s.sub.add(d.contribution(&ps.cfg), 1)
	if wasSilent {
		ps.watch(s)
	}
	ps.acct.Applied++
	return outcomeApplied
}

// record accounts for the telemetry record at offset with value, decoding and
// applying it; it returns the reading's timestamp when the reading was
// applied (not a duplicate, not undecodable). The caller holds mu and has
// already skipped offsets below acct.NextOffset. Nothing of value is kept.
func (ps *partState) record(offset int64, value []byte, nowMs int64) (tsMs int64, applied bool) {
	ps.acct.Consumed++
	ps.acct.NextOffset = offset + 1
	ps.pos = offset + 1
	ps.acctDirt = true
	// wire.Parse fails exactly where proto.Unmarshal into a vppv1.Reading
	// fails (invalid UTF-8 included).
	var r wire.Reading
	if err := r.Parse(value); err != nil || len(r.DeviceID) == 0 || len(r.SiteID) == 0 {
		ps.acct.Undecodable++
		return 0, false
	}
	return r.TsMs, ps.applyWire(&r, nowMs) == outcomeApplied
}

// markDirty queues s for publication: at the next capture, or, when it
// was taken less than holdCaptures captures ago, at capture
// lastPub+holdCaptures, so that a busy site is written once per state
// interval, not once per flush. O(1).
func (ps *partState) markDirty(s *siteTwin) {
	if s.dirty {
		return
	}
	s.dirty = true
	hold := ps.cfg.holdCaptures
	if hold < 2 || s.lastPub == 0 || ps.captures+1 >= s.lastPub+hold {
		ps.dirty = append(ps.dirty, s)
		return
	}
	if ps.held == nil {
		ps.held = make([][]*siteTwin, hold+1)
	}
	slot := (s.lastPub + hold) % uint32(len(ps.held))
	ps.held[slot] = append(ps.held[slot], s)
}

// beginCapture starts capture number ps.captures+1: the held sites due now
// (every held site when all is set: the last capture of a claim) join the
// dirty set, and the partition record's replay_from is set to the offset
// below which every change is in a site state published by now or by this
// capture. The caller holds mu.
func (ps *partState) beginCapture(all bool) {
	ps.captures++
	c := ps.captures
	hold := max(ps.cfg.holdCaptures, 1)
	if ps.posAt == nil {
		ps.posAt = make([]int64, hold+1)
	}
	ps.posAt[c%uint32(len(ps.posAt))] = ps.pos
	for i := range ps.held {
		if all || uint32(i) == c%uint32(len(ps.held)) {
			ps.dirty = append(ps.dirty, ps.held[i]...)
			clear(ps.held[i])
			ps.held[i] = ps.held[i][:0]
		}
	}
	// A site still held after this capture was taken at capture c-hold+1
	// or later, so its unpublished changes were applied after the position
	// of that capture (of capture 1 while there were fewer).
	from := ps.pos
	if !all && hold > 1 {
		from = ps.posAt[max(1, int64(c)-int64(hold)+1)%int64(len(ps.posAt))]
	}
	if ps.acct.ReplayFrom != from {
		ps.acct.ReplayFrom = from
		ps.acctDirt = true
	}
}

// resumeAt is the telemetry offset a consumer of the partition resumes
// from: below it every change is in the state topic.
func resumeAt(acct *vppv1.PartitionState) int64 {
	if r := acct.GetReplayFrom(); r > 0 && r < acct.GetNextOffset() {
		return r
	}
	return acct.GetNextOffset()
}

// replay applies again a telemetry record below next_offset, after a
// restore whose site states lag it (see resumeAt): a record its site's
// restored state does not reflect yet is applied to the twin, its device
// counters included; the partition's counters, restored with it counted,
// stay. The caller holds mu.
func (ps *partState) replay(offset int64, value []byte, nowMs int64) {
	ps.pos = offset + 1
	var r wire.Reading
	if err := r.Parse(value); err != nil || len(r.DeviceID) == 0 || len(r.SiteID) == 0 {
		return
	}
	if s := ps.sites[string(r.SiteID)]; s != nil && offset < s.through {
		return // in the site's restored state
	}
	applied, dups, gaps := ps.acct.Applied, ps.acct.Duplicates, ps.acct.Gaps
	ps.applyWire(&r, nowMs)
	ps.acct.Applied, ps.acct.Duplicates, ps.acct.Gaps = applied, dups, gaps
}

// markOffline flags the devices not heard from for offlineAfter as offline
// (no headroom) and returns how many changed. The caller holds mu. It costs
// O(log n + devices of the site) per site whose deadline passed, not a
// scan: each site with an online device has one entry in the silence heap,
// due no later than the first of its online devices can go silent; a due
// entry flags the site's silent devices and is pushed again for the next
// deadline of those still online (at most about once per offlineAfter per
// site while its devices report). One entry a site, not a device, keeps
// the heap at a few bytes per device.
func (ps *partState) markOffline(nowMs int64) int {
	if ps.cfg.offlineAfter <= 0 {
		return 0
	}
	after := ps.cfg.offlineAfter.Milliseconds()
	n := 0
	for len(ps.silence) > 0 && ps.silence[0].due <= nowMs {
		e := ps.silence.pop()
		s := e.site
		if ps.sites[s.id] != s {
			continue // the site was replaced (restored again)
		}
		s.watched = false
		next := int64(0)
		for i := range s.devices {
			d := &s.devices[i]
			if d.offline {
				continue
			}
			if due := d.appliedMs + after + 1; due > nowMs {
				if next == 0 || due < next {
					next = due
				}
				continue
			}
			s.sub.add(d.contribution(&ps.cfg), -1)
			d.offline = true
			s.sub.add(d.contribution(&ps.cfg), 1)
			ps.markDirty(s)
			n++
		}
		if next != 0 {
			s.watched = true
			ps.silence.push(silenceEntry{due: next, site: s})
		}
	}
	return n
}

// watch puts a site with a device just heard from after silence (new,
// restored or back online) into the silence heap, unless it is there:
// an entry's due is then at or before that device's deadline, which is
// offlineAfter from now, the latest of any device's.
func (ps *partState) watch(s *siteTwin) {
	if ps.cfg.offlineAfter <= 0 || s.watched {
		return
	}
	due := int64(0)
	for i := range s.devices {
		if d := &s.devices[i]; !d.offline {
			if t := d.appliedMs + ps.cfg.offlineAfter.Milliseconds() + 1; due == 0 || t < due {
				due = t
			}
		}
	}
	if due != 0 {
		s.watched = true
		ps.silence.push(silenceEntry{due: due, site: s})
	}
}

// silenceEntry says that an online device of site can go offline at due
// (Unix ms) unless heard from since.
type silenceEntry struct {
	due  int64
	site *siteTwin
}

// silenceHeap is a binary min-heap of silenceEntry by due.
type silenceHeap []silenceEntry

func (h *silenceHeap) push(e silenceEntry) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].due <= q[i].due {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

func (h *silenceHeap) pop() silenceEntry {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = silenceEntry{}
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].due < q[m].due {
			m = l
		}
		if r < len(q) && q[r].due < q[m].due {
			m = r
		}
		if m == i {
			break
		}
		q[m], q[i] = q[i], q[m]
		i = m
	}
	*h = q
	return top
}

// pending reports whether a flush has anything to write.
func (ps *partState) pending() bool { return ps.acctDirt || len(ps.dirty) > 0 }

// stateRecord is one key and value for the state topic.
type stateRecord struct {
	key   []byte
	value []byte
}

// flushRecords returns the records to publish: every dirty site, then the
// partition record. The dirty set stays until flushed is called, so a failed
// publish is retried with the newer state on the next flush. The records
// (their values included) are valid until the next call.
func (ps *partState) flushRecords(nowMs, hwm int64) ([]stateRecord, error) {
	e := &ps.enc
	if e.reading == nil {
		e.reading = &vppv1.Reading{}
	}
	out := e.out[:0]
	buf := e.buf[:0]
	var opts proto.MarshalOptions
	for _, s := range ps.dirty {
		// The key goes into the buffer too: a site keeps no copy of it.
		start := len(buf)
		buf = append(append(buf, sitePrefix...), s.id...)
		key := buf[start:len(buf):len(buf)]
		start = len(buf)
		s.through = ps.pos
		buf = appendSiteRecord(buf, s, nowMs, ps.id, &ps.cfg, e.reading)
		out = append(out, stateRecord{key: key, value: buf[start:len(buf):len(buf)]})
	}
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm
	}
	ps.acct.UpdatedMs = nowMs
	start := len(buf)
	buf, err := opts.MarshalAppend(buf, &vppv1.StateRecord{Body: &vppv1.StateRecord_Partition{Partition: ps.acct}})
	if err != nil {
		return nil, fmt.Errorf("marshal partition %d: %w", ps.id, err)
	}
	out = append(out, stateRecord{key: []byte(PartitionKey(ps.id)), value: buf[start:len(buf):len(buf)]})
	e.out, e.buf = out, buf
	if cap(buf) > maxKeptEncodeBuffer {
		e.out, e.buf = nil, nil // let both go once the caller is done
	}
	return out, nil
}

// take marks the state flushRecords just encoded as being published: the
// dirty set empties, so changes from now on make their sites dirty again
// and are published by a later flush. settle ends the publication.
func (ps *partState) take() {
	for _, s := range ps.dirty {
		s.dirty = false
		s.lastPub = ps.captures
	}
	ps.taken = append(ps.taken[:0], ps.dirty...)
	clear(ps.dirty)
	ps.dirty = ps.dirty[:0]
	ps.acctDirt = false
}

// settle ends the publication that take started: after a failure its sites
// and the partition record are dirty again, so the next flush publishes
// them (with whatever changed since).
func (ps *partState) settle(ok bool) {
	if !ok {
		for _, s := range ps.taken {
			s.lastPub = 0 // not published: due at the next capture
			ps.markDirty(s)
		}
		ps.acctDirt = true
	}
	clear(ps.taken)
	ps.taken = ps.taken[:0]
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

// adopt takes the state restored into tmp and counts as restored. The
// caller holds mu.
func (ps *partState) adopt(tmp *partState) {
	ps.sites, ps.acct, ps.devices = tmp.sites, tmp.acct, tmp.devices
	ps.subs, ps.silence = tmp.subs, tmp.silence
	ps.dirty, ps.held = ps.dirty[:0], nil
	ps.pos = resumeAt(ps.acct)
	ps.restored = true
}

// restore folds one record of the state topic into the state: the last
// record of a key wins, a nil value (tombstone) deletes a site.
func (ps *partState) restore(key string, value []byte) error {
	switch {
	case strings.HasPrefix(key, sitePrefix):
		id := strings.TrimPrefix(key, sitePrefix)
		if old := ps.sites[id]; old != nil {
			ps.detach(old)
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
			devices: make([]twin, 0, len(ss.GetDevices())), through: ss.GetThroughOffset()}
		for _, d := range ss.GetDevices() {
			if d.GetLast().GetDeviceId() == "" {
				continue
			}
			s.devices = append(s.devices, twinOf(d))
		}
		slices.SortFunc(s.devices, func(a, b twin) int { return strings.Compare(a.id, b.id) })
		s.devices = slices.CompactFunc(s.devices, func(a, b twin) bool { return a.id == b.id })
		ps.sites[id] = s
		ps.attach(s)
		ps.watch(s)
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
