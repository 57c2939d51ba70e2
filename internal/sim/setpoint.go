package sim

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vppctl/vpp/internal/latency"
	"github.com/vppctl/vpp/proto/vppv1"
)

// reportHoldMs is how long a device keeps reporting a setpoint it refused
// or ended (unless a new one arrives), so that vpp sees the outcome.
const reportHoldMs = 10_000

// numReasons is the number of SetpointReason values.
const numReasons = int(vppv1.SetpointReason_SETPOINT_REASON_RELEASED) + 1

// follower is a device's side of dispatch: the setpoint it holds (if any)
// and the outcome it reports in its readings. Times are Unix ms (wall
// clock). It belongs to a device and is guarded by its conn's mutex.
type follower struct {
	held      bool
	id        string
	seq       uint64 // highest seq seen for the device (0: none)
	targetKW  float64
	rampKWps  float64
	effMs     int64
	expMs     int64
	hbMs      int64 // heartbeat timeout
	refreshMs int64 // last receipt of the held setpoint
	createdMs int64
	started   bool    // the command has been applied at least once
	cmdKW     float64 // the ramped command at the grid connection
	lastMs    int64   // time of the last step while following
	latDone   bool    // the held setpoint reached a reading as followed
	latID     string  // the dispatch whose latency this device recorded

	// What readings report.
	repID     string
	repSeq    uint64
	repKW     float64
	repState  vppv1.SetpointState
	repReason vppv1.SetpointReason
	repUntil  int64 // for REJECTED/ENDED: report until then, then zeros
}

// setpointCounters are the sim's dispatch counters.
type setpointCounters struct {
	received  atomic.Int64
	applied   atomic.Int64 // setpoints that reached a reading as followed
	refused   [numReasons]atomic.Int64
	ended     [numReasons]atomic.Int64
	unknown   atomic.Int64 // for a device not on the connection
	latencyMs latency.Histogram

	// first is, per dispatch (the latest maxFirstFollow), the latency of
	// the first device that followed it.
	firstMu    sync.Mutex
	first      map[string]time.Duration
	firstOrder []string
}

// maxFirstFollow bounds the dispatches whose first-device latency the sim
// keeps.
const maxFirstFollow = 256

// firstFollow records lat for dispatch id unless a device was faster.
func (c *setpointCounters) firstFollow(id string, lat time.Duration) {
	c.firstMu.Lock()
	defer c.firstMu.Unlock()
	if c.first == nil {
		c.first = make(map[string]time.Duration)
	}
	if old, ok := c.first[id]; ok {
		c.first[id] = min(old, lat)
		return
	}
	if len(c.firstOrder) >= maxFirstFollow {
		delete(c.first, c.firstOrder[0])
		c.firstOrder = c.firstOrder[1:]
	}
	c.first[id] = lat
	c.firstOrder = append(c.firstOrder, id)
}

// SetpointStats are the sim's dispatch counters.
type SetpointStats struct {
	Received   int64                          // setpoints received for devices held
	Unknown    int64                          // setpoints for devices not on the connection
	Applied    int64                          // setpoints first followed in a reading
	Refused    map[vppv1.SetpointReason]int64 // refused, by reason
	Ended      map[vppv1.SetpointReason]int64 // ended, by reason
	LatencyP50 time.Duration                  // created_ms → first reading applying it (bucket bound)
	LatencyP99 time.Duration
	// FirstFollow is, per dispatch (the latest 256), the time from its
	// created_ms to the first reading of any device following it.
	FirstFollow map[string]time.Duration
}

func (c *setpointCounters) stats() SetpointStats {
	st := SetpointStats{
		Received: c.received.Load(),
		Unknown:  c.unknown.Load(),
		Applied:  c.applied.Load(),
		Refused:  map[vppv1.SetpointReason]int64{},
		Ended:    map[vppv1.SetpointReason]int64{},
	}
	for i := range c.refused {
		if n := c.refused[i].Load(); n > 0 {
			st.Refused[vppv1.SetpointReason(i)] = n
		}
		if n := c.ended[i].Load(); n > 0 {
			st.Ended[vppv1.SetpointReason(i)] = n
		}
	}
	c.firstMu.Lock()
	st.FirstFollow = make(map[string]time.Duration, len(c.first))
	for id, d := range c.first {
		st.FirstFollow[id] = d
	}
	c.firstMu.Unlock()
	snap := c.latencyMs.Snapshot()
	st.LatencyP50 = quantile(snap, 0.5)
	st.LatencyP99 = quantile(snap, 0.99)
	return st
}

// quantile returns the upper bound of the bucket holding quantile q of s
// (0 when empty, 2 minutes above the last bound).
func quantile(s latency.Snapshot, q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	bs := make([]float64, 0, len(s.Cumulative))
	for b := range s.Cumulative {
		bs = append(bs, b)
	}
	sort.Float64s(bs)
	want := uint64(math.Ceil(q * float64(s.Count)))
	for _, b := range bs {
		if s.Cumulative[b] >= want {
			return time.Duration(b * float64(time.Second))
		}
	}
	return 2 * time.Minute
}

// refuse records a refusal of sp.
func (f *follower) refuse(sc *setpointCounters, sp *vppv1.Setpoint, reason vppv1.SetpointReason, nowMs int64) {
	sc.refused[reason].Add(1)
	if f.held {
		// A refused setpoint leaves the held one alone.
		return
	}
	f.repID, f.repSeq, f.repKW = sp.GetDispatchId(), sp.GetSeq(), 0
	f.repState, f.repReason = vppv1.SetpointState_SETPOINT_STATE_REJECTED, reason
	f.repUntil = nowMs + reportHoldMs
}

// end returns the device to local control for reason.
func (f *follower) end(sc *setpointCounters, reason vppv1.SetpointReason, nowMs int64) {
	if !f.held {
		return
	}
	sc.ended[reason].Add(1)
	f.held = false
	f.repKW = 0
	f.repState, f.repReason = vppv1.SetpointState_SETPOINT_STATE_ENDED, reason
	f.repUntil = nowMs + reportHoldMs
}

// receive applies the device rules to a setpoint arriving at nowMs;
// dispatchable is false in fault or standby.
func (f *follower) receive(sc *setpointCounters, sp *vppv1.Setpoint, dispatchable bool, nowMs int64) {
	sc.received.Add(1)
	if sp.GetMode() == vppv1.SetpointMode_SETPOINT_MODE_RELEASE {
		if sp.GetDispatchId() == "" || len(sp.GetDispatchId()) > 64 {
			f.refuse(sc, sp, vppv1.SetpointReason_SETPOINT_REASON_INVALID, nowMs)
			return
		}
		if f.held && f.id == sp.GetDispatchId() {
			f.seq = max(f.seq, sp.GetSeq())
			f.end(sc, vppv1.SetpointReason_SETPOINT_REASON_RELEASED, nowMs)
		}
		return
	}
	t := sp.GetTargetKw()
	if sp.GetMode() != vppv1.SetpointMode_SETPOINT_MODE_FIXED ||
		math.IsNaN(t) || math.IsInf(t, 0) ||
		sp.GetDispatchId() == "" || len(sp.GetDispatchId()) > 64 || sp.GetSeq() == 0 ||
		sp.GetExpiryMs() <= sp.GetEffectiveMs() ||
		!(sp.GetRampKwPerS() >= 0) || math.IsInf(sp.GetRampKwPerS(), 0) ||
		sp.GetHeartbeatTimeoutMs() == 0 {
		f.refuse(sc, sp, vppv1.SetpointReason_SETPOINT_REASON_INVALID, nowMs)
		return
	}
	if sp.GetSeq() < f.seq || sp.GetExpiryMs() <= nowMs {
		f.refuse(sc, sp, vppv1.SetpointReason_SETPOINT_REASON_STALE, nowMs)
		return
	}
	if !dispatchable {
		f.refuse(sc, sp, vppv1.SetpointReason_SETPOINT_REASON_NOT_DISPATCHABLE, nowMs)
		return
	}
	if f.held && sp.GetSeq() == f.seq && sp.GetDispatchId() == f.id {
		// Refresh: restart the heartbeat timer (and take a later expiry).
		f.refreshMs = nowMs
		f.expMs = sp.GetExpiryMs()
		f.hbMs = int64(sp.GetHeartbeatTimeoutMs())
		return
	}
	wasStarted, cmd := f.held && f.started, f.cmdKW
	f.held = true
	f.id, f.seq = sp.GetDispatchId(), sp.GetSeq()
	f.targetKW, f.rampKWps = t, sp.GetRampKwPerS()
	f.effMs, f.expMs = sp.GetEffectiveMs(), sp.GetExpiryMs()
	f.hbMs = int64(sp.GetHeartbeatTimeoutMs())
	f.refreshMs = nowMs
	f.createdMs = sp.GetCreatedMs()
	f.latDone = false
	f.started, f.cmdKW = wasStarted, cmd
	f.repID, f.repSeq, f.repKW = f.id, f.seq, 0
	f.repState, f.repReason = vppv1.SetpointState_SETPOINT_STATE_RECEIVED, vppv1.SetpointReason_SETPOINT_REASON_NONE
	f.repUntil = 0
}

// command returns whether the device follows a setpoint at nowMs and the
// power to hold at the grid connection before the battery's limits (the
// ramped target). It ends the setpoint on expiry or heartbeat timeout.
// localKW is the local controller's power, the ramp's start.
func (f *follower) command(sc *setpointCounters, nowMs int64, localKW float64) (bool, float64) {
	if !f.held {
		return false, 0
	}
	switch {
	case nowMs >= f.expMs:
		f.end(sc, vppv1.SetpointReason_SETPOINT_REASON_EXPIRED, nowMs)
		return false, 0
	case nowMs-f.refreshMs >= f.hbMs:
		f.end(sc, vppv1.SetpointReason_SETPOINT_REASON_HEARTBEAT, nowMs)
		return false, 0
	case nowMs < f.effMs:
		return false, 0
	}
	if !f.started {
		f.started, f.cmdKW, f.lastMs = true, localKW, nowMs
	}
	cmd := f.targetKW
	if f.rampKWps > 0 {
		dt := float64(nowMs-f.lastMs) / 1000
		step := f.rampKWps * max(dt, 0)
		cmd = fmax(f.cmdKW-step, fmin(f.cmdKW+step, f.targetKW))
	}
	f.cmdKW, f.lastMs = cmd, nowMs
	return true, cmd
}

// report writes the setpoint fields of r after a step at nowMs. p is the
// power delivered, clamp the reason the battery limited the command (NONE
// when it did not), following whether a setpoint was followed.
func (f *follower) report(sc *setpointCounters, r *vppv1.Reading, following bool, p float64, clamp vppv1.SetpointReason, nowMs int64) {
	if following {
		f.repKW = p
		switch {
		case clamp != vppv1.SetpointReason_SETPOINT_REASON_NONE:
			f.repState, f.repReason = vppv1.SetpointState_SETPOINT_STATE_CLAMPED, clamp
		case f.cmdKW != f.targetKW:
			f.repState, f.repReason = vppv1.SetpointState_SETPOINT_STATE_CLAMPED, vppv1.SetpointReason_SETPOINT_REASON_RAMPING
			f.repKW = f.cmdKW
		default:
			f.repState, f.repReason = vppv1.SetpointState_SETPOINT_STATE_APPLIED, vppv1.SetpointReason_SETPOINT_REASON_NONE
			f.repKW = f.targetKW
		}
		if !f.latDone {
			f.latDone = true
			sc.applied.Add(1)
			// The latency of a dispatch, once per device: later setpoints
			// of it (a new share, a re-send after a reconnect) carry the
			// same creation time and would count the dispatch's age.
			if f.createdMs > 0 && f.latID != f.id {
				f.latID = f.id
				lat := time.Since(time.UnixMilli(f.createdMs))
				sc.latencyMs.Observe(lat)
				sc.firstFollow(f.id, lat)
			}
		}
	} else if f.repUntil > 0 && nowMs >= f.repUntil {
		f.repID, f.repSeq, f.repKW = "", 0, 0
		f.repState, f.repReason, f.repUntil = 0, 0, 0
	}
	r.SetpointId, r.SetpointSeq, r.SetpointKw = f.repID, f.repSeq, f.repKW
	r.SetpointState, r.SetpointReason = f.repState, f.repReason
}

// Following returns, per dispatch ID, how many devices follow one of its
// setpoints now: held, effective, before its expiry and within its
// heartbeat timeout. It visits every device (for tests and reports, not a
// hot path).
func (s *Sim) Following() map[string]int {
	now := time.Now().UnixMilli()
	out := map[string]int{}
	for _, c := range s.conns {
		c.mu.Lock()
		for _, d := range c.devs {
			if f := &d.fol; f.held && now >= f.effMs && now < f.expMs && now-f.refreshMs < f.hbMs {
				out[f.id]++
			}
		}
		c.mu.Unlock()
	}
	return out
}
