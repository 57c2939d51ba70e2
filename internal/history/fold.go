package history

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Fold parameters.
const (
	// CarryForward is how long the last sample of a partition (or of an
	// ingest instance) stands for it. A partition with no newer sample
	// counts as missing, and every node it contributed to is unknown (NaN)
	// for that second rather than silently short of its share.
	CarryForward = 5 * time.Second
	// Grace is how long a second stays open for late samples: second s is
	// finalized once samples (or, when caught up, the clock) reach the end
	// of s plus Grace. Series therefore end about Grace behind real time.
	Grace = 1500 * time.Millisecond

	carryMs = int64(CarryForward / time.Millisecond)
	graceMs = int64(Grace / time.Millisecond)

	numNodeMetrics = int(Alarming) + 1
	numPipeMetrics = int(Lag-ReceivedPerSec) + 1
	// maxPending bounds the samples waiting for their second (only a clock
	// far ahead of the reader's could fill it; then they apply at once).
	maxPending = 1 << 16
	// sweepEvery is how often (in finalized seconds) nodes and sources not
	// seen for a window are dropped.
	sweepEvery = 64
)

// sums are the fixed-point totals of a node (or of one partial).
type sums struct {
	net, charge, discharge, energy, capacity, hd, hc int64
	devices, online, alarming                        int64
}

func (s *sums) add(b *sums) {
	s.net += b.net
	s.charge += b.charge
	s.discharge += b.discharge
	s.energy += b.energy
	s.capacity += b.capacity
	s.hd += b.hd
	s.hc += b.hc
	s.devices += b.devices
	s.online += b.online
	s.alarming += b.alarming
}

func (s *sums) sub(b *sums) {
	s.net -= b.net
	s.charge -= b.charge
	s.discharge -= b.discharge
	s.energy -= b.energy
	s.capacity -= b.capacity
	s.hd -= b.hd
	s.hc -= b.hc
	s.devices -= b.devices
	s.online -= b.online
	s.alarming -= b.alarming
}

func sumsOf(s *vppv1.SubstationSample) sums {
	return sums{
		net: s.GetNetMicroKw(), charge: s.GetChargeMicroKw(), discharge: s.GetDischargeMicroKw(),
		energy: s.GetEnergyMicroKwh(), capacity: s.GetCapacityMicroKwh(),
		hd: s.GetHeadroomDischargeMicroKw(), hc: s.GetHeadroomChargeMicroKw(),
		devices: int64(s.GetDevices()), online: int64(s.GetOnline()), alarming: int64(s.GetAlarming()),
	}
}

// node is the fleet, a region or a substation: its current totals over the
// latest samples of every partition and its per-second rings.
type node struct {
	sums    sums
	refs    int   // partials summed in now
	nanRow  int64 // second for which a missing partition makes it unknown
	lastRow int64 // last second it had a value
	vals    [numNodeMetrics][]float32
}

func newNode(w int64, row int64) *node {
	n := &node{lastRow: row, nanRow: -1}
	buf := make([]float32, int64(numNodeMetrics)*w)
	nan := float32(math.NaN())
	for i := range buf {
		buf[i] = nan
	}
	for m := range n.vals {
		n.vals[m] = buf[int64(m)*w : int64(m+1)*w : int64(m+1)*w]
	}
	return n
}

// write stores the node's value (or NaN) for second row at ring slot i.
func (n *node) write(i int64, row int64, known bool) {
	nan := float32(math.NaN())
	if !known || n.nanRow == row {
		for m := range n.vals {
			n.vals[m][i] = nan
		}
		return
	}
	n.lastRow = row
	s := &n.sums
	n.vals[PowerKW][i] = float32(fleet.FromMicro(s.net))
	n.vals[ChargeKW][i] = float32(fleet.FromMicro(s.charge))
	n.vals[DischargeKW][i] = float32(fleet.FromMicro(s.discharge))
	n.vals[EnergyKWh][i] = float32(fleet.FromMicro(s.energy))
	soc := nan
	if s.capacity > 0 {
		soc = float32(float64(s.energy) / float64(s.capacity) * 100)
	}
	n.vals[SoCPct][i] = soc
	n.vals[HeadroomDischargeKW][i] = float32(fleet.FromMicro(s.hd))
	n.vals[HeadroomChargeKW][i] = float32(fleet.FromMicro(s.hc))
	n.vals[Online][i] = float32(s.online)
	n.vals[Alarming][i] = float32(s.alarming)
}

// partial is one substation's share in one partition's latest sample.
type partial struct {
	sub, reg *node
	sums     sums
}

// numCounters is the number of counters of a source (partition or ingest
// instance).
const numCounters = 4

// counters are a source's cumulative counters: consumed, applied,
// duplicates, gaps for a partition; received, rejected (all reasons),
// published, acked for an ingest instance.
type counters [numCounters]uint64

// rateSpan is the span a rate is measured over: rates compare the latest
// sample with the newest one at least this much older, so that samples
// more frequent than once a second do not alias to 0 and bursts.
const rateSpan = 900 // ms

// rateHist is a source's last few samples' counters, for rates.
type rateHist struct {
	ts   [8]int64
	c    [8]counters
	n    int // entries
	head int // newest
}

func (h *rateHist) reset() { h.n = 0 }

func (h *rateHist) push(ts int64, c counters) {
	h.head = (h.head + 1) % len(h.ts)
	h.ts[h.head], h.c[h.head] = ts, c
	h.n = min(h.n+1, len(h.ts))
}

// ref returns the newest entry at least rateSpan older than ts, else the
// oldest one; ok is false when there is none.
func (h *rateHist) ref(ts int64) (refTs int64, c counters, ok bool) {
	for k := range h.n {
		i := (h.head - k + len(h.ts)) % len(h.ts)
		refTs, c, ok = h.ts[i], h.c[i], true
		if refTs <= ts-rateSpan {
			break
		}
	}
	return refTs, c, ok
}

// source is what is known of one partition or ingest instance: its latest
// sample's time and the rates derived from its counters.
type source struct {
	ts      int64
	started int64 // ingest: instance start, Unix ms
	hist    rateHist
	rates   [numCounters]float64
	hasRate bool
}

// update takes a newer sample's counters. A counter that went down reset:
// for an ingest instance (restarted, restartable) the rate counts from its
// start when that lies in the span; otherwise the span's rate is 0, never
// negative.
func (s *source) update(ts, started int64, c counters, restartable bool) {
	restarted := restartable && s.ts > 0 && started != s.started
	refTs, ref, ok := s.hist.ref(ts)
	if ok && !restarted {
		for i := range c {
			restarted = restarted || (restartable && c[i] < ref[i])
		}
	}
	switch {
	case restarted:
		for i := range c {
			s.rates[i] = 0
			if started > refTs && ts > started {
				s.rates[i] = rate(0, c[i], ts-started)
			}
		}
		s.hasRate = true
		s.hist.reset()
	case ok:
		reset := false
		for i := range c {
			s.rates[i] = rate(ref[i], c[i], ts-refTs)
			reset = reset || c[i] < ref[i]
		}
		s.hasRate = true
		if reset {
			s.hist.reset()
		}
	}
	s.hist.push(ts, c)
	s.ts, s.started = ts, started
}

// partSource is what is known of one telemetry partition: its latest
// sample.
type partSource struct {
	source
	lag      int64
	partials []partial
}

// pendingRec is a sample waiting for its second.
type pendingRec struct {
	ts     int64
	part   *vppv1.PartitionSample
	ingest *vppv1.IngestStats
}

// fold turns history records into per-second rows: for every second s and
// every partition p, the latest sample of p at the end of s (carried
// forward up to CarryForward) summed into substations, regions and the
// fleet, plus the pipeline rates and lag. Samples are applied in time
// order: a sample newer than the second being finalized waits in pending.
// Incremental: a sample costs O(its substations); a finalized second costs
// O(nodes + partitions' partials of missing partitions). Not safe for
// concurrent use.
type fold struct {
	w          int64 // ring length, seconds
	fleet      *node
	regions    map[string]*node
	subs       map[string]*node
	nodes      []*node
	parts      map[int32]*partSource
	ingest     map[string]*source
	pending    []pendingRec
	pipe       [numPipeMetrics][]float32
	cur        int64 // next second to finalize
	first      int64 // first second finalized (or to be)
	maxTs      int64 // newest sample time seen, ms
	sinceSweep int
}

func newFold(w int64, startSec int64) *fold {
	w = max(w, 2)
	f := &fold{
		w:       w,
		regions: make(map[string]*node),
		subs:    make(map[string]*node),
		parts:   make(map[int32]*partSource),
		ingest:  make(map[string]*source),
		cur:     startSec,
		first:   startSec,
	}
	f.fleet = newNode(w, startSec)
	f.nodes = append(f.nodes, f.fleet)
	nan := float32(math.NaN())
	buf := make([]float32, int64(numPipeMetrics)*w)
	for i := range buf {
		buf[i] = nan
	}
	for m := range f.pipe {
		f.pipe[m] = buf[int64(m)*w : int64(m+1)*w : int64(m+1)*w]
	}
	return f
}

// restart moves the start of an empty fold (nothing finalized, nothing
// added) to startSec.
func (f *fold) restart(startSec int64) {
	if f.cur == f.first && f.maxTs == 0 {
		f.cur, f.first = startSec, startSec
	}
}

// end is the last finalized second; ok is false when none is.
func (f *fold) end() (int64, bool) { return f.cur - 1, f.cur > f.first }

// addRecord folds one history record.
func (f *fold) addRecord(rec *vppv1.HistoryRecord) {
	switch b := rec.GetBody().(type) {
	case *vppv1.HistoryRecord_Partition:
		f.add(pendingRec{ts: b.Partition.GetTsMs(), part: b.Partition})
	case *vppv1.HistoryRecord_Ingest:
		f.add(pendingRec{ts: b.Ingest.GetUpdatedMs(), ingest: b.Ingest})
	}
}

func (f *fold) add(r pendingRec) {
	if r.ts <= 0 {
		return
	}
	f.maxTs = max(f.maxTs, r.ts)
	if r.ts < (f.cur+1)*1000 || len(f.pending) >= maxPending {
		f.apply(r)
		return
	}
	f.pending = append(f.pending, r)
}

func (f *fold) apply(r pendingRec) {
	switch {
	case r.part != nil:
		f.applyPartition(r.ts, r.part)
	case r.ingest != nil:
		f.applyIngest(r.ts, r.ingest)
	}
}

// rate is the per-second rate of a counter that went from prev to cur in dt
// ms; 0 when it went down (a reset is never a negative rate).
func rate(prev, cur uint64, dt int64) float64 {
	if cur < prev || dt <= 0 {
		return 0
	}
	return float64(cur-prev) * 1000 / float64(dt)
}

func (f *fold) applyPartition(ts int64, s *vppv1.PartitionSample) {
	p := f.parts[s.GetPartition()]
	if p == nil {
		p = &partSource{}
		f.parts[s.GetPartition()] = p
	}
	if ts <= p.ts {
		return // older than what we hold (e.g. the previous owner's last sample)
	}
	// Partition counters are restored with the state: one that steps back
	// means a new owner reprocesses records its predecessor had not made
	// durable; that span's rate is 0, never negative.
	p.update(ts, 0, counters{s.GetConsumed(), s.GetApplied(), s.GetDuplicates(), s.GetGaps()}, false)
	p.lag = max(0, s.GetLag())
	for i := range p.partials {
		pp := &p.partials[i]
		f.unref(pp)
	}
	p.partials = p.partials[:0]
	for _, ss := range s.GetSubstations() {
		pp := partial{sub: f.node(f.subs, ss.GetSubstationId()), reg: f.node(f.regions, ss.GetRegionId()), sums: sumsOf(ss)}
		pp.sub.sums.add(&pp.sums)
		pp.reg.sums.add(&pp.sums)
		f.fleet.sums.add(&pp.sums)
		pp.sub.refs++
		pp.reg.refs++
		f.fleet.refs++
		p.partials = append(p.partials, pp)
	}
}

// unref takes a partial out of its nodes' totals.
func (f *fold) unref(pp *partial) {
	pp.sub.sums.sub(&pp.sums)
	pp.reg.sums.sub(&pp.sums)
	f.fleet.sums.sub(&pp.sums)
	pp.sub.refs--
	pp.reg.refs--
	f.fleet.refs--
}

func (f *fold) node(m map[string]*node, id string) *node {
	n := m[id]
	if n == nil {
		n = newNode(f.w, f.cur)
		m[id] = n
		f.nodes = append(f.nodes, n)
	}
	return n
}

func (f *fold) applyIngest(ts int64, st *vppv1.IngestStats) {
	id := st.GetInstance()
	src := f.ingest[id]
	if src == nil {
		src = &source{}
		f.ingest[id] = src
	}
	if ts <= src.ts {
		return
	}
	var rejected uint64
	for _, n := range st.GetRejected() {
		rejected += n
	}
	src.update(ts, st.GetStartedMs(), counters{st.GetReceived(), rejected, st.GetPublished(), st.GetAcked()}, true)
}

// advance finalizes every second that ends at or before wm (Unix ms).
func (f *fold) advance(wm int64) {
	target := wm/1000 - 1 // last second to finalize: its end (target+1)*1000 <= wm
	if target < f.cur {
		return
	}
	if target-f.cur >= f.w {
		// Seconds more than a window old are never read: finalize only the
		// last window's worth, after applying what precedes it.
		skipTo := target - f.w + 1
		f.applyPendingBefore(skipTo * 1000)
		f.cur = skipTo
	}
	for ; f.cur <= target; f.cur++ {
		f.applyPendingBefore((f.cur + 1) * 1000)
		f.finalize(f.cur)
	}
}

// applyPendingBefore applies, in time order, the pending samples older
// than endMs.
func (f *fold) applyPendingBefore(endMs int64) {
	if len(f.pending) == 0 {
		return
	}
	slices.SortStableFunc(f.pending, func(a, b pendingRec) int { return cmp.Compare(a.ts, b.ts) })
	n := 0
	for n < len(f.pending) && f.pending[n].ts < endMs {
		f.apply(f.pending[n])
		n++
	}
	if n > 0 {
		rest := copy(f.pending, f.pending[n:])
		clear(f.pending[rest:])
		f.pending = f.pending[:rest]
	}
}

// finalize writes row s from the current totals.
func (f *fold) finalize(s int64) {
	i := s % f.w
	endMs := (s + 1) * 1000
	nan := float32(math.NaN())

	// Partitions: a missing one makes every node it touches unknown.
	partsKnown := len(f.parts) > 0
	var prates [numCounters]float64
	var lag int64
	for _, p := range f.parts {
		if p.ts < endMs-carryMs {
			partsKnown = false
			f.fleet.nanRow = s
			for j := range p.partials {
				p.partials[j].sub.nanRow = s
				p.partials[j].reg.nanRow = s
			}
			continue
		}
		if !p.hasRate {
			partsKnown = false
		}
		for j := range prates {
			prates[j] += p.rates[j]
		}
		lag += p.lag
	}
	for j, m := range []Metric{ConsumedPerSec, AppliedPerSec, DuplicatesPerSec, GapsPerSec} {
		v := nan
		if partsKnown {
			v = float32(prates[j])
		}
		f.pipe[m-ReceivedPerSec][i] = v
	}
	lagV := nan
	if partsKnown {
		lagV = float32(lag)
	}
	f.pipe[Lag-ReceivedPerSec][i] = lagV

	// Ingest: instances that stopped simply stop contributing.
	var irates [numCounters]float64
	present := 0
	for _, src := range f.ingest {
		if src.ts < endMs-carryMs || !src.hasRate {
			continue
		}
		present++
		for j := range irates {
			irates[j] += src.rates[j]
		}
	}
	for j, m := range []Metric{ReceivedPerSec, RejectedPerSec, PublishedPerSec, AckedPerSec} {
		v := nan
		if present > 0 {
			v = float32(irates[j])
		}
		f.pipe[m-ReceivedPerSec][i] = v
	}

	// Nodes. The fleet is known whenever a partition is, even with no
	// devices; regions and substations while some partition has them.
	for _, n := range f.nodes {
		known := n.refs > 0 || (n == f.fleet && len(f.parts) > 0)
		n.write(i, s, known)
	}

	if f.sinceSweep++; f.sinceSweep >= sweepEvery {
		f.sinceSweep = 0
		f.sweep(s)
	}
}

// sweep drops partitions and instances silent for a window, and nodes
// without a value for a window.
func (f *fold) sweep(s int64) {
	oldMs := (s + 1 - f.w) * 1000
	for id, p := range f.parts {
		if p.ts < oldMs {
			for j := range p.partials {
				f.unref(&p.partials[j])
			}
			delete(f.parts, id)
		}
	}
	for id, src := range f.ingest {
		if src.ts < oldMs {
			delete(f.ingest, id)
		}
	}
	drop := func(m map[string]*node) {
		for id, n := range m {
			if n.refs == 0 && n.lastRow <= s-f.w {
				delete(m, id)
			}
		}
	}
	drop(f.regions)
	drop(f.subs)
	f.nodes = append(f.nodes[:0], f.fleet)
	for _, n := range f.regions {
		f.nodes = append(f.nodes, n)
	}
	for _, n := range f.subs {
		f.nodes = append(f.nodes, n)
	}
}

// lookup returns the node (kind, id), or nil.
func (f *fold) lookup(kind fleet.Kind, id string) *node {
	switch kind {
	case fleet.KindFleet:
		if id == "" || id == fleet.FleetID {
			return f.fleet
		}
	case fleet.KindRegion:
		return f.regions[id]
	case fleet.KindSubstation:
		return f.subs[id]
	}
	return nil
}

// series fills dst with the last len(dst) seconds of metric m of the node
// (kind, id), ending at the last finalized second; NaN where unknown.
func (f *fold) series(kind fleet.Kind, id string, m Metric, dst []float64) {
	var ring []float32
	switch {
	case m >= ReceivedPerSec && m <= Lag:
		if kind == fleet.KindFleet && (id == "" || id == fleet.FleetID) {
			ring = f.pipe[m-ReceivedPerSec]
		}
	case m >= 0 && int(m) < numNodeMetrics:
		if n := f.lookup(kind, id); n != nil {
			ring = n.vals[m]
		}
	}
	end, ok := f.end()
	if ring == nil || !ok {
		fillNaN(dst)
		return
	}
	fillRing(dst, ring, end, max(f.first, end-f.w+1), func(v float32) float64 { return float64(v) })
}

// fillRing fills dst with the ring's values for the seconds ending at end
// (slot s % len(ring)); seconds before from are NaN.
func fillRing[T any](dst []float64, ring []T, end, from int64, conv func(T) float64) {
	n := int64(len(dst))
	w := int64(len(ring))
	for i := range n {
		s := end - n + 1 + i
		if s < from || s < 0 {
			dst[i] = math.NaN()
			continue
		}
		dst[i] = conv(ring[s%w])
	}
}

func fillNaN(dst []float64) {
	for i := range dst {
		dst[i] = math.NaN()
	}
}
