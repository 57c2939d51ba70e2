package api

import (
	"net/http"
	"testing"

	"github.com/vppctl/vpp/internal/fleet"
)

// TestAPILoading: while the source loads, the fleet answer says so with
// the progress and keeps its fields, and every answer has the header.
func TestAPILoading(t *testing.T) {
	snap := apiFleet().Snapshot()
	devices := snap.Fleet.Rollup.Devices
	snap.Load = fleet.Load{Loading: true, Partitions: 64, Done: 12, Records: 1000, Read: 415, Percent: 41.5}
	h := FleetHandler(fixedSource{snap}, nil)
	code, hdr, body, raw := get(t, h, http.MethodGet, "/api/metrics/fleet")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, raw)
	}
	if body["loading"] != true || body["complete"] != false || body["devices"] != float64(devices) {
		t.Errorf("fleet answer while loading: %s", raw)
	}
	load, _ := body["load"].(map[string]any)
	if load["partitions"] != float64(64) || load["partitions_loaded"] != float64(12) || load["records_loaded"] != float64(415) || load["status"] != "loading 12/64 partitions (41 %)" {
		t.Errorf("load %v", load)
	}
	if got := hdr.Get(LoadingHeader); got != "loading 12/64 partitions (41 %)" {
		t.Errorf("%s = %q", LoadingHeader, got)
	}
	if _, hdr, _, _ := get(t, h, http.MethodGet, "/api/metrics/regions"); hdr.Get(LoadingHeader) == "" {
		t.Errorf("regions answer without %s while loading", LoadingHeader)
	}

	snap.Load = fleet.Load{} // complete
	_, hdr, body, raw = get(t, h, http.MethodGet, "/api/metrics/fleet")
	if body["loading"] != false || body["complete"] != true || hdr.Get(LoadingHeader) != "" {
		t.Errorf("fleet answer when complete: %s (header %q)", raw, hdr.Get(LoadingHeader))
	}
}
