package metrics_test

import (
	"bufio"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/latency"
	"github.com/vppctl/vpp/internal/metrics"
)

// contract lists every vpp metric the collectors expose: name, type and
// label names (sorted). Dashboards and alerts are written against these, so
// a metric renamed, retyped or relabelled must change this list on purpose.
var contract = []string{
	"vpp_aggregate_consumer_lag_records gauge",
	"vpp_aggregate_freshness_seconds histogram",
	"vpp_aggregate_owned_readings gauge result",
	"vpp_aggregate_partition_lag_records gauge partition",
	"vpp_aggregate_partitions gauge",
	"vpp_aggregate_sites gauge",
	"vpp_aggregate_state_publish_seconds histogram",
	"vpp_aggregate_twins gauge",
	"vpp_fleet_capacity_kilowatt_hours gauge",
	"vpp_fleet_devices gauge state",
	"vpp_fleet_energy_kilowatt_hours gauge",
	"vpp_fleet_headroom_kilowatts gauge direction",
	"vpp_fleet_power_kilowatts gauge flow",
	"vpp_fleet_soc_percent gauge",
	"vpp_ingest_acked_readings_total counter",
	"vpp_ingest_buffer_bytes gauge",
	"vpp_ingest_buffer_capacity_bytes gauge",
	"vpp_ingest_buffer_capacity_records gauge",
	"vpp_ingest_buffer_records gauge",
	"vpp_ingest_connections gauge",
	"vpp_ingest_frames_total counter",
	"vpp_ingest_idle_closed_total counter",
	"vpp_ingest_kafka_up gauge",
	"vpp_ingest_produce_errors_total counter",
	"vpp_ingest_produce_seconds histogram",
	"vpp_ingest_protocol_errors_total counter code",
	"vpp_ingest_rate_limited_frames_total counter",
	"vpp_ingest_rate_limited_wait_seconds_total counter",
	"vpp_ingest_setpoints_total counter result",
	"vpp_ingest_setpoint_reader_errors_total counter",
	"vpp_ingest_readings_total counter reason,result",
	"vpp_ingest_refused_handshakes_total counter reason",
}

type fleetSource struct{}

func (fleetSource) Snapshot() *fleet.Snapshot { return fleet.EmptySnapshot() }

func lat() latency.Snapshot {
	var h latency.Histogram
	h.Observe(3e6) // 3 ms
	return h.Snapshot()
}

// scrape serves /metrics from collectors whose sources fill every labelled
// series (an empty label value is left out of the exposition), and returns
// the body.
func scrape(t *testing.T) string {
	t.Helper()
	ing := metrics.NewIngestCollector(func() ingest.Stats {
		return ingest.Stats{
			Received: 10, Published: 8, Frames: 3, Acked: 8, Connections: 1,
			Rejected:       map[string]uint64{"invalid": 2},
			ProtocolErrors: map[int]uint64{1002: 1},
			Refused:        map[string]uint64{"conn_limit": 1},
		}
	}).WithProducer(func() (latency.Snapshot, uint64, bool) { return lat(), 1, true })
	agg := metrics.NewAggregateCollector(func() aggregate.Stats {
		return aggregate.Stats{
			Partitions:     []int32{0},
			PartitionLag:   map[int32]int64{0: 4},
			PublishLatency: lat(),
			Freshness:      lat(),
		}
	})
	srv := httptest.NewServer(metrics.Handler(ing, agg, metrics.NewFleetCollector(fleetSource{})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read scrape: %v", err)
	}
	return string(b)
}

// exposed parses the text exposition into the contract's form: for each vpp
// metric family its type (from # TYPE) and the label names its samples
// carry (le of histogram buckets aside).
func exposed(t *testing.T, body string) []string {
	t.Helper()
	types := map[string]string{}
	labels := map[string]map[string]bool{}
	family := func(sample string) string {
		if _, ok := types[sample]; ok {
			return sample
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(sample, suf); ok && types[f] == "histogram" {
				return f
			}
		}
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if strings.HasPrefix(name, "vpp_") {
				types[name] = typ
				labels[name] = map[string]bool{}
			}
			continue
		}
		if !strings.HasPrefix(line, "vpp_") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		var ls string
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name, rest = line[:i], line[i+1:]
			ls, _, _ = strings.Cut(rest, "}")
		}
		f := family(name)
		if f == "" {
			t.Errorf("sample %q has no # TYPE line", line)
			continue
		}
		for _, kv := range strings.Split(ls, ",") {
			if k, _, ok := strings.Cut(kv, "="); ok && k != "le" {
				labels[f][k] = true
			}
		}
	}
	var out []string
	for name, typ := range types {
		s := name + " " + typ
		if ks := slices.Sorted(maps.Keys(labels[name])); len(ks) > 0 {
			s += " " + strings.Join(ks, ",")
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestMetricContract: the scraped families, types and label names are
// exactly the contract.
func TestMetricContract(t *testing.T) {
	body := scrape(t)
	got := exposed(t, body)
	for _, c := range contract {
		if !slices.Contains(got, c) {
			t.Errorf("missing or changed: %q", c)
		}
	}
	for _, g := range got {
		if !slices.Contains(contract, g) {
			t.Errorf("not in the contract: %q", g)
		}
	}
	if t.Failed() {
		t.Logf("exposed:\n%s", strings.Join(got, "\n"))
	}
}

// TestMetricHelp: every vpp metric says what it counts.
func TestMetricHelp(t *testing.T) {
	body := scrape(t)
	for _, c := range contract {
		name, _, _ := strings.Cut(c, " ")
		i := strings.Index(body, "# HELP "+name+" ")
		if i < 0 {
			t.Errorf("%s: no # HELP line", name)
			continue
		}
		help, _, _ := strings.Cut(body[i+len("# HELP "+name+" "):], "\n")
		if len(strings.TrimSpace(help)) < 10 {
			t.Errorf("%s: help %q says too little", name, help)
		}
	}
}

// TestRuntimeCollectors: the handler also serves the Go runtime and process
// metrics that operators' standard dashboards read.
func TestRuntimeCollectors(t *testing.T) {
	body := scrape(t)
	names := []string{"go_goroutines", "go_memstats_heap_alloc_bytes"}
	if runtime.GOOS == "linux" {
		names = append(names, "process_resident_memory_bytes")
	}
	for _, name := range names {
		if !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("no %s", name)
		}
	}
}
