package sim

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

const (
	reasonNone     = vppv1.SetpointReason_SETPOINT_REASON_NONE
	reasonPower    = vppv1.SetpointReason_SETPOINT_REASON_POWER_LIMIT
	reasonSoC      = vppv1.SetpointReason_SETPOINT_REASON_SOC_LIMIT
	reasonRamping  = vppv1.SetpointReason_SETPOINT_REASON_RAMPING
	reasonNotDisp  = vppv1.SetpointReason_SETPOINT_REASON_NOT_DISPATCHABLE
	reasonInvalid  = vppv1.SetpointReason_SETPOINT_REASON_INVALID
	reasonStale    = vppv1.SetpointReason_SETPOINT_REASON_STALE
	reasonExpired  = vppv1.SetpointReason_SETPOINT_REASON_EXPIRED
	reasonHB       = vppv1.SetpointReason_SETPOINT_REASON_HEARTBEAT
	reasonReleased = vppv1.SetpointReason_SETPOINT_REASON_RELEASED
	stateApplied   = vppv1.SetpointState_SETPOINT_STATE_APPLIED
	stateClamped   = vppv1.SetpointState_SETPOINT_STATE_CLAMPED
	stateRejected  = vppv1.SetpointState_SETPOINT_STATE_REJECTED
	stateEnded     = vppv1.SetpointState_SETPOINT_STATE_ENDED
)

// fixedSP is a valid FIXED setpoint of dispatch "d1" effective at once,
// expiring at 60 s, with a 1 s heartbeat timeout.
func fixedSP(seq uint64, kw float64) *vppv1.Setpoint {
	return &vppv1.Setpoint{
		DeviceId: "dev", DispatchId: "d1", Seq: seq, TargetKw: kw,
		Mode: vppv1.SetpointMode_SETPOINT_MODE_FIXED, ExpiryMs: 60_000, HeartbeatTimeoutMs: 1000,
	}
}

// follow runs one reading's worth of the follower at nowMs with a local
// power of 0 and no battery clamp, and returns the reading's fields.
func follow(f *follower, sc *setpointCounters, nowMs int64) *vppv1.Reading {
	var r vppv1.Reading
	on, cmd := f.command(sc, nowMs, 0)
	f.report(sc, &r, on, cmd, reasonNone, nowMs)
	return &r
}

func TestSetpointAppliedAndReported(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(3, 2.5), true, 0)
	r := follow(&f, &sc, 100)
	if r.SetpointState != stateApplied || r.SetpointKw != 2.5 || r.SetpointId != "d1" || r.SetpointSeq != 3 {
		t.Fatalf("reading = %v, want APPLIED d1/3 at 2.5 kW", r)
	}
	if sc.applied.Load() != 1 || sc.received.Load() != 1 {
		t.Fatalf("applied %d received %d, want 1 1", sc.applied.Load(), sc.received.Load())
	}
}

func TestSetpointRefusesLowerSeq(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(5, 2), true, 0)
	f.receive(&sc, fixedSP(4, -3), true, 10)
	if sc.refused[reasonStale].Load() != 1 {
		t.Fatalf("stale refusals = %d, want 1", sc.refused[reasonStale].Load())
	}
	if r := follow(&f, &sc, 20); r.SetpointSeq != 5 || r.SetpointKw != 2 {
		t.Fatalf("reading = %v, want seq 5 at 2 kW held", r)
	}
}

func TestSetpointRefusesExpiredAndInvalid(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(1, 2), true, 70_000)
	if sc.refused[reasonStale].Load() != 1 {
		t.Fatal("expired setpoint not refused as STALE")
	}
	for _, sp := range []*vppv1.Setpoint{fixedSP(2, math.NaN()), fixedSP(0, 1), {DispatchId: "d1", Seq: 3, ExpiryMs: 60_000, HeartbeatTimeoutMs: 1}} {
		f.receive(&sc, sp, true, 0)
	}
	if n := sc.refused[reasonInvalid].Load(); n != 3 {
		t.Fatalf("invalid refusals = %d, want 3", n)
	}
	if r := follow(&f, &sc, 1); r.SetpointState != stateRejected || r.SetpointReason != reasonInvalid {
		t.Fatalf("reading = %v, want REJECTED INVALID", r)
	}
}

func TestSetpointStandbyRefused(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(1, 2), false, 0)
	r := follow(&f, &sc, 10)
	if f.held || r.SetpointState != stateRejected || r.SetpointReason != reasonNotDisp {
		t.Fatalf("held %v reading %v, want refused NOT_DISPATCHABLE", f.held, r)
	}
}

func TestSetpointRefreshRestartsHeartbeat(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(1, 2), true, 0)
	f.receive(&sc, fixedSP(1, 2), true, 800) // refresh
	if r := follow(&f, &sc, 1500); r.SetpointState != stateApplied {
		t.Fatalf("at 1.5 s after a refresh at 0.8 s: %v, want APPLIED", r)
	}
	if r := follow(&f, &sc, 1800); r.SetpointState != stateEnded || r.SetpointReason != reasonHB {
		t.Fatalf("at 1.8 s: %v, want ENDED HEARTBEAT", r)
	}
}

func TestSetpointHeartbeatRevert(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(1, 2), true, 0)
	if r := follow(&f, &sc, 999); r.SetpointState != stateApplied {
		t.Fatalf("before the timeout: %v", r)
	}
	if r := follow(&f, &sc, 1000); r.SetpointState != stateEnded || r.SetpointReason != reasonHB || r.SetpointKw != 0 {
		t.Fatalf("at the timeout: %v, want ENDED HEARTBEAT", r)
	}
	if sc.ended[reasonHB].Load() != 1 {
		t.Fatal("heartbeat end not counted")
	}
	// The outcome stays visible for a while, then the fields go back to zero.
	if r := follow(&f, &sc, 1000+reportHoldMs-1); r.SetpointState != stateEnded {
		t.Fatalf("within the hold: %v", r)
	}
	if r := follow(&f, &sc, 1000+reportHoldMs); r.SetpointState != 0 || r.SetpointId != "" {
		t.Fatalf("after the hold: %v, want zeros", r)
	}
}

func TestSetpointExpiry(t *testing.T) {
	var f follower
	var sc setpointCounters
	sp := fixedSP(1, 2)
	sp.ExpiryMs, sp.HeartbeatTimeoutMs = 500, 10_000
	f.receive(&sc, sp, true, 0)
	if r := follow(&f, &sc, 499); r.SetpointState != stateApplied {
		t.Fatalf("before expiry: %v", r)
	}
	if r := follow(&f, &sc, 500); r.SetpointState != stateEnded || r.SetpointReason != reasonExpired {
		t.Fatalf("at expiry: %v, want ENDED EXPIRED", r)
	}
}

func TestSetpointRelease(t *testing.T) {
	var f follower
	var sc setpointCounters
	f.receive(&sc, fixedSP(1, 2), true, 0)
	other := &vppv1.Setpoint{DeviceId: "dev", DispatchId: "d2", Seq: 2, Mode: vppv1.SetpointMode_SETPOINT_MODE_RELEASE}
	f.receive(&sc, other, true, 10)
	if r := follow(&f, &sc, 20); r.SetpointState != stateApplied {
		t.Fatalf("after a release of another dispatch: %v, want still APPLIED", r)
	}
	rel := &vppv1.Setpoint{DeviceId: "dev", DispatchId: "d1", Seq: 2, Mode: vppv1.SetpointMode_SETPOINT_MODE_RELEASE}
	f.receive(&sc, rel, true, 30)
	if r := follow(&f, &sc, 40); r.SetpointState != stateEnded || r.SetpointReason != reasonReleased {
		t.Fatalf("after release: %v, want ENDED RELEASED", r)
	}
}

func TestSetpointRampRate(t *testing.T) {
	var f follower
	var sc setpointCounters
	sp := fixedSP(1, 3)
	sp.RampKwPerS, sp.HeartbeatTimeoutMs = 1, 10_000
	f.receive(&sc, sp, true, 0)
	for _, c := range []struct {
		ms int64
		kw float64
	}{{0, 0}, {1000, 1}, {2500, 2.5}, {4000, 3}} {
		r := follow(&f, &sc, c.ms)
		if math.Abs(r.SetpointKw-c.kw) > 1e-9 {
			t.Fatalf("at %d ms: %v kW, want %v (1 kW/s)", c.ms, r.SetpointKw, c.kw)
		}
		want, reason := stateClamped, reasonRamping
		if c.kw == 3 {
			want, reason = stateApplied, reasonNone
		}
		if r.SetpointState != want || r.SetpointReason != reason {
			t.Fatalf("at %d ms: %v/%v, want %v/%v", c.ms, r.SetpointState, r.SetpointReason, want, reason)
		}
	}
}

func TestBatteryClampsDispatch(t *testing.T) {
	b := newBattery(1, 0)
	b.socPct = 50
	if kw, why := b.clampDispatch(1e6, 1); kw != b.maxDischargeKW || why != reasonPower {
		t.Fatalf("discharge 1 GW: %v %v, want %v POWER_LIMIT", kw, why, b.maxDischargeKW)
	}
	if kw, why := b.clampDispatch(-1e6, 1); kw != -b.maxChargeKW || why != reasonPower {
		t.Fatalf("charge 1 GW: %v %v, want %v POWER_LIMIT", kw, why, -b.maxChargeKW)
	}
	if kw, why := b.clampDispatch(1, 1); kw != 1 || why != reasonNone {
		t.Fatalf("1 kW: %v %v, want unclamped", kw, why)
	}
	b.socPct = b.reservePct
	if kw, why := b.clampDispatch(1, 1); kw != 0 || why != reasonSoC {
		t.Fatalf("discharge at the reserve: %v %v, want 0 SOC_LIMIT", kw, why)
	}
	b.socPct = 100
	if kw, why := b.clampDispatch(-1, 1); kw != 0 || why != reasonSoC {
		t.Fatalf("charge when full: %v %v, want 0 SOC_LIMIT", kw, why)
	}
}

func TestBatteryStepFollowsDispatch(t *testing.T) {
	b := newBattery(1, 0)
	b.socPct = 50
	soc := b.socPct
	var r vppv1.Reading
	kw := b.maxDischargeKW / 2
	if why := b.stepWith(1, 3, &r, true, kw); why != reasonNone {
		t.Fatalf("clamp %v", why)
	}
	if r.PowerKw != kw || !(b.socPct < soc) {
		t.Fatalf("power %v soc %v→%v, want %v kW discharging (at 03:00 local control idles)", r.PowerKw, soc, b.socPct, kw)
	}
	if why := b.stepWith(1, 3, &r, true, 1e6); why != reasonPower || r.PowerKw != b.maxDischargeKW {
		t.Fatalf("clamp %v power %v, want POWER_LIMIT at %v", why, r.PowerKw, b.maxDischargeKW)
	}
}

// TestClientFollowsSetpointOverWebSocket sends a setpoint downlink to a
// running sim, reads the readings back, drops the connection once the
// device follows it and checks that the device returned to local control
// and did not resume the setpoint after the reconnect.
func TestClientFollowsSetpointOverWebSocket(t *testing.T) {
	var (
		mu       sync.Mutex
		conns    int
		applied  bool
		afterRec []*vppv1.Reading // device 0's readings on the second connection
	)
	var devID string
	up := websocket.Upgrader{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		mu.Lock()
		conns++
		connNo := conns
		mu.Unlock()
		sent := false
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f vppv1.Frame
			if err := proto.Unmarshal(data, &f); err != nil {
				t.Error(err)
				return
			}
			ack := &vppv1.Ack{}
			drop := false
			for _, rd := range f.Readings {
				ack.Devices = append(ack.Devices, &vppv1.DeviceAck{DeviceId: rd.DeviceId, AckedSeq: rd.Seq})
				if rd.DeviceId != devID {
					continue
				}
				mu.Lock()
				following := rd.SetpointState == stateApplied || rd.SetpointState == stateClamped
				if connNo == 1 && following && rd.SetpointId == "d1" {
					if rd.SetpointState == stateApplied && (rd.SetpointKw != 1 || rd.PowerKw != 1) {
						t.Errorf("setpoint_kw %v power_kw %v, want 1 APPLIED", rd.SetpointKw, rd.PowerKw)
					}
					if rd.SetpointState == stateClamped && (rd.SetpointReason != reasonSoC || rd.SetpointKw >= 1) {
						t.Errorf("clamped %v to %v, want below 1 at SOC_LIMIT", rd.SetpointReason, rd.SetpointKw)
					}
					applied, drop = true, true
				}
				if connNo > 1 {
					afterRec = append(afterRec, proto.Clone(rd).(*vppv1.Reading))
				}
				mu.Unlock()
			}
			b, _ := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Ack{Ack: ack}})
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				return
			}
			if drop {
				return
			}
			if connNo == 1 && !sent {
				sent = true
				now := time.Now().UnixMilli()
				for _, id := range []string{devID, "not-here"} {
					sp := &vppv1.Setpoint{DeviceId: id, DispatchId: "d1", Seq: 1, TargetKw: 1,
						Mode: vppv1.SetpointMode_SETPOINT_MODE_FIXED, ExpiryMs: now + 60_000,
						HeartbeatTimeoutMs: 60_000, CreatedMs: now}
					b, _ := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Setpoint{Setpoint: sp}})
					if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
						return
					}
				}
			}
		}
	}))
	defer ts.Close()

	cfg := baseConfig("ws" + strings.TrimPrefix(ts.URL, "http") + "/v1/telemetry")
	cfg.Devices, cfg.Conns, cfg.Rate = 2, 1, 400
	cfg.Duration = 1500 * time.Millisecond
	cfg.Start = time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC) // night: local control idles
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	devID = s.conns[0].devs[0].id
	ctx := t.Context()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !applied || conns < 2 {
		t.Fatalf("applied %v conns %d, want the setpoint applied and a reconnect; stats %+v", applied, conns, s.Stats())
	}
	st := s.Stats().Setpoints
	if st.Received != 1 || st.Unknown != 1 || st.Applied != 1 || st.Ended[reasonHB] != 1 {
		t.Fatalf("setpoint stats %+v, want 1 received, 1 unknown, 1 applied, 1 ended by HEARTBEAT", st)
	}
	if st.LatencyP99 <= 0 || st.LatencyP99 > 5*time.Second {
		t.Fatalf("latency p99 %v", st.LatencyP99)
	}
	if d, ok := st.FirstFollow["d1"]; !ok || d <= 0 || d > 5*time.Second || len(st.FirstFollow) != 1 {
		t.Fatalf("first-follow latencies %v, want one for d1", st.FirstFollow)
	}
	if f := s.Following(); len(f) != 0 {
		t.Fatalf("Following() = %v after the drop, want none", f)
	}
	var fresh int
	for _, r := range afterRec {
		if r.SetpointState == stateApplied || r.SetpointState == stateClamped {
			// Only a retransmit of a reading from before the drop may say so.
			continue
		}
		fresh++
	}
	if len(afterRec) == 0 || fresh == 0 {
		t.Fatalf("%d readings after the reconnect, %d not applying", len(afterRec), fresh)
	}
	last := afterRec[len(afterRec)-1]
	if last.SetpointState != stateEnded || last.SetpointReason != reasonHB || last.PowerKw != 0 {
		t.Fatalf("last reading after the reconnect %v, want ENDED HEARTBEAT at local control (idle)", last)
	}
}

// TestFollowingCountsHeldSetpoints checks Following against the rules: a
// held, effective setpoint counts until its expiry or heartbeat timeout.
func TestFollowingCountsHeldSetpoints(t *testing.T) {
	s, err := New(baseConfig("ws://127.0.0.1:1/v1/telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	d := s.conns[0].devs[0]
	sp := &vppv1.Setpoint{DeviceId: d.id, DispatchId: "d1", Seq: 1, TargetKw: 1, Mode: vppv1.SetpointMode_SETPOINT_MODE_FIXED,
		EffectiveMs: now, ExpiryMs: now + 60_000, HeartbeatTimeoutMs: 60_000, CreatedMs: now}
	d.fol.receive(&s.sp, sp, true, now)
	if f := s.Following(); f["d1"] != 1 || len(f) != 1 {
		t.Fatalf("Following() = %v, want d1: 1", f)
	}
	d.fol.expMs = now // expired
	if f := s.Following(); len(f) != 0 {
		t.Fatalf("Following() = %v after the expiry, want none", f)
	}
	d.fol.expMs, d.fol.refreshMs = now+60_000, now-60_000 // heartbeat timed out
	if f := s.Following(); len(f) != 0 {
		t.Fatalf("Following() = %v after the heartbeat timeout, want none", f)
	}
}
