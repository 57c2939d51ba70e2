package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/spool"
)

func TestIngestFlagDefaults(t *testing.T) {
	runF, got := capture[ingestOptions]()
	if err := parseCmd(t, newIngestCmd(runF), "", "--insecure"); err != nil {
		t.Fatal(err)
	}
	o := *got
	if o == nil {
		t.Fatal("runF did not run")
	}
	want := ingest.DefaultConfig()
	want.Kafka = o.cfg.Kafka
	want.Insecure = true
	if !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("config from the default flags\n got %+v\nwant %+v", o.cfg, want)
	}
	if k := o.cfg.Kafka; !slices.Equal(k.Brokers, []string{kafka.DefaultBrokers}) || k.Prefix != kafka.DefaultPrefix || k.ClientID != "vpp-ingest" {
		t.Errorf("kafka options %+v", k)
	}
	if !o.status || o.http != "" || o.spoolDir != "" || o.errOut == nil {
		t.Errorf("status %v, http %q, spool dir %q, stderr %v", o.status, o.http, o.spoolDir, o.errOut)
	}
	if o.spoolMax.V != spool.DefaultMaxBytes || o.spoolSegment.V != spool.DefaultSegmentBytes || o.spoolInterval != spool.DefaultFsyncInterval || o.spoolFsync != "always" {
		t.Errorf("spool flags: max %d, segment %d, interval %v, fsync %q", o.spoolMax.V, o.spoolSegment.V, o.spoolInterval, o.spoolFsync)
	}
	if o.sec.leeway != 30*time.Second {
		t.Errorf("auth leeway %v", o.sec.leeway)
	}
}

func TestIngestFlags(t *testing.T) {
	runF, got := capture[ingestOptions]()
	err := parseCmd(t, newIngestCmd(runF), "",
		"--insecure", "--brokers", "k1:9092, k2:9092", "--listen", ":9000", "--max-frame-bytes", "2MiB",
		"--buffer-bytes", "1MiB", "--buffer-records", "500", "--power-tolerance", "0", "--device-rate", "0",
		"--device-burst", "7", "--max-conns", "3", "--auth-leeway", "0", "--status=false", "--http", "127.0.0.1:8082",
		"--spool-dir", "/var/spool/vpp", "--spool-fsync", "interval", "--spool-max-bytes", "2GiB")
	if err != nil {
		t.Fatal(err)
	}
	o := *got
	c := o.cfg
	if !slices.Equal(c.Kafka.Brokers, []string{"k1:9092", "k2:9092"}) || c.Listen != ":9000" || c.MaxFrameBytes != 2<<20 ||
		c.BufferBytes != 1<<20 || c.BufferRecords != 500 || c.MaxConns != 3 || c.DeviceBurst != 7 {
		t.Errorf("config %+v", c)
	}
	// A zero is a zero, not "the default".
	if c.PowerTolerance != 0 || c.DeviceRate != 0 || o.sec.leeway != 0 {
		t.Errorf("power tolerance %v, device rate %v, leeway %v: want 0 each", c.PowerTolerance, c.DeviceRate, o.sec.leeway)
	}
	if o.status || o.http != "127.0.0.1:8082" || o.spoolDir != "/var/spool/vpp" || o.spoolPolicy != spool.FsyncInterval || o.spoolMax.V != 2<<30 {
		t.Errorf("status %v, http %q, spool %q %v %d", o.status, o.http, o.spoolDir, o.spoolPolicy, o.spoolMax.V)
	}
}

func TestIngestFlagsFromEnvironmentAndFile(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "vpp.yaml")
	if err := os.WriteFile(cfgFile, []byte("insecure: true\ningest:\n  max-age: 1h\n  buffer-records: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VPP_BUFFER_RECORDS", "5")
	t.Setenv("VPP_DEVICE_RATE", "2k")
	runF, got := capture[ingestOptions]()
	if err := parseCmd(t, newIngestCmd(runF), cfgFile); err != nil {
		t.Fatal(err)
	}
	c := (*got).cfg
	if !c.Insecure || c.MaxAge != time.Hour || c.BufferRecords != 5 || c.DeviceRate != 2000 {
		t.Errorf("insecure %v, max age %v, buffer records %d (the environment wins), device rate %v", c.Insecure, c.MaxAge, c.BufferRecords, c.DeviceRate)
	}
}

func TestIngestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                // no authentication
		{"--insecure", "--auth-key", "k"}, // both
		{"--insecure", "--brokers", " , "},
		{"--insecure", "--max-conns", "0"},
		{"--insecure", "--spool-dir", "/tmp/s", "--spool-fsync", "sometimes"},
		{"--insecure", "--max-frame-bytes", "lots"},
	} {
		runF, got := capture[ingestOptions]()
		wantUsageError(t, args, parseCmd(t, newIngestCmd(runF), "", args...), *got)
	}
}
