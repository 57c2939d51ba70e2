package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/sim"
)

func TestSimFlagDefaults(t *testing.T) {
	runF, got := capture[simOptions]()
	if err := parseCmd(t, newSimCmd(runF), ""); err != nil {
		t.Fatal(err)
	}
	o := *got
	if o == nil {
		t.Fatal("runF did not run")
	}
	if want := sim.DefaultConfig(); !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("config from the default flags\n got %+v\nwant %+v", o.cfg, want)
	}
	if o.cfg.URL != "ws://127.0.0.1:8080/v1/telemetry" || o.cfg.Devices != 1000 || o.cfg.Rate != 10_000 || o.cfg.Seed != 1 {
		t.Errorf("defaults changed: %+v", o.cfg)
	}
	if o.tokenTTL != time.Hour || o.quiet || o.truth != "" || o.errOut == nil {
		t.Errorf("token TTL %v, quiet %v, truth %q", o.tokenTTL, o.quiet, o.truth)
	}
}

func TestSimFlags(t *testing.T) {
	runF, got := capture[simOptions]()
	err := parseCmd(t, newSimCmd(runF), "",
		"--url", "wss://ingest:443/v1/telemetry", "--devices", "10k", "--rate", "1.5M", "--count", "1M",
		"--start", "2026-06-21T00:00:00Z", "--seed", "7", "--time-scale", "3600", "--duplicate-frames", "0.1",
		"--conns", "12", "--max-in-flight", "64", "--truth", "truth.json", "--quiet", "--token-key", "k", "--token-ttl", "5m")
	if err != nil {
		t.Fatal(err)
	}
	o := *got
	c := o.cfg
	if c.URL != "wss://ingest:443/v1/telemetry" || c.Devices != 10_000 || c.Rate != 1.5e6 || c.Count != 1_000_000 ||
		!c.Start.Equal(time.Date(2026, 6, 21, 0, 0, 0, 0, time.UTC)) || c.Seed != 7 || c.TimeScale != 3600 ||
		c.DuplicateFrames != 0.1 || c.Conns != 12 || c.MaxInFlight != 64 {
		t.Errorf("config %+v", c)
	}
	if o.truth != "truth.json" || !o.quiet || o.tokenKey != "k" || o.tokenTTL != 5*time.Minute {
		t.Errorf("options %+v", o)
	}
	if c.TokenFunc != nil {
		t.Error("the token key was loaded while parsing flags")
	}
}

func TestSimUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--devices", "1.5"},
		{"--count", "0.5"},
		{"--start", "yesterday"},
		{"--token", "t", "--token-key", "k"},
		{"--rate", "fast"},
	} {
		runF, got := capture[simOptions]()
		wantUsageError(t, args, parseCmd(t, newSimCmd(runF), "", args...), *got)
	}
}
