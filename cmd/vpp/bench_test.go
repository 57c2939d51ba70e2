package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/bench"
	"github.com/vppctl/vpp/internal/kafka"
)

func TestBenchFlagDefaults(t *testing.T) {
	runF, got := capture[benchOptions]()
	if err := parseCmd(t, newBenchCmd(runF), ""); err != nil {
		t.Fatal(err)
	}
	o := *got
	if o == nil {
		t.Fatal("runF did not run")
	}
	want := bench.DefaultConfig()
	want.Kafka = o.cfg.Kafka
	if !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("config from the default flags\n got %+v\nwant %+v", o.cfg, want)
	}
	if o.cfg.Kafka.Prefix != "bench." || o.cfg.Kafka.ClientID != "vpp-bench" {
		t.Errorf("kafka options %+v, want the bench. prefix", o.cfg.Kafka)
	}
	if !o.embedded || o.runs != 1 {
		t.Errorf("embedded %v, runs %d", o.embedded, o.runs)
	}
}

func TestBenchFlags(t *testing.T) {
	runF, got := capture[benchOptions]()
	err := parseCmd(t, newBenchCmd(runF), "",
		"--brokers", "k:9092", "--topic-prefix", "lab.", "--step", "5s", "--rates", "10k,50k", "--devices", "100k",
		"--reader-devices", "0", "--twin-devices", "0", "--max-rate", "1M", "--runs", "3", "--freshness-sample", "1",
		"--devices-per-site", "5", "--insecure")
	if err != nil {
		t.Fatal(err)
	}
	o := *got
	c := o.cfg
	if o.embedded || !slices.Equal(c.Kafka.Brokers, []string{"k:9092"}) || c.Kafka.Prefix != "lab." {
		t.Errorf("embedded %v, kafka %+v", o.embedded, c.Kafka)
	}
	if c.Step != 5*time.Second || !slices.Equal(c.Rates, []float64{10_000, 50_000}) || c.Devices != 100_000 ||
		c.MaxRate != 1e6 || o.runs != 3 || c.FreshnessSample != 1 || c.DevicesPerSite != 5 || !c.Insecure {
		t.Errorf("config %+v, runs %d", c, o.runs)
	}
	if c.ReaderDevices != 0 || c.TwinDevices != 0 {
		t.Errorf("reader %d, twin %d devices: want 0 (skip)", c.ReaderDevices, c.TwinDevices)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--runs", "0"}, {"--rates", "10k,fast"}, {"--devices", "many"}, {"--devices-per-site", "-1"}} {
		runF, got := capture[benchOptions]()
		wantUsageError(t, args, parseCmd(t, newBenchCmd(runF), "", args...), *got)
	}
}

func TestBenchConnsFlags(t *testing.T) {
	runF, got := capture[benchConnsOptions]()
	if err := parseCmd(t, newBenchConnsCmd(runF), ""); err != nil {
		t.Fatal(err)
	}
	if o := *got; !reflect.DeepEqual(o.cfg, bench.DefaultConnsConfig()) {
		t.Errorf("config from the default flags\n got %+v\nwant %+v", o.cfg, bench.DefaultConnsConfig())
	}
	runF, got = capture[benchConnsOptions]()
	err := parseCmd(t, newBenchConnsCmd(runF), "",
		"--conns", "2000", "--brokers", "a:1, ,b:2", "--readings", "0", "--settle", "5s", "--auth", "--ingest-exe", "/tmp/vpp-old")
	if err != nil {
		t.Fatal(err)
	}
	c := (*got).cfg
	if c.Conns != 2000 || !slices.Equal(c.Brokers, []string{"a:1", "b:2"}) || c.Readings != 0 || c.Settle != 5*time.Second ||
		!c.Auth || c.IngestExe != "/tmp/vpp-old" || c.Keepalive != bench.DefaultConnsKeepalive {
		t.Errorf("config %+v", c)
	}
	for _, args := range [][]string{{"--conns", "0"}, {"--settle", "soon"}} {
		runF, got := capture[benchConnsOptions]()
		wantUsageError(t, args, parseCmd(t, newBenchConnsCmd(runF), "", args...), *got)
	}
}

func TestBrokerFlags(t *testing.T) {
	runF, got := capture[brokerOptions]()
	if err := parseCmd(t, newBrokerCmd(runF), ""); err != nil {
		t.Fatal(err)
	}
	if b := (*got).broker; b.Listen != kafka.DefaultBrokers || b.DataDir != "" || b.CompactionInterval != kafka.DefaultCompactionInterval {
		t.Errorf("defaults %+v", b)
	}
	runF, got = capture[brokerOptions]()
	if err := parseCmd(t, newBrokerCmd(runF), "", "--listen", "127.0.0.1:0", "--data-dir", "/var/lib/vpp", "--compaction-interval", "10s"); err != nil {
		t.Fatal(err)
	}
	if b := (*got).broker; b.Listen != "127.0.0.1:0" || b.DataDir != "/var/lib/vpp" || b.CompactionInterval != 10*time.Second {
		t.Errorf("flags %+v", b)
	}
}

func TestBenchSweepFlags(t *testing.T) {
	runF, got := capture[benchSweepOptions]()
	if err := parseCmd(t, newBenchSweepCmd(runF), ""); err != nil {
		t.Fatal(err)
	}
	o := *got
	want := bench.DefaultSweepConfig()
	want.Kafka = o.cfg.Kafka
	if !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("config from the default flags\n got %+v\nwant %+v", o.cfg, want)
	}
	if !slices.Equal(o.cfg.Fleets, []int{20_000, 200_000, 1_000_000}) || o.cfg.Rate != 100_000 || o.cfg.Step != 40*time.Second ||
		o.cfg.DevicesPerSite != 5 || o.cfg.OfflineAfter != 5*time.Minute {
		t.Errorf("defaults %+v: want 20k,200k,1M at 100k/s for 40 s, 5 per site, offline after 5m", o.cfg)
	}
	if !o.embedded || o.runs != 1 || o.cfg.Kafka.Prefix != "bench." {
		t.Errorf("embedded %v, runs %d, prefix %q", o.embedded, o.runs, o.cfg.Kafka.Prefix)
	}

	runF, got = capture[benchSweepOptions]()
	err := parseCmd(t, newBenchSweepCmd(runF), "", "--brokers", "k:9092", "--topic-prefix", "lab.", "--devices", "2k, 20k,1.5M",
		"--devices-per-site", "10", "--rate", "50k", "--step", "30s", "--runs", "3", "--conns", "64", "--catch-up-timeout", "30s")
	if err != nil {
		t.Fatal(err)
	}
	o = *got
	c := o.cfg
	if o.embedded || !slices.Equal(c.Kafka.Brokers, []string{"k:9092"}) || c.Kafka.Prefix != "lab." {
		t.Errorf("embedded %v, kafka %+v", o.embedded, c.Kafka)
	}
	if !slices.Equal(c.Fleets, []int{2_000, 20_000, 1_500_000}) || c.DevicesPerSite != 10 || c.Rate != 50_000 ||
		c.Step != 30*time.Second || o.runs != 3 || c.Conns != 64 || c.CatchUpTimeout != 30*time.Second {
		t.Errorf("config %+v, runs %d", c, o.runs)
	}

	for _, args := range [][]string{
		{"--runs", "0"}, {"--devices", "20k,many"}, {"--devices", ""}, {"--devices", "200k,20k"},
		{"--devices", "50"}, // fewer than 20 substations × 5 devices per site
		{"--devices-per-site", "0"}, {"--rate", "0"}, {"--step", "0s"},
		{"--step", "5s"}, // 100k readings/s for 5 s do not reach 1M devices
	} {
		runF, got := capture[benchSweepOptions]()
		wantUsageError(t, args, parseCmd(t, newBenchSweepCmd(runF), "", args...), *got)
	}
}

// TestPrintBenchSweep: one row per fleet size, each CPU figure with its
// ratio to the smallest fleet's, memory in MB and bytes per device, and a
// reader that did not show the whole fleet marked.
func TestPrintBenchSweep(t *testing.T) {
	cfg := bench.DefaultSweepConfig()
	cfg.Kafka.Brokers = []string{"127.0.0.1:39092"}
	pts := []bench.SweepPoint{
		{Devices: 20_000, Sites: 4_000, CatchUp: 900 * time.Millisecond, ReaderDevices: 20_000, ReaderPeakRSS: 40e6, Step: bench.Step{
			AckedRate: 99_500, Applied: 99_400, Sustained: true, DrainTime: 100 * time.Millisecond,
			IngestCPU: 7 * time.Microsecond, AggregateCPU: 5 * time.Microsecond,
			IngestRSS: 80e6, IngestPeakRSS: 90e6, AggregateRSS: 95e6, AggregatePeakRSS: 100e6}},
		{Devices: 1_000_000, Sites: 200_000, CatchUp: 15 * time.Second, ReaderDevices: 538_800, ReaderPeakRSS: 2e9, Step: bench.Step{
			AckedRate: 50_900, Applied: 50_000, Sustained: false, DrainTime: 60 * time.Second,
			IngestCPU: 14 * time.Microsecond, AggregateCPU: 26 * time.Microsecond,
			IngestRSS: 600e6, IngestPeakRSS: 658e6, AggregateRSS: 2e9, AggregatePeakRSS: 2.07e9}},
	}
	var b strings.Builder
	printBenchSweep(&b, &cfg, pts, 3)
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a title, a header and 2 rows:\n%s", len(lines), out)
	}
	for _, want := range []string{"median of 3 runs", "100k readings/s for 40s", "5 devices per site", "127.0.0.1:39092"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("title %q lacks %q", lines[0], want)
		}
	}
	for i, want := range [][]string{
		{"20,000", "4,000", "99.5k", "99.4k", "yes (0.1 s)", "7.00 µs (1.00×)", "5.00 µs (1.00×)", "80/90 MB", " 4500 ", "95/100 MB", " 5000 ", "0.90 s", "40 MB", " 2000"},
		{"1,000,000", "200,000", "50.9k", "50k", "no (60.0 s)", "14.00 µs (2.00×)", "26.00 µs (5.20×)", "600/658 MB", " 658 ", "2000/2070 MB", " 2070 ", "15.00 s (538800 devices!)", "2000 MB"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[2+i], w) {
				t.Errorf("row %d %q lacks %q", i, lines[2+i], w)
			}
		}
	}
}
