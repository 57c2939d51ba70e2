package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// fleetJSON is the subset of /api/metrics/fleet the tests compare.
type fleetJSON struct {
	Devices     int     `json:"devices"`
	Online      int     `json:"online"`
	PowerKW     float64 `json:"power_kw"`
	EnergyKWh   float64 `json:"energy_kwh"`
	CapacityKWh float64 `json:"capacity_kwh"`
}

type pipelineJSON map[string]any

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// within reports whether got equals want to 1e-6 per device (1 mW, 1 mWh).
func within(got, want float64, devices int) bool {
	return math.Abs(got-want) <= 1e-6*float64(max(devices, 1))
}

func matches(f fleetJSON, t sim.Truth) bool {
	return f.Devices == t.Fleet.Devices &&
		within(f.PowerKW, t.Fleet.PowerKW, t.Fleet.Devices) &&
		within(f.EnergyKWh, t.Fleet.EnergyKWh, t.Fleet.Devices) &&
		within(f.CapacityKWh, t.Fleet.CapacityKWh, t.Fleet.Devices)
}

// runEndToEnd runs sim → ingest → Kafka → aggregate → state → API with 2,000
// devices and 100,000 readings and checks the API's fleet totals against the
// simulator's ground truth.
func runEndToEnd(t *testing.T, aggregators int, duplicateFrames float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := testutil.Logger(slog.LevelInfo)
	opts := kafkatest.Options(t, 6)

	pctx, pcancel := context.WithCancel(ctx)
	p, err := pipeline.Start(pctx, pipeline.Config{Kafka: opts, Aggregators: aggregators, HTTPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatalf("start pipeline: %v", err)
	}
	defer func() {
		pcancel()
		if err := p.Wait(); err != nil {
			t.Errorf("pipeline shutdown: %v", err)
		}
	}()

	s, err := sim.New(sim.Config{
		URL:       p.IngestURL(),
		TokenFunc: p.TokenFunc(),
		Devices:   2000,
		Rate:      50_000,
		Count:     100_000,
		Seed:      42,
		// Midday: the fleet charges, so power totals are not trivially 0.
		Start:           time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		Conns:           50,
		DuplicateFrames: duplicateFrames,
		Logger:          log,
	})
	if err != nil {
		t.Fatalf("sim: %v", err)
	}
	start := time.Now()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("sim run: %v (stats %+v)", err, s.Stats())
	}
	truth := s.Truth()
	ended := time.Now()
	t.Logf("sim: %d readings sent, %d acked in %v", truth.ReadingsSent, truth.ReadingsAcked, time.Since(start).Round(time.Millisecond))
	if truth.Fleet.PowerKW == 0 {
		t.Fatalf("truth has zero fleet power: the test would not check power")
	}
	if truth.ReadingsSent != 100_000 || truth.ReadingsAcked != 100_000 || truth.Devices != 2000 {
		t.Fatalf("truth: sent %d acked %d devices %d, want 100000/100000/2000", truth.ReadingsSent, truth.ReadingsAcked, truth.Devices)
	}

	var f fleetJSON
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := getJSON(ctx, p.APIURL()+"/api/metrics/fleet", &f)
		if err == nil && matches(f, truth) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet never matched the truth: api %+v (err %v), truth %+v", f, err, truth.Fleet)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("converged %v after the sim ended: devices %d power %.6f kW energy %.6f kWh capacity %.6f kWh",
		time.Since(ended).Round(time.Millisecond), f.Devices, f.PowerKW, f.EnergyKWh, f.CapacityKWh)

	// Accounting: every reading ingest received was published (none was
	// invalid) and reached a twin exactly once; duplicates were dropped.
	var pl struct {
		Ingest struct {
			Received  uint64 `json:"received"`
			Published uint64 `json:"published"`
			Acked     uint64 `json:"acked"`
			Rejected  uint64 `json:"rejected"`
		} `json:"ingest"`
		Aggregate struct {
			Consumed   uint64 `json:"consumed"`
			Applied    uint64 `json:"applied"`
			Duplicates uint64 `json:"duplicates"`
			Gaps       uint64 `json:"gaps"`
		} `json:"aggregate"`
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := getJSON(ctx, p.APIURL()+"/api/metrics/pipeline", &pl)
		if err == nil && pl.Aggregate.Applied == 100_000 && pl.Aggregate.Consumed == pl.Ingest.Published && pl.Ingest.Published == pl.Ingest.Received {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline accounting never balanced: %+v (err %v)", pl, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if pl.Aggregate.Applied+pl.Aggregate.Duplicates != pl.Aggregate.Consumed {
		t.Errorf("applied %d + duplicates %d != consumed %d", pl.Aggregate.Applied, pl.Aggregate.Duplicates, pl.Aggregate.Consumed)
	}
	if pl.Aggregate.Gaps != 0 {
		t.Errorf("gaps = %d, want 0", pl.Aggregate.Gaps)
	}
	if duplicateFrames > 0 && pl.Aggregate.Duplicates == 0 {
		t.Errorf("duplicate frames injected but no duplicates counted")
	}
	if duplicateFrames == 0 && pl.Ingest.Received != 100_000 {
		t.Errorf("ingest received %d, want 100000", pl.Ingest.Received)
	}
	t.Logf("pipeline: %+v", pl)

	if aggregators == 1 && duplicateFrames == 0 {
		checkMetrics(ctx, t, p, truth)
		checkInvalidReadingRejected(ctx, t, p, opts, f, truth)
	}
}

// checkInvalidReadingRejected sends a frame with one invalid reading for a
// known device and one valid reading for a new device: the invalid one lands
// in the rejected topic with its reason and moves no total, the valid one is
// applied, and both are acked.
func checkInvalidReadingRejected(ctx context.Context, t *testing.T, p *pipeline.Pipeline, opts kafka.Options, before fleetJSON, truth sim.Truth) {
	t.Helper()
	tok, err := p.TokenFunc()(ctx, nil, []string{"site-0001", "extra-site"})
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, p.IngestURL(), http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial ingest: %v", err)
	}
	defer conn.Close()
	now := time.Now().UnixMilli()
	bad := &vppv1.Reading{DeviceId: "dev-000001", SiteId: "site-0001", SubstationId: "sub-00", RegionId: "north",
		Seq: 1_000_000, TsMs: now, SocPct: 150, SohPct: 95, PowerKw: 0, VoltageV: 400, CapacityKwh: 10,
		MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_IDLE}
	good := &vppv1.Reading{DeviceId: "extra-1", SiteId: "extra-site", SubstationId: "extra-sub", RegionId: "extra-region",
		Seq: 1, TsMs: now, SocPct: 50, SohPct: 95, PowerKw: 2, VoltageV: 400, CurrentA: 5, CapacityKwh: 10,
		MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING}
	frame, err := proto.Marshal(&vppv1.Frame{Readings: []*vppv1.Reading{bad, good}})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		t.Fatalf("write frame: %v", err)
	}
	acked := map[string]uint64{}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for acked["dev-000001"] < bad.Seq || acked["extra-1"] < 1 {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read ack: %v (acked so far %v)", err, acked)
		}
		var dl vppv1.Downlink
		if err := proto.Unmarshal(msg, &dl); err != nil {
			t.Fatalf("decode downlink: %v", err)
		}
		for _, a := range dl.GetAck().GetDevices() {
			acked[a.GetDeviceId()] = max(acked[a.GetDeviceId()], a.GetAckedSeq())
		}
	}

	// The rejected topic holds the invalid reading with its reason.
	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumer(opts.Brokers, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(opts.Topics().Rejected(), 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume rejected: %v", err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		reason := ""
		for _, h := range m.Headers {
			if string(h.Key) == kafka.HeaderReason {
				reason = string(h.Value)
			}
		}
		if reason != "soc_out_of_range" {
			t.Errorf("rejected reason = %q, want soc_out_of_range", reason)
		}
		var r vppv1.Reading
		if err := proto.Unmarshal(m.Value, &r); err != nil || r.GetDeviceId() != "dev-000001" || r.GetSeq() != bad.Seq {
			t.Errorf("rejected record = %v (err %v), want the invalid reading", &r, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no record in the rejected topic")
	}

	// Totals move by the valid reading only.
	want := before
	want.Devices++
	want.PowerKW += good.PowerKw
	want.EnergyKWh += good.SocPct / 100 * good.CapacityKwh
	want.CapacityKWh += good.CapacityKwh
	wantTruth := truth
	wantTruth.Fleet = sim.FleetTruth{Devices: want.Devices, PowerKW: want.PowerKW, EnergyKWh: want.EnergyKWh, CapacityKWh: want.CapacityKWh}
	var f fleetJSON
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := getJSON(ctx, p.APIURL()+"/api/metrics/fleet", &f)
		if err == nil && matches(f, wantTruth) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an invalid and a valid reading: fleet %+v (err %v), want %+v", f, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var pl struct {
		Ingest struct {
			Rejected         uint64            `json:"rejected"`
			RejectedByReason map[string]uint64 `json:"rejected_by_reason"`
		} `json:"ingest"`
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := getJSON(ctx, p.APIURL()+"/api/metrics/pipeline", &pl)
		if err == nil && pl.Ingest.Rejected == 1 && pl.Ingest.RejectedByReason["soc_out_of_range"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline rejected counters = %+v (err %v), want 1 soc_out_of_range", pl, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestEndToEndOneAggregator(t *testing.T)    { runEndToEnd(t, 1, 0) }
func TestEndToEndThreeAggregators(t *testing.T) { runEndToEnd(t, 3, 0) }
func TestEndToEndDuplicateFrames(t *testing.T)  { runEndToEnd(t, 1, 0.2) }

// checkMetrics scrapes /metrics and finds the named series with the values
// the run produced.
func checkMetrics(ctx context.Context, t *testing.T, p *pipeline.Pipeline, truth sim.Truth) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.APIURL()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		`vpp_ingest_readings_total{reason="",result="accepted"}`: float64(truth.ReadingsAcked),
		`vpp_ingest_readings_total{reason="",result="received"}`: float64(truth.ReadingsSent),
		`vpp_ingest_acked_readings_total`:                        float64(truth.ReadingsAcked),
		`vpp_aggregate_owned_readings{result="applied"}`:         float64(truth.ReadingsSent),
		`vpp_aggregate_twins`:                                    float64(truth.Devices),
		`vpp_fleet_devices{state="online"}`:                      float64(truth.Fleet.Devices),
		`vpp_ingest_kafka_up`:                                    1,
	}
	got := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			got[line[:i]] = v
		}
	}
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("metric %s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	if _, ok := got[`vpp_fleet_energy_kilowatt_hours`]; !ok {
		t.Errorf("vpp_fleet_energy_kilowatt_hours missing")
	}
	if n := got[`vpp_aggregate_freshness_seconds_count`]; n != float64(truth.ReadingsSent) {
		t.Errorf("freshness histogram counts %v readings, want %d", n, truth.ReadingsSent)
	}
	if n := got[`vpp_ingest_produce_seconds_count`]; n < float64(truth.ReadingsSent) {
		t.Errorf("produce latency histogram counts %v records, want at least %d", n, truth.ReadingsSent)
	}
	if n := got[`vpp_aggregate_state_publish_seconds_count`]; n < 1 {
		t.Errorf("state publish histogram is empty")
	}
	if _, ok := got[`vpp_aggregate_partition_lag_records{partition="0"}`]; !ok {
		t.Errorf("per-partition lag missing")
	}
}
