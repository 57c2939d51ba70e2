package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
)

// TestBackpressureWhileKafkaPaused pauses every produce request on the
// embedded broker while a simulator keeps sending: ingest's buffer stays
// within its bound (it stops reading sockets), nothing is acked during the
// pause, and once Kafka returns every reading is acked and the fleet totals
// equal the ground truth.
func TestBackpressureWhileKafkaPaused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := testutil.Logger(slog.LevelInfo)
	emb, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	opts := kafka.Options{Brokers: []string{emb.Addr()}, Prefix: kafkatest.Prefix("bp"), Version: kafka.DefaultVersion,
		Partitions: 4, Replication: 1, ClientID: "vpp-test"}

	const bufferRecords = 2000
	pctx, pcancel := context.WithCancel(ctx)
	p, err := pipeline.Start(pctx, pipeline.Config{
		Kafka:       opts,
		Ingest:      ingestConfig(func(c *ingest.Config) { c.BufferRecords = bufferRecords }),
		Aggregators: 1,
		HTTPAddr:    "127.0.0.1:0",
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		pcancel()
		if err := p.Wait(); err != nil {
			t.Errorf("pipeline shutdown: %v", err)
		}
	}()

	s, err := sim.New(sim.Config{URL: p.IngestURL(), TokenFunc: p.TokenFunc(), Devices: 500, Rate: 20_000, Count: 80_000, Seed: 7, Conns: 20,
		Start: time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC), DrainTimeout: 90 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()

	waitUntil(t, 30*time.Second, "sim warmed up", func() bool { return s.Stats().Acked >= 5000 })

	var paused atomic.Bool
	paused.Store(true)
	emb.Cluster().ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		emb.Cluster().KeepControl()
		if paused.Load() {
			return nil, errors.New("paused for the backpressure test"), true
		}
		return nil, nil, false
	})
	var msBefore runtime.MemStats
	runtime.ReadMemStats(&msBefore)

	// During the pause: sample the buffer until it is at least half full
	// (polled with a generous limit: a slow machine fills it later, a
	// buffer that never fills fails below); the records in flight at the
	// start have failed by then. From there, for 3 s, nothing new may be
	// acked.
	maxBuffered, maxBytes := 0, int64(0)
	sample := func() {
		st := p.Ingest().Stats()
		maxBuffered = max(maxBuffered, st.Buffered)
		maxBytes = max(maxBytes, st.BufferedBytes)
		if st.Buffered > st.BufferCapacity || st.BufferedBytes > st.BufferCapacityBytes {
			t.Fatalf("buffer over its bound: %d records / %d bytes, capacity %d / %d", st.Buffered, st.BufferedBytes, st.BufferCapacity, st.BufferCapacityBytes)
		}
	}
	for fillBy := time.Now().Add(60 * time.Second); maxBuffered < bufferRecords/2 && time.Now().Before(fillBy); {
		sample()
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	ackedAfterSettle := s.Stats().Acked
	for watchEnd := time.Now().Add(3 * time.Second); time.Now().Before(watchEnd); {
		sample()
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.Stats().Acked; got != ackedAfterSettle {
		t.Errorf("acks advanced while Kafka was paused: %d → %d", ackedAfterSettle, got)
	}
	if maxBuffered < bufferRecords/2 {
		t.Errorf("buffer peaked at %d records during the pause; the test did not fill it (capacity %d)", maxBuffered, bufferRecords)
	}
	var msDuring runtime.MemStats
	runtime.ReadMemStats(&msDuring)
	t.Logf("during the pause: buffer peak %d/%d records, %d bytes; heap %d → %d MiB; sim %+v",
		maxBuffered, bufferRecords, maxBytes, msBefore.HeapAlloc>>20, msDuring.HeapAlloc>>20, s.Stats())
	paused.Store(false)

	select {
	case err := <-simDone:
		if err != nil {
			t.Fatalf("sim: %v (stats %+v)", err, s.Stats())
		}
	case <-ctx.Done():
		t.Fatal("sim did not finish")
	}
	truth := s.Truth()
	if truth.ReadingsAcked != 80_000 {
		t.Fatalf("acked %d of 80000", truth.ReadingsAcked)
	}
	var f fleetJSON
	waitUntil(t, 60*time.Second, "fleet equals the truth", func() bool {
		return getJSON(ctx, p.APIURL()+"/api/metrics/fleet", &f) == nil && matches(f, truth)
	})
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, 50*time.Millisecond, what, cond)
}
