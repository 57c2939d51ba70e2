package pipeline_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
)

// TestRateLimitSlowsDevicesDown replays a backlog ten times faster than the
// per-device rate limit allows, as devices do after an outage: ingest slows
// them down instead of discarding readings. Every reading is acked, none is
// rejected, the fleet totals equal the simulator's truth, and the run takes
// at least as long as the rate implies.
func TestRateLimitSlowsDevicesDown(t *testing.T) {
	if testing.Short() {
		t.Skip("about 12 s of rate-limited replay")
	}
	const (
		devices = 20
		rate    = 20 // readings per second per device
		burst   = 40
		count   = 5000 // 250 per device: (250-40)/20 = 10.5 s at the limit
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := testutil.Logger(slog.LevelInfo)
	opts := kafkatest.Options(t, 4)

	pctx, pcancel := context.WithCancel(ctx)
	p, err := pipeline.Start(pctx, pipeline.Config{
		Kafka:       opts,
		Ingest:      ingestConfig(func(c *ingest.Config) { c.DeviceRate, c.DeviceBurst = rate, burst }),
		Aggregators: 1,
		HTTPAddr:    "127.0.0.1:0",
		Logger:      log,
	})
	if err != nil {
		t.Fatalf("start pipeline: %v", err)
	}
	defer func() {
		pcancel()
		if err := p.Wait(); err != nil {
			t.Errorf("pipeline shutdown: %v", err)
		}
	}()

	// 200 readings per second per device: ten times the limit, over 4
	// gateway connections of 5 devices each.
	s, err := sim.New(sim.Config{
		URL: p.IngestURL(), TokenFunc: p.TokenFunc(),
		Devices: devices, Rate: 10 * rate * devices, Count: count, Seed: 11, Conns: 4,
		Start:        time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		DrainTimeout: 60 * time.Second, Logger: log,
	})
	if err != nil {
		t.Fatalf("sim: %v", err)
	}
	start := time.Now()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("sim run: %v (stats %+v)", err, s.Stats())
	}
	elapsed := time.Since(start)
	truth := s.Truth()
	st := p.Ingest().Stats()
	t.Logf("sim: %d sent, %d acked in %v; ingest: received %d, rejected %v, rate-limited frames %d, wait %v",
		truth.ReadingsSent, truth.ReadingsAcked, elapsed.Round(time.Millisecond),
		st.Received, st.Rejected, st.RateLimitedFrames, st.RateLimitedWait.Round(time.Millisecond))

	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sent %d acked %d, want %d each", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	if n := st.RejectedTotal(); n != 0 {
		t.Errorf("%d readings rejected (%v), want 0", n, st.Rejected)
	}
	if st.RateLimitedFrames == 0 || st.RateLimitedWait <= 0 {
		t.Errorf("rate-limited frames %d, wait %v: the limit never slowed a device", st.RateLimitedFrames, st.RateLimitedWait)
	}
	// Beyond its burst, a device gets rate readings a second: the run
	// takes (count - devices*burst) / (devices*rate) = 10.5 s, less the
	// pause after each device's last frame (ingest reads a frame whole,
	// then pauses for its excess). 0.8× of it leaves room for that and
	// for the clocks.
	if least := time.Duration(0.8 * (count - devices*burst) / (devices * rate) * float64(time.Second)); elapsed < least {
		t.Errorf("the run took %v, want at least %v at %d readings/s per device", elapsed, least, rate)
	}

	var f fleetJSON
	waitUntil(t, 60*time.Second, "fleet equals the truth", func() bool {
		return getJSON(ctx, p.APIURL()+"/api/metrics/fleet", &f) == nil && matches(f, truth)
	})
	waitUntil(t, 30*time.Second, "every reading published", func() bool {
		st := p.Ingest().Stats()
		return st.Published == st.Received && st.Received >= count
	})
}

// ingestConfig is ingest's default configuration, what `vpp ingest` runs
// with, changed by set.
func ingestConfig(set func(*ingest.Config)) *ingest.Config {
	c := ingest.DefaultConfig()
	c.Listen = "" // a free port
	set(&c)
	return &c
}
