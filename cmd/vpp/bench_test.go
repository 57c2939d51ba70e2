package main

import (
	"reflect"
	"slices"
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
		"--reader-devices", "0", "--twin-devices", "0", "--max-rate", "1M", "--runs", "3", "--freshness-sample", "1")
	if err != nil {
		t.Fatal(err)
	}
	o := *got
	c := o.cfg
	if o.embedded || !slices.Equal(c.Kafka.Brokers, []string{"k:9092"}) || c.Kafka.Prefix != "lab." {
		t.Errorf("embedded %v, kafka %+v", o.embedded, c.Kafka)
	}
	if c.Step != 5*time.Second || !slices.Equal(c.Rates, []float64{10_000, 50_000}) || c.Devices != 100_000 ||
		c.MaxRate != 1e6 || o.runs != 3 || c.FreshnessSample != 1 {
		t.Errorf("config %+v, runs %d", c, o.runs)
	}
	if c.ReaderDevices != 0 || c.TwinDevices != 0 {
		t.Errorf("reader %d, twin %d devices: want 0 (skip)", c.ReaderDevices, c.TwinDevices)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--runs", "0"}, {"--rates", "10k,fast"}, {"--devices", "many"}} {
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
