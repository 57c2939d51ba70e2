package aggregate

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/follow"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Dispatch engine defaults.
const (
	// DefaultHeartbeat is the heartbeat timeout a setpoint carries: a
	// device that hears no refresh for this long returns to local control.
	// Active setpoints are refreshed every third of it.
	DefaultHeartbeat = 10 * time.Second

	// dispatchPass is how often the engine runs when nothing wakes it;
	// minPass is the shortest time between two passes when records wake it.
	dispatchPass = time.Second
	minPass      = 50 * time.Millisecond
	// firstAllocWait is how long a coordinator waits for every partition's
	// report before splitting a new dispatch over the partitions that
	// reported.
	firstAllocWait = 1500 * time.Millisecond
	// reallocEvery is the shortest time between two allocation epochs of a
	// dispatch (the rate limit against oscillation); reallocDeadband the
	// relative change of a partition's limits or energy that asks for one.
	reallocEvery    = 2 * time.Second
	reallocDeadband = 0.05
	// reachedBand is the band around the feasible target within which a
	// node counts as having reached it.
	reachedBand = 0.05
)

// assignment is the setpoint an aggregator holds for one device.
type assignment struct {
	id     string  // dispatch
	kw     float64 // target sent
	seq    uint64
	epoch  uint64  // allocation epoch it was computed for
	capKW  float64 // the least the device clamped to while following (0: none seen)
	sentMs int64   // when it was last sent (refresh every heartbeat/3)
}

// dispEntry is what the engine knows of one dispatch, folded from the
// dispatch topic, plus the coordinator's own tracking.
type dispEntry struct {
	d       *vppv1.Dispatch
	node    dispatch.Node
	alloc   *vppv1.DispatchAllocation
	reports map[int32]*vppv1.DispatchReport
	status  *vppv1.DispatchStatus

	// Coordinator-local.
	activeSince time.Time
	lastEpoch   time.Time
	allocBasis  map[int32]*vppv1.DispatchReport // reports the latest epoch was computed from
	errs        []trackSample                   // the last minute of |target - actual|
	final       bool                            // a final status was written
	reached     int64
	firstFollow int64
	overshoot   float64
}

type trackSample struct {
	ms  int64
	err float64
}

// engine allocates dispatches over the devices of the partitions an
// Aggregator owns, coordinates the dispatches whose coordinator partition
// it owns, and publishes setpoints. See docs/dispatch.md.
type engine struct {
	a         *Aggregator
	producer  sarama.SyncProducer
	dispatchT string
	setpointT string
	nparts    int32
	heartbeat time.Duration
	log       *slog.Logger

	mu   sync.Mutex
	ds   map[string]*dispEntry
	wake chan struct{}
}

func newEngine(a *Aggregator, producer sarama.SyncProducer, nparts int32) *engine {
	t := a.cfg.Kafka.Topics()
	hb := a.cfg.Heartbeat
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	return &engine{
		a: a, producer: producer, dispatchT: t.Dispatch(), setpointT: t.Setpoints(), nparts: nparts,
		heartbeat: hb, log: a.log.With("component", "dispatch"),
		ds: make(map[string]*dispEntry), wake: make(chan struct{}, 1),
	}
}

// coordinatorPartition is the telemetry partition whose owner coordinates
// dispatch id.
func coordinatorPartition(id string, nparts int32) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int32(h.Sum32() % uint32(nparts))
}

// run follows the dispatch topic and runs passes until ctx ends.
func (e *engine) run(ctx context.Context) {
	f := follow.New(follow.Config{
		Kafka: e.a.cfg.Kafka, Topics: []string{e.dispatchT}, Name: "dispatch follower",
		Logger: e.log, Apply: e.applyRecord, MaxWait: 20 * time.Millisecond,
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.Run(ctx); err != nil {
			e.log.Error("dispatch follower stopped", "err", err)
		}
	}()
	defer wg.Wait()
	if err := f.WaitCaughtUp(ctx); err != nil {
		return
	}
	e.log.Info("dispatch topic read", "dispatches", e.count())
	tick := time.NewTicker(dispatchPass)
	defer tick.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-e.wake:
			if d := minPass - time.Since(last); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		last = time.Now()
		e.pass(ctx, last)
	}
}

func (e *engine) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ds)
}

// applyRecord folds one dispatch-topic record.
func (e *engine) applyRecord(r follow.Record) {
	kind, id, p, err := dispatch.ParseKey(string(r.Key))
	if err != nil {
		e.log.Warn("skip dispatch record", "err", err, "offset", r.Offset)
		return
	}
	var rec vppv1.DispatchRecord
	if r.Value != nil {
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			e.log.Warn("skip undecodable dispatch record", "key", string(r.Key), "err", err)
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.ds[id]
	if en == nil {
		// Records of a dispatch whose request is not read yet are kept:
		// the request may follow.
		en = &dispEntry{reports: make(map[int32]*vppv1.DispatchReport)}
		e.ds[id] = en
	}
	switch kind {
	case dispatch.KindDispatch:
		d := rec.GetDispatch()
		if d == nil {
			return
		}
		node, err := dispatch.ParseNode(d.GetNode())
		if err != nil {
			e.log.Warn("skip dispatch with a bad node", "id", id, "err", err)
			return
		}
		en.d, en.node = d, node
	case dispatch.KindAllocation:
		en.alloc = rec.GetAllocation()
	case dispatch.KindReport:
		if r.Value == nil {
			delete(en.reports, p)
		} else if rep := rec.GetReport(); rep != nil {
			en.reports[p] = rep
		}
	case dispatch.KindStatus:
		en.status = rec.GetStatus()
		if st := en.status; st != nil && isFinal(st.GetState()) {
			en.final = true
		}
	}
	// Wake the engine for what it acts on at once: a new or cancelled
	// request, a new allocation epoch, and the reports a first split waits
	// for. Reports and statuses otherwise wait for the next pass (waking on
	// them would have every pass's own reports start the next one).
	if kind == dispatch.KindDispatch || kind == dispatch.KindAllocation || kind == dispatch.KindReport && en.alloc == nil {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func isFinal(s vppv1.DispatchState) bool {
	switch s {
	case vppv1.DispatchState_DISPATCH_STATE_COMPLETED, vppv1.DispatchState_DISPATCH_STATE_CANCELLED,
		vppv1.DispatchState_DISPATCH_STATE_SUPERSEDED, vppv1.DispatchState_DISPATCH_STATE_FAILED:
		return true
	}
	return false
}

// active is a dispatch in force at the time of a pass.
type active struct {
	id       string
	d        *vppv1.Dispatch
	node     dispatch.Node
	alloc    *vppv1.DispatchAllocation // nil before the first epoch
	feasible float64                   // |alloc.feasible_kw|
}

// wins reports whether dispatch a takes a device over dispatch b: lower
// priority number, then the newest.
func (a *active) wins(b *active) bool {
	if a.d.GetPriority() != b.d.GetPriority() {
		return a.d.GetPriority() < b.d.GetPriority()
	}
	if a.d.GetCreatedMs() != b.d.GetCreatedMs() {
		return a.d.GetCreatedMs() > b.d.GetCreatedMs()
	}
	return a.id > b.id
}

// stateAt is the life stage of d at nowMs from its request alone.
func stateAt(d *vppv1.Dispatch, nowMs int64) vppv1.DispatchState {
	switch {
	case d.GetCancelledMs() > 0:
		return vppv1.DispatchState_DISPATCH_STATE_CANCELLED
	case nowMs < d.GetStartMs():
		return vppv1.DispatchState_DISPATCH_STATE_PENDING
	case nowMs >= d.GetEndMs():
		return vppv1.DispatchState_DISPATCH_STATE_COMPLETED
	}
	return vppv1.DispatchState_DISPATCH_STATE_ACTIVE
}

// supersededBy returns the dispatch that supersedes en: an active one on
// the same node that wins over it (IEEE 2030.5: a superseded event ends at
// once).
func supersededBy(en *active, all []*active) *active {
	for _, o := range all {
		if o.id != en.id && o.node == en.node && o.wins(en) {
			return o
		}
	}
	return nil
}

// pass runs one round: reports and allocations for the owned partitions,
// coordination for the dispatches coordinated here.
func (e *engine) pass(ctx context.Context, now time.Time) {
	nowMs := now.UnixMilli()
	e.mu.Lock()
	var acts []*active
	var ended []string
	for id, en := range e.ds {
		if en.d == nil {
			continue
		}
		if stateAt(en.d, nowMs) == vppv1.DispatchState_DISPATCH_STATE_ACTIVE {
			a := &active{id: id, d: en.d, node: en.node, alloc: en.alloc}
			if en.alloc != nil {
				a.feasible = math.Abs(en.alloc.GetFeasibleKw())
			}
			acts = append(acts, a)
		} else {
			ended = append(ended, id)
		}
	}
	e.mu.Unlock()
	// Drop the superseded ones before allocating.
	live := acts[:0:0]
	for _, a := range acts {
		if supersededBy(a, acts) == nil {
			live = append(live, a)
		}
	}
	slices.SortFunc(live, func(x, y *active) int {
		if x.wins(y) {
			return -1
		}
		if y.wins(x) {
			return 1
		}
		return 0
	})
	var msgs []*sarama.ProducerMessage
	for _, ps := range e.a.ownedParts() {
		msgs = append(msgs, e.partitionPass(ps, live, nowMs)...)
	}
	msgs = append(msgs, e.coordinate(acts, live, ended, now)...)
	msgs = append(msgs, e.cleanup(ended)...)
	if len(msgs) == 0 || ctx.Err() != nil {
		return
	}
	if err := e.producer.SendMessages(msgs); err != nil {
		e.log.Warn("publish dispatch records", "err", err, "records", len(msgs))
	}
}

// partAcc accumulates one dispatch's figures over one partition.
type partAcc struct {
	rep     vppv1.DispatchReport
	devices []*twin // eligible, in site order
	sites   []*siteTwin
	changed bool // the eligible set differs from the assignments
}

// partitionPass computes the reports of one owned partition and applies
// the allocations to its devices. It returns the records to publish.
func (e *engine) partitionPass(ps *partState, live []*active, nowMs int64) []*sarama.ProducerMessage {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.restored || len(live) == 0 && !ps.assigned {
		return nil
	}
	ps.assigned = false // set again below while any device holds a setpoint
	accs := make([]partAcc, len(live))
	for i, a := range live {
		accs[i].rep = vppv1.DispatchReport{DispatchId: a.id, Partition: ps.id, UpdatedMs: nowMs}
	}
	batches := map[*siteTwin]*vppv1.SetpointBatch{}
	send := func(s *siteTwin, sp *vppv1.Setpoint) {
		b := batches[s]
		if b == nil {
			b = &vppv1.SetpointBatch{SiteId: s.id}
			batches[s] = b
		}
		b.Setpoints = append(b.Setpoints, sp)
	}
	cands := make([]int, 0, 4)
	for _, s := range ps.sites {
		cands = cands[:0]
		for i, a := range live {
			if a.node.Contains(s.region, s.substation, s.id) {
				cands = append(cands, i)
			}
		}
		for di := range s.devices {
			d := &s.devices[di]
			win := -1
			if len(cands) > 0 && !d.offline && dispatchable(d.mode) {
				win = cands[0] // live is sorted winner first
			}
			if d.asg != nil && (win < 0 || live[win].id != d.asg.id) {
				// Released: the dispatch ended, another took the device,
				// or the device can no longer follow.
				send(s, &vppv1.Setpoint{DeviceId: d.id, DispatchId: d.asg.id, Seq: d.asg.seq,
					Mode: vppv1.SetpointMode_SETPOINT_MODE_RELEASE, EffectiveMs: nowMs, ExpiryMs: nowMs,
					HeartbeatTimeoutMs: uint32(e.heartbeat.Milliseconds())})
				d.asg = nil
			}
			sp := d.setpoint()
			if d.asg == nil && sp.id != "" && following(d) && (win < 0 || live[win].id != sp.id) && !isLive(live, sp.id) {
				// The device follows a dispatch that ended while it was
				// another owner's (or before a restart): release it, every
				// pass until its readings say it let go.
				send(s, &vppv1.Setpoint{DeviceId: d.id, DispatchId: sp.id, Seq: sp.seq,
					Mode: vppv1.SetpointMode_SETPOINT_MODE_RELEASE, EffectiveMs: nowMs, ExpiryMs: nowMs,
					HeartbeatTimeoutMs: uint32(e.heartbeat.Milliseconds())})
				ps.assigned = true
			}
			if win < 0 {
				continue
			}
			ps.assigned = true
			acc := &accs[win]
			a := live[win]
			dis, ch := headroom(d.mode, d.soc, d.capacity, d.maxDischarge, d.maxCharge, 0, ps.cfg.reserve, ps.cfg.horizon)
			if d.asg != nil && d.asg.capKW > 0 {
				if a.d.GetTargetKw() >= 0 {
					dis = math.Min(dis, d.asg.capKW)
				} else {
					ch = math.Min(ch, d.asg.capKW)
				}
			}
			acc.rep.Devices++
			acc.rep.MaxDischargeKw += dis
			acc.rep.MaxChargeKw += ch
			acc.rep.EnergyAboveReserveKwh += math.Max(0, (d.soc-ps.cfg.reserve)/100*d.capacity)
			acc.rep.EnergyBelowFullKwh += math.Max(0, (100-d.soc)/100*d.capacity)
			if sp.id == a.id && following(d) {
				acc.rep.Following++
				acc.rep.ActualKw += d.power
				if sp.state == vppv1.SetpointState_SETPOINT_STATE_CLAMPED && sp.reason != vppv1.SetpointReason_SETPOINT_REASON_RAMPING {
					acc.rep.Clamped++
					if d.asg != nil && d.asg.id == a.id && sp.seq == d.asg.seq {
						c := math.Abs(sp.kw)
						if d.asg.capKW == 0 || c < d.asg.capKW-1e-9 {
							d.asg.capKW = c
							acc.changed = true
						}
					}
				}
			}
			if d.asg == nil {
				acc.changed = true
			}
			acc.devices = append(acc.devices, d)
			acc.sites = append(acc.sites, s)
		}
	}
	var msgs []*sarama.ProducerMessage
	for i, a := range live {
		acc := &accs[i]
		e.allocate(ps, a, acc, nowMs, send)
		msgs = append(msgs, e.record(dispatch.ReportKey(a.id, ps.id), &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Report{Report: &acc.rep}}))
	}
	for _, b := range batches {
		v, err := proto.Marshal(b)
		if err != nil {
			continue
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: e.setpointT, Partition: ps.id,
			Key: sarama.StringEncoder(b.SiteId), Value: sarama.ByteEncoder(v)})
	}
	return msgs
}

// following reports whether d's last reading says it follows a setpoint.
func following(d *twin) bool {
	st := d.setpoint().state
	return st == vppv1.SetpointState_SETPOINT_STATE_APPLIED || st == vppv1.SetpointState_SETPOINT_STATE_CLAMPED
}

func isLive(live []*active, id string) bool {
	for _, a := range live {
		if a.id == id {
			return true
		}
	}
	return false
}

// allocate splits partition ps's share of dispatch a over the eligible
// devices when the share's epoch, the eligible set or a device's limit
// changed, and refreshes the setpoints that are due.
func (e *engine) allocate(ps *partState, a *active, acc *partAcc, nowMs int64, send func(*siteTwin, *vppv1.Setpoint)) {
	rep := &acc.rep
	if a.alloc == nil {
		return // no epoch yet: the coordinator has not split the target
	}
	share, ok := a.alloc.GetShares()[ps.id]
	if !ok {
		share = 0
	}
	epoch := a.alloc.GetEpoch()
	rep.Epoch, rep.ShareKw = epoch, share
	stale := acc.changed
	for _, d := range acc.devices {
		if d.asg == nil || d.asg.epoch != epoch {
			stale = true
			break
		}
	}
	hbMs := e.heartbeat.Milliseconds()
	if stale {
		items := make([]fillItem, len(acc.devices))
		discharge := share >= 0
		for i, d := range acc.devices {
			dis, ch := headroom(d.mode, d.soc, d.capacity, d.maxDischarge, d.maxCharge, 0, ps.cfg.reserve, ps.cfg.horizon)
			if discharge {
				items[i] = fillItem{weight: math.Max(0, (d.soc-ps.cfg.reserve)/100*d.capacity), cap: dis}
			} else {
				items[i] = fillItem{weight: math.Max(0, (100-d.soc)/100*d.capacity), cap: ch}
			}
			if d.asg != nil && d.asg.id == a.id && d.asg.capKW > 0 {
				items[i].cap = math.Min(items[i].cap, d.asg.capKW)
			}
		}
		waterFill(items, math.Abs(share))
		for i, d := range acc.devices {
			kw := items[i].out
			if !discharge {
				kw = -kw
			}
			prev := d.asg
			if prev == nil || prev.id != a.id {
				prev = &assignment{id: a.id}
				d.asg = prev
			}
			prev.epoch = epoch
			if prev.seq != 0 && math.Abs(prev.kw-kw) < 1e-6 {
				continue // unchanged: refreshed below when due
			}
			prev.kw = kw
			prev.seq = max(prev.seq+1, d.setpoint().seq+1, uint64(nowMs))
			prev.sentMs = 0
		}
	}
	for i, d := range acc.devices {
		asg := d.asg
		if asg == nil || asg.id != a.id {
			continue
		}
		rep.AllocatedKw += asg.kw
		if asg.sentMs != 0 && nowMs-asg.sentMs < hbMs/3 {
			continue
		}
		asg.sentMs = nowMs
		ramp := 0.0
		if r := a.d.GetRampKwPerS(); r > 0 && a.feasible > 0 {
			ramp = r * math.Abs(asg.kw) / a.feasible
		}
		send(acc.sites[i], &vppv1.Setpoint{
			DeviceId: d.id, DispatchId: a.id, Seq: asg.seq, TargetKw: asg.kw,
			Mode: vppv1.SetpointMode_SETPOINT_MODE_FIXED, EffectiveMs: nowMs, ExpiryMs: a.d.GetEndMs(),
			RampKwPerS: ramp, HeartbeatTimeoutMs: uint32(hbMs), CreatedMs: a.d.GetCreatedMs(),
		})
	}
}

// cleanup tombstones what an ended dispatch no longer needs once its final
// status is written: the reports of the partitions owned here and, by its
// coordinator, the allocation. The request ("d/") and the status stay: they
// are the audit trail.
func (e *engine) cleanup(ended []string) []*sarama.ProducerMessage {
	owned := map[int32]bool{}
	for _, ps := range e.a.ownedParts() {
		owned[ps.id] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var msgs []*sarama.ProducerMessage
	for _, id := range ended {
		en := e.ds[id]
		if en == nil || !en.final {
			continue
		}
		for p := range en.reports {
			if owned[p] {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: e.dispatchT, Key: sarama.StringEncoder(dispatch.ReportKey(id, p))})
				delete(en.reports, p) // the tombstone deletes it for every reader; do not send it twice
			}
		}
		if en.alloc != nil && owned[coordinatorPartition(id, e.nparts)] {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: e.dispatchT, Key: sarama.StringEncoder(dispatch.AllocationKey(id))})
			en.alloc = nil
		}
	}
	return msgs
}

// record is a dispatch-topic record.
func (e *engine) record(key string, rec *vppv1.DispatchRecord) *sarama.ProducerMessage {
	v, err := proto.Marshal(rec)
	if err != nil {
		panic(fmt.Sprintf("marshal dispatch record: %v", err)) // only on a programming error
	}
	return &sarama.ProducerMessage{Topic: e.dispatchT, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(v)}
}

// coordinate splits and tracks the dispatches whose coordinator partition
// this aggregator owns.
func (e *engine) coordinate(acts, live []*active, ended []string, now time.Time) []*sarama.ProducerMessage {
	owned := map[int32]bool{}
	for _, ps := range e.a.ownedParts() {
		ps.mu.Lock()
		if ps.restored {
			owned[ps.id] = true
		}
		ps.mu.Unlock()
	}
	nowMs := now.UnixMilli()
	isLive := map[string]bool{}
	for _, a := range live {
		isLive[a.id] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var msgs []*sarama.ProducerMessage
	for _, a := range acts {
		en := e.ds[a.id]
		if !owned[coordinatorPartition(a.id, e.nparts)] {
			en.activeSince = time.Time{}
			continue
		}
		if !isLive[a.id] {
			if !en.final {
				by := supersededBy(a, acts)
				msgs = append(msgs, e.finalStatus(a.id, en, vppv1.DispatchState_DISPATCH_STATE_SUPERSEDED, "superseded by "+by.id, nowMs))
			}
			continue
		}
		if en.activeSince.IsZero() {
			en.activeSince = now
		}
		if m := e.split(a, en, now); m != nil {
			msgs = append(msgs, m)
		}
		msgs = append(msgs, e.track(a, en, nowMs))
	}
	for _, id := range ended {
		en := e.ds[id]
		if en.final || en.d == nil || !owned[coordinatorPartition(id, e.nparts)] {
			continue
		}
		st := stateAt(en.d, nowMs)
		if st == vppv1.DispatchState_DISPATCH_STATE_PENDING {
			if en.status == nil {
				msgs = append(msgs, e.statusRecord(id, &vppv1.DispatchStatus{DispatchId: id, State: st,
					TargetKw: en.d.GetTargetKw(), UpdatedMs: nowMs}))
				en.status = &vppv1.DispatchStatus{State: st}
			}
			continue
		}
		msgs = append(msgs, e.finalStatus(id, en, st, "", nowMs))
	}
	return msgs
}

// split writes a new allocation epoch for a when it has none yet (once
// every partition reported, or after firstAllocWait) or when the reports
// moved beyond the deadband (at most every reallocEvery).
func (e *engine) split(a *active, en *dispEntry, now time.Time) *sarama.ProducerMessage {
	fresh := map[int32]*vppv1.DispatchReport{}
	for p, r := range en.reports {
		fresh[p] = r
	}
	if en.alloc == nil {
		devices := uint32(0)
		for _, r := range fresh {
			devices += r.GetDevices()
		}
		if (int32(len(fresh)) < e.nparts || devices == 0) && now.Sub(en.activeSince) < firstAllocWait {
			return nil
		}
	} else if now.Sub(en.lastEpoch) < reallocEvery || !moved(en.allocBasis, fresh) {
		return nil
	}
	target := a.d.GetTargetKw()
	parts := make([]int32, 0, len(fresh))
	for p := range fresh {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	items := make([]fillItem, len(parts))
	for i, p := range parts {
		r := fresh[p]
		if target >= 0 {
			items[i] = fillItem{weight: r.GetEnergyAboveReserveKwh(), cap: r.GetMaxDischargeKw()}
		} else {
			items[i] = fillItem{weight: r.GetEnergyBelowFullKwh(), cap: r.GetMaxChargeKw()}
		}
	}
	feasible := waterFill(items, math.Abs(target))
	sign := 1.0
	if target < 0 {
		sign = -1
	}
	shares := make(map[int32]float64, len(parts))
	for i, p := range parts {
		shares[p] = sign * items[i].out
	}
	epoch := uint64(1)
	if en.alloc != nil {
		epoch = en.alloc.GetEpoch() + 1
	}
	alloc := &vppv1.DispatchAllocation{DispatchId: a.id, Epoch: epoch, Shares: shares, FeasibleKw: sign * feasible, UpdatedMs: now.UnixMilli()}
	en.alloc = alloc
	en.lastEpoch = now
	en.allocBasis = fresh
	e.log.Info("dispatch allocated", "id", a.id, "epoch", epoch, "target_kw", target, "feasible_kw", sign*feasible, "partitions", len(parts))
	return e.record(dispatch.AllocationKey(a.id), &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Allocation{Allocation: alloc}})
}

// moved reports whether the partitions' reports differ from those the
// allocation was computed from by more than the deadband: a partition
// appeared or left, its device count changed, or its limits or energy moved
// by more than reallocDeadband.
func moved(basis, now map[int32]*vppv1.DispatchReport) bool {
	if len(basis) != len(now) {
		return true
	}
	far := func(x, y float64) bool {
		return math.Abs(x-y) > reallocDeadband*math.Max(math.Abs(x), math.Abs(y)) && math.Abs(x-y) > 1e-3
	}
	for p, r := range now {
		b := basis[p]
		if b == nil || b.GetDevices() != r.GetDevices() ||
			far(b.GetMaxDischargeKw(), r.GetMaxDischargeKw()) || far(b.GetMaxChargeKw(), r.GetMaxChargeKw()) ||
			far(b.GetEnergyAboveReserveKwh(), r.GetEnergyAboveReserveKwh()) || far(b.GetEnergyBelowFullKwh(), r.GetEnergyBelowFullKwh()) {
			return true
		}
	}
	return false
}

// track rolls the partitions' reports up into the dispatch's status.
func (e *engine) track(a *active, en *dispEntry, nowMs int64) *sarama.ProducerMessage {
	st := &vppv1.DispatchStatus{DispatchId: a.id, State: vppv1.DispatchState_DISPATCH_STATE_ACTIVE,
		TargetKw: a.d.GetTargetKw(), UpdatedMs: nowMs}
	if en.alloc != nil {
		st.FeasibleKw = en.alloc.GetFeasibleKw()
	}
	st.ShortfallKw = st.TargetKw - st.FeasibleKw
	for _, r := range en.reports {
		st.ActualKw += r.GetActualKw()
		st.Devices += r.GetDevices()
		st.Following += r.GetFollowing()
		st.Clamped += r.GetClamped()
	}
	if st.Following > 0 && en.firstFollow == 0 {
		en.firstFollow = nowMs
	}
	if en.alloc != nil && st.Following > 0 {
		f := st.FeasibleKw
		if en.reached == 0 && math.Abs(st.ActualKw-f) <= reachedBand*math.Abs(f) {
			en.reached = nowMs
		}
		if en.reached != 0 {
			over := (st.ActualKw - f) * sign(f)
			en.overshoot = math.Max(en.overshoot, over)
			en.errs = append(en.errs, trackSample{ms: nowMs, err: math.Abs(st.ActualKw - f)})
		}
	}
	cut := 0
	for cut < len(en.errs) && en.errs[cut].ms < nowMs-60_000 {
		cut++
	}
	en.errs = en.errs[cut:]
	if len(en.errs) > 0 {
		var s float64
		for _, x := range en.errs {
			s += x.err
		}
		st.MaeMinuteKw = s / float64(len(en.errs))
	}
	st.OvershootKw, st.ReachedMs, st.FirstFollowMs = en.overshoot, en.reached, en.firstFollow
	if st.Devices == 0 && en.alloc != nil {
		st.Reason = "no dispatchable device in the node"
	}
	en.status = st
	return e.statusRecord(a.id, st)
}

func sign(x float64) float64 {
	if x < 0 {
		return -1
	}
	return 1
}

// finalStatus writes the last status of a dispatch that ended.
func (e *engine) finalStatus(id string, en *dispEntry, state vppv1.DispatchState, reason string, nowMs int64) *sarama.ProducerMessage {
	st := &vppv1.DispatchStatus{DispatchId: id, State: state, Reason: reason, UpdatedMs: nowMs}
	if prev := en.status; prev != nil {
		st.TargetKw, st.FeasibleKw, st.ShortfallKw = prev.GetTargetKw(), prev.GetFeasibleKw(), prev.GetShortfallKw()
		st.MaeMinuteKw, st.OvershootKw, st.ReachedMs, st.FirstFollowMs = prev.GetMaeMinuteKw(), prev.GetOvershootKw(), prev.GetReachedMs(), prev.GetFirstFollowMs()
		st.Devices = prev.GetDevices()
	} else if en.d != nil {
		st.TargetKw = en.d.GetTargetKw()
	}
	en.final = true
	en.status = st
	return e.statusRecord(id, st)
}

func (e *engine) statusRecord(id string, st *vppv1.DispatchStatus) *sarama.ProducerMessage {
	return e.record(dispatch.StatusKey(id), &vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Status{Status: st}})
}
