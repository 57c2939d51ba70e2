package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// rawDevice is a device of the raw client with its fixed ratings.
type rawDevice struct {
	id, site, sub, region string
	capacity, limit       float64
}

// rawReading returns a valid reading of d with seq, random power and SoC.
func rawReading(d rawDevice, seq uint64, ts time.Time, rng *rand.Rand) *vppv1.Reading {
	p := (rng.Float64()*2 - 1) * d.limit
	mode := vppv1.Mode_MODE_DISCHARGING
	if p < 0 {
		mode = vppv1.Mode_MODE_CHARGING
	}
	return &vppv1.Reading{
		DeviceId: d.id, SiteId: d.site, SubstationId: d.sub, RegionId: d.region,
		Seq: seq, TsMs: ts.UnixMilli(),
		SocPct: 5 + rng.Float64()*90, SohPct: 97, PowerKw: p, VoltageV: 400, CurrentA: p * 1000 / 400,
		TemperatureC: 25, CapacityKwh: d.capacity, MaxChargeKw: d.limit, MaxDischargeKw: d.limit, Mode: mode,
	}
}

// ackWatcher collects a connection's acks: the highest acked seq per device.
type ackWatcher struct {
	mu    sync.Mutex
	acked map[string]uint64
	err   error
}

func watchAcks(ws *websocket.Conn) *ackWatcher {
	w := &ackWatcher{acked: make(map[string]uint64)}
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			var d vppv1.Downlink
			if err := proto.Unmarshal(b, &d); err != nil {
				w.mu.Lock()
				w.err = fmt.Errorf("downlink: %w", err)
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			for _, a := range d.GetAck().GetDevices() {
				w.acked[a.GetDeviceId()] = max(w.acked[a.GetDeviceId()], a.GetAckedSeq())
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// all reports whether every device is acked up to seq.
func (w *ackWatcher) all(devs []rawDevice, seq uint64) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range devs {
		if w.acked[d.id] < seq {
			return false, w.err
		}
	}
	return true, nil
}

// TestDuplicatesAndReordering talks to `vpp ingest` with a raw WebSocket
// client that behaves badly: every frame carries two rounds of readings of
// every device in shuffled order (so a device's seq n+1 often precedes its
// seq n in the same frame), and after each frame it resends, byte for
// byte, an older frame with probability 0.3 — also after the last one.
// The fleet totals must equal the truth of what it sent (each device's
// reading with the highest seq), and every duplicate — resent readings and
// those overtaken within a frame — must be dropped by the twins: the
// duplicates count equals the exact number computed from the send order.
func TestDuplicatesAndReordering(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := testutil.BuildVPP(ctx, t)
	opts := kafkaOptions(kafkatest.Brokers(t), "fault-dup", 6, 1)
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	listen, httpAddr := freeAddr(t), freeAddr(t)
	startIngest(t, ctx, dir, bin, opts, listen, httpAddr)
	startAggregate(t, dir, bin, opts, opts.Prefix+"aggregate", "a0")
	r := startReader(t, ctx, opts)

	const (
		devices = 200
		rounds  = 40 // seqs 1…rounds per device, two per frame
		resendP = 0.3
	)
	rng := rand.New(rand.NewPCG(7, 7))
	devs := make([]rawDevice, devices)
	for i := range devs {
		devs[i] = rawDevice{
			id: fmt.Sprintf("raw-%03d", i), site: fmt.Sprintf("raw-site-%02d", i%20),
			sub: fmt.Sprintf("raw-sub-%d", i%20/4), region: fmt.Sprintf("raw-reg-%d", i%20/10),
			capacity: 5 + float64(rng.IntN(20)), limit: 2 + float64(rng.IntN(8)),
		}
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+listen+"/v1/telemetry", nil)
	if err != nil {
		t.Fatalf("dial ingest: %v", err)
	}
	defer ws.Close()
	acks := watchAcks(ws)

	// Build and send the frames; track, in send order, the highest seq
	// per device to count the duplicates the twins must drop.
	last := make(map[string]*vppv1.Reading, devices)
	high := make(map[string]uint64, devices)
	var frames [][]byte
	var sent, resent, expectDup int64
	account := func(rs []*vppv1.Reading) {
		for _, rd := range rs {
			if rd.GetSeq() <= high[rd.GetDeviceId()] {
				expectDup++
				continue
			}
			high[rd.GetDeviceId()] = rd.GetSeq()
		}
	}
	send := func(b []byte) {
		t.Helper()
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatalf("write frame: %v", err)
		}
	}
	parsed := make([][]*vppv1.Reading, 0, rounds/2)
	base := time.Now().Add(-time.Duration(rounds) * time.Second)
	for f := range rounds / 2 {
		var rs []*vppv1.Reading
		for _, d := range devs {
			for k := range 2 {
				seq := uint64(2*f + k + 1)
				rd := rawReading(d, seq, base.Add(time.Duration(seq)*time.Second), rng)
				rs = append(rs, rd)
				if seq == rounds {
					last[d.id] = rd
				}
			}
		}
		rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
		b, err := proto.Marshal(&vppv1.Frame{Readings: rs})
		if err != nil {
			t.Fatal(err)
		}
		frames, parsed = append(frames, b), append(parsed, rs)
		send(b)
		sent += int64(len(rs))
		account(rs)
		if f > 0 && rng.Float64() < resendP {
			old := rng.IntN(f)
			send(frames[old])
			resent += int64(len(parsed[old]))
			account(parsed[old])
		}
	}
	for range 3 { // late resends after the newest readings
		old := rng.IntN(len(frames) - 1)
		send(frames[old])
		resent += int64(len(parsed[old]))
		account(parsed[old])
	}
	sentAt := time.Now()
	waitUntil(t, ctx, 60*time.Second, "every device acked up to its last seq", func() bool {
		ok, err := acks.all(devs, rounds)
		if err != nil {
			t.Fatalf("ack stream: %v", err)
		}
		return ok
	})
	end := time.Now()

	var truth sim.Truth
	truth.Devices, truth.Fleet.Devices = devices, devices
	truth.ReadingsSent, truth.ReadingsAcked = sent, sent
	for _, d := range devs {
		rd := last[d.id]
		truth.Fleet.PowerKW += rd.GetPowerKw()
		truth.Fleet.EnergyKWh += rd.GetSocPct() / 100 * rd.GetCapacityKwh()
		truth.Fleet.CapacityKWh += rd.GetCapacityKwh()
	}
	tel := waitTelemetry(t, ctx, opts, sent, 30*time.Second)
	checkAcked(t, tel, truth)
	if int64(tel.records) != sent+resent {
		t.Errorf("telemetry holds %d records; the client sent %d readings and resent %d", tel.records, sent, resent)
	}
	conv, _, ok := waitTotals(t, ctx, r, truth, end, 30*time.Second)
	acct := waitAccounting(ctx, r, tel.records, 15*time.Second)
	if int64(acct.Duplicates) != expectDup {
		t.Errorf("twins dropped %d duplicates; the send order has %d (%d resent, the rest overtaken within a frame)",
			acct.Duplicates, expectDup, resent)
	}
	if acct.Applied+acct.Duplicates != acct.Consumed {
		t.Errorf("accounting: applied %d + duplicates %d != consumed %d", acct.Applied, acct.Duplicates, acct.Consumed)
	}
	result{
		Fault: "duplicate frames + readings reordered within frames", Broker: brokerKind(""),
		Sent: sent, Acked: sent, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{
			fmt.Sprintf("%d readings resent in %d-reading frames, %d duplicates expected from the send order; acked %s after the last frame",
				resent, 2*devices, expectDup, end.Sub(sentAt).Round(10*time.Millisecond)),
		},
	}.report(t)
}
