package api

import (
	"encoding/json"
	"github.com/vppctl/vpp/internal/fleet"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/proto/vppv1"
)

type fixedSource struct{ s *fleet.Snapshot }

func (f fixedSource) Snapshot() *fleet.Snapshot { return f.s }

// apiFleet: two regions; r1 has substations x1 (sites a, b) and x2 (site c);
// r2 has substation y1 (site d).
func apiFleet() *fleet.Tree {
	tree := fleet.NewTree()
	dev := func(id string, soc, power, capacity, temp float64, alarms uint32, offline bool) *vppv1.DeviceState {
		return &vppv1.DeviceState{
			Last: reading(id, 3, soc, power, capacity, temp, alarms), AppliedMs: 1_700_000_000_000, Offline: offline,
			Applied: 3, Duplicates: 1, Gaps: 0, HeadroomDischargeKw: 1.5, HeadroomChargeKw: 0.5,
		}
	}
	tree.ApplySite(&vppv1.SiteState{SiteId: "a", RegionId: "r1", SubstationId: "x1", UpdatedMs: 1_700_000_001_000, Partition: 2, Devices: []*vppv1.DeviceState{
		dev("a1", 50, 2, 10, 20, 0, false),
		dev("a2", 100, -1, 10, 30, uint32(vppv1.Alarm_ALARM_OVER_TEMPERATURE), false),
	}})
	tree.ApplySite(&vppv1.SiteState{SiteId: "b", RegionId: "r1", SubstationId: "x1", UpdatedMs: 1_700_000_002_000, Devices: []*vppv1.DeviceState{
		dev("b1", 0, 0, 5, 25, 0, true),
	}})
	tree.ApplySite(&vppv1.SiteState{SiteId: "c", RegionId: "r1", SubstationId: "x2", UpdatedMs: 1_700_000_003_000, Devices: []*vppv1.DeviceState{
		dev("c1", 20, 4, 20, 15, 0, false),
	}})
	tree.ApplySite(&vppv1.SiteState{SiteId: "d", RegionId: "r2", SubstationId: "y1", UpdatedMs: 1_700_000_000_500, Devices: []*vppv1.DeviceState{
		dev("d1", 80, -3, 10, 40, uint32(vppv1.Alarm_ALARM_LOW_SOC|vppv1.Alarm_ALARM_OVER_TEMPERATURE), false),
	}})
	tree.ApplyIngestStats(&vppv1.IngestStats{Instance: "i1", Received: 100, Rejected: map[string]uint64{"soc_out_of_range": 3}, Published: 95, Acked: 95, Connections: 4, UpdatedMs: 1_700_000_004_000})
	tree.ApplyPartition(&vppv1.PartitionState{Partition: 0, NextOffset: 50, HighWaterMark: 60, Consumed: 50, Applied: 45, Duplicates: 5})
	tree.ApplyPartition(&vppv1.PartitionState{Partition: 1, NextOffset: 45, HighWaterMark: 45, Consumed: 45, Applied: 45, Gaps: 2})
	return tree
}

func get(t *testing.T, h http.Handler, method, path string) (int, http.Header, map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	var m map[string]any
	if strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, body, err)
		}
	}
	return rec.Code, rec.Header(), m, string(body)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestAPIFleet(t *testing.T) {
	h := FleetHandler(fixedSource{apiFleet().Snapshot()}, nil)
	code, hdr, m, body := get(t, h, http.MethodGet, "/api/metrics/fleet")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("code %d type %q", code, hdr.Get("Content-Type"))
	}
	for _, f := range []string{"id", "kind", "devices", "online", "offline", "alarming", "power_kw", "charge_kw", "discharge_kw",
		"capacity_kwh", "energy_kwh", "soc_pct", "headroom_discharge_kw", "headroom_charge_kw", "temperature_min_c",
		"temperature_max_c", "updated_at", "children", "alarms"} {
		if _, ok := m[f]; !ok {
			t.Errorf("field %q missing in %s", f, body)
		}
	}
	// Devices: a1 (50%,+2,10), a2 (100%,-1,10, alarm), b1 (0%,0,5, offline),
	// c1 (20%,+4,20), d1 (80%,-3,10, two alarms).
	want := map[string]float64{
		"devices": 5, "online": 4, "offline": 1, "alarming": 2,
		"power_kw": 2, "charge_kw": 4, "discharge_kw": 6,
		"capacity_kwh": 55, "energy_kwh": 5 + 10 + 0 + 4 + 8, "soc_pct": 27.0 / 55 * 100,
		"headroom_discharge_kw": 4 * 1.5, "headroom_charge_kw": 4 * 0.5,
		"temperature_min_c": 15, "temperature_max_c": 40, "children": 2,
	}
	for k, v := range want {
		if got, _ := m[k].(float64); !near(got, v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if m["id"] != "fleet" || m["kind"] != "fleet" {
		t.Errorf("id/kind %v %v", m["id"], m["kind"])
	}
	if m["updated_at"] != time.UnixMilli(1_700_000_003_000).UTC().Format(time.RFC3339Nano) {
		t.Errorf("updated_at %v", m["updated_at"])
	}
	alarms := m["alarms"].(map[string]any)
	if alarms["over_temperature"] != 2.0 || alarms["low_soc"] != 1.0 || len(alarms) != 2 {
		t.Errorf("alarms %v", alarms)
	}
}

func TestAPIHierarchy(t *testing.T) {
	h := FleetHandler(fixedSource{apiFleet().Snapshot()}, func() time.Time { return time.UnixMilli(1_700_000_010_000) })

	code, _, _, body := get(t, h, http.MethodGet, "/api/metrics/regions")
	var regions []map[string]any
	if err := json.Unmarshal([]byte(body), &regions); code != 200 || err != nil {
		t.Fatalf("regions: %d %v %s", code, err, body)
	}
	if len(regions) != 2 || regions[0]["id"] != "r1" || regions[0]["kind"] != "region" || regions[0]["devices"] != 4.0 || regions[1]["devices"] != 1.0 {
		t.Fatalf("regions %s", body)
	}

	code, _, m, body := get(t, h, http.MethodGet, "/api/metrics/regions/r1")
	subs, _ := m["substations"].([]any)
	if code != 200 || m["kind"] != "region" || len(subs) != 2 || !near(m["power_kw"].(float64), 5) {
		t.Fatalf("region r1: %d %s", code, body)
	}
	if s := subs[0].(map[string]any); s["id"] != "x1" || s["kind"] != "substation" || s["region_id"] != "r1" || s["devices"] != 3.0 {
		t.Fatalf("substation x1 in region: %v", s)
	}

	code, _, m, body = get(t, h, http.MethodGet, "/api/metrics/substations/x1")
	sites, _ := m["sites"].([]any)
	if code != 200 || m["kind"] != "substation" || len(sites) != 2 || !near(m["capacity_kwh"].(float64), 25) || !near(m["energy_kwh"].(float64), 15) {
		t.Fatalf("substation x1: %d %s", code, body)
	}
	if s := sites[1].(map[string]any); s["id"] != "b" || s["offline"] != 1.0 || s["headroom_discharge_kw"] != 0.0 {
		t.Fatalf("site b in substation: %v", s)
	}

	code, _, m, body = get(t, h, http.MethodGet, "/api/metrics/sites/a")
	devs, _ := m["device_list"].([]any)
	if code != 200 || m["kind"] != "site" || m["partition"] != 2.0 || m["substation_id"] != "x1" || m["devices"] != 2.0 || len(devs) != 2 {
		t.Fatalf("site a: %d %s", code, body)
	}
	d := devs[1].(map[string]any)
	for _, f := range []string{"device_id", "seq", "reading_at", "applied_at", "age_s", "offline", "mode", "soc_pct", "soh_pct",
		"power_kw", "voltage_v", "current_a", "temperature_c", "capacity_kwh", "energy_kwh", "max_charge_kw", "max_discharge_kw",
		"alarms", "alarm_bits", "headroom_discharge_kw", "headroom_charge_kw", "applied", "duplicates", "gaps"} {
		if _, ok := d[f]; !ok {
			t.Errorf("device field %q missing: %v", f, d)
		}
	}
	if d["device_id"] != "a2" || d["power_kw"] != -1.0 || d["energy_kwh"] != 10.0 || d["mode"] != "idle" || d["age_s"] != 10.0 || d["seq"] != 3.0 {
		t.Errorf("device a2: %v", d)
	}
	if al := d["alarms"].([]any); len(al) != 1 || al[0] != "over_temperature" {
		t.Errorf("device alarms %v", d["alarms"])
	}
}

func TestAPIErrors(t *testing.T) {
	h := FleetHandler(fixedSource{apiFleet().Snapshot()}, nil)
	for _, tc := range []struct{ path, msg string }{
		{"/api/metrics/regions/x", `region "x" not found`},
		{"/api/metrics/substations/nope", `substation "nope" not found`},
		{"/api/metrics/sites/zz", `site "zz" not found`},
		{"/api/metrics/nothing", "/api/metrics/nothing not found"},
	} {
		code, hdr, m, body := get(t, h, http.MethodGet, tc.path)
		if code != 404 || m["error"] != tc.msg || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %s", tc.path, code, hdr.Get("Content-Type"), body)
		}
	}
	code, hdr, m, body := get(t, h, http.MethodPost, "/api/metrics/fleet")
	if code != 405 || m["error"] == nil || hdr.Get("Content-Type") != "application/json" || !strings.Contains(hdr.Get("Allow"), "GET") {
		t.Errorf("POST fleet: %d %v %s", code, hdr, body)
	}
	code, _, _, _ = get(t, h, http.MethodDelete, "/api/metrics/sites/a")
	if code != 405 {
		t.Errorf("DELETE site: %d", code)
	}
	// The health endpoints sit beside the API on the one mux.
	code, _, m, _ = get(t, NewMux(MuxConfig{Fleet: fixedSource{apiFleet().Snapshot()}}), http.MethodGet, "/healthz")
	if code != 200 || m["status"] != "ok" {
		t.Errorf("healthz %d %v", code, m)
	}
}

func TestAPIPipeline(t *testing.T) {
	h := FleetHandler(fixedSource{apiFleet().Snapshot()}, nil)
	code, _, m, body := get(t, h, http.MethodGet, "/api/metrics/pipeline")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	in := m["ingest"].(map[string]any)
	ag := m["aggregate"].(map[string]any)
	if in["received"] != 100.0 || in["rejected"] != 3.0 || in["published"] != 95.0 || in["acked"] != 95.0 || in["connections"] != 4.0 {
		t.Errorf("ingest %v", in)
	}
	if in["rejected_by_reason"].(map[string]any)["soc_out_of_range"] != 3.0 {
		t.Errorf("rejected by reason %v", in["rejected_by_reason"])
	}
	if ag["consumed"] != 95.0 || ag["applied"] != 90.0 || ag["duplicates"] != 5.0 || ag["gaps"] != 2.0 || ag["undecodable"] != 0.0 || ag["lag"] != 10.0 {
		t.Errorf("aggregate %v", ag)
	}
	if parts := ag["partitions"].([]any); len(parts) != 2 || parts[0].(map[string]any)["lag"] != 10.0 {
		t.Errorf("partitions %v", ag["partitions"])
	}
	if m["unaccounted"] != 2.0 {
		t.Errorf("unaccounted %v", m["unaccounted"])
	}
}

func TestAPIEmpty(t *testing.T) {
	h := FleetHandler(fixedSource{fleet.EmptySnapshot()}, nil)
	code, _, m, body := get(t, h, http.MethodGet, "/api/metrics/fleet")
	if code != 200 || m["devices"] != 0.0 || m["temperature_min_c"] != nil {
		t.Fatalf("%d %s", code, body)
	}
	if code, _, _, body := get(t, h, http.MethodGet, "/api/metrics/regions"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("%d %s", code, body)
	}
}

func reading(dev string, seq uint64, soc, power, capacity, temp float64, alarms uint32) *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: dev, Seq: seq, TsMs: 1_700_000_000_000 + int64(seq), SocPct: soc, SohPct: 97, PowerKw: power,
		VoltageV: 400, CurrentA: power * 2.5, TemperatureC: temp, CapacityKwh: capacity,
		MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_IDLE, Alarms: alarms,
	}
}
