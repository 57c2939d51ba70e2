package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/testutil"
)

// TestSweepShape: 4 regions × 5 substations × the sites that hold the
// fleet at the given devices per site, rounded up.
func TestSweepShape(t *testing.T) {
	for _, tc := range []struct{ devices, perSite, sites int }{
		{20_000, 5, 4_000},
		{200_000, 5, 40_000},
		{1_000_000, 5, 200_000},
		{2_001, 5, 420}, // 401 sites needed: 21 per substation
		{100, 5, 20},
		{7, 5, 20}, // at least one site per substation
	} {
		sh := SweepShape(tc.devices, tc.perSite)
		if sh.Regions != 4 || sh.SubstationsPerRegion != 5 || sh.Sites() != tc.sites {
			t.Errorf("%d devices at %d per site: shape %+v (%d sites), want 4 × 5 × … = %d sites", tc.devices, tc.perSite, sh, sh.Sites(), tc.sites)
		}
	}
}

func TestSweepValidate(t *testing.T) {
	good := DefaultSweepConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, c := range map[string]SweepConfig{
		"no fleets":      {},
		"descending":     {Fleets: []int{200_000, 20_000}},
		"repeated":       {Fleets: []int{20_000, 20_000}},
		"below 1 a site": {Fleets: []int{99}, DevicesPerSite: 5},
		"negative rate":  {Fleets: []int{1_000}, Rate: -1},
		"step too short": {Fleets: []int{1_000_000}, Rate: 100_000, Step: 5 * time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v valid", name, c)
		}
	}
}

// TestTopOnceDeviceCount reads the device counts from vpp top --once's
// header as the tui package's golden of it prints them, so a change of
// the header's format fails here rather than in a sweep.
func TestTopOnceDeviceCount(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("..", "tui", "testdata", "TestOnce.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := topOnceDeviceCount(string(golden)); err != nil || n != 18 {
		t.Errorf("golden: %d devices, %v; want 17 on + 1 off", n, err)
	}
	if n, err := topOnceDeviceCount("Devices 999,998 on · 2 off · 0 alarm"); err != nil || n != 1_000_000 {
		t.Errorf("grouped digits: %d, %v", n, err)
	}
	if _, err := topOnceDeviceCount("fleet not loaded"); err == nil {
		t.Error("no header: no error")
	}
}

// TestMedianSweep: each figure of a fleet size is the median over runs.
func TestMedianSweep(t *testing.T) {
	run := func(cpu time.Duration, catchUp time.Duration, rss int64) []SweepPoint {
		return []SweepPoint{{Devices: 500, Step: Step{Applied: 1000, IngestCPU: cpu, AggregatePeakRSS: rss}, CatchUp: catchUp, ReaderPeakRSS: rss}}
	}
	m := MedianSweep([][]SweepPoint{run(9, 3*time.Second, 30), run(7, 1*time.Second, 10), run(8, 9*time.Second, 20)})
	if len(m) != 1 {
		t.Fatalf("%d points", len(m))
	}
	if p := m[0]; p.Step.IngestCPU != 8 || p.CatchUp != 3*time.Second || p.ReaderPeakRSS != 20 || p.Step.AggregatePeakRSS != 20 {
		t.Errorf("median %+v, want ingest CPU 8, catch-up 3 s, RSS 20", p)
	}
}

// TestSweep runs a sweep of two tiny fleets against Kafka (real in CI)
// with child vpp processes: the plumbing, not the performance. vpp top
// --once must show every device of each fleet.
func TestSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vpp and runs child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := testutil.BuildVPP(ctx, t)
	var progress strings.Builder
	cfg := DefaultSweepConfig()
	cfg.Kafka, cfg.Exe, cfg.Fleets, cfg.Rate, cfg.Step = kafkatest.Options(t, 4), bin, []int{500, 2_000}, 2_000, 2*time.Second
	cfg.FlushInterval, cfg.CatchUpTimeout, cfg.Progress = 100*time.Millisecond, time.Minute, &progress
	pts, err := Sweep(ctx, cfg)
	t.Log(progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 {
		t.Fatalf("%d points, want 2", len(pts))
	}
	for i, want := range []struct{ devices, sites int }{{500, 100}, {2_000, 400}} {
		p := pts[i]
		if p.Devices != want.devices || p.Sites != want.sites {
			t.Errorf("point %d: %d devices at %d sites, want %d at %d", i, p.Devices, p.Sites, want.devices, want.sites)
		}
		if p.ReaderDevices != int64(want.devices) {
			t.Errorf("%d devices: vpp top --once showed %d", want.devices, p.ReaderDevices)
		}
		if p.CatchUp <= 0 || p.ReaderPeakRSS <= 0 || p.StateRecords <= 0 {
			t.Errorf("%d devices: reader catch-up %v, peak RSS %d, state records %d", want.devices, p.CatchUp, p.ReaderPeakRSS, p.StateRecords)
		}
		s := p.Step
		if s.AckedRate <= 0 || s.Applied <= 0 || s.IngestCPU <= 0 || s.AggregateCPU <= 0 {
			t.Errorf("%d devices: acked %v/s, applied %v/s, CPU/reading ingest %v aggregate %v", want.devices, s.AckedRate, s.Applied, s.IngestCPU, s.AggregateCPU)
		}
		if s.IngestPeakRSS < s.IngestRSS || s.AggregatePeakRSS < s.AggregateRSS || s.IngestRSS <= 0 || s.AggregateRSS <= 0 {
			t.Errorf("%d devices: RSS ingest %d (peak %d), aggregate %d (peak %d)", want.devices, s.IngestRSS, s.IngestPeakRSS, s.AggregateRSS, s.AggregatePeakRSS)
		}
		if s.DrainTime >= time.Minute {
			t.Errorf("%d devices: backlog did not drain: %+v", want.devices, s)
		}
	}
}
