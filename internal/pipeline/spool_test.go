package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/ingest"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/spool"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/proto/vppv1"
)

// pauseProduce makes the embedded broker fail every produce request while
// the returned flag is set.
func pauseProduce(emb *kafka.Embedded) *atomic.Bool {
	var paused atomic.Bool
	paused.Store(true)
	emb.Cluster().ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		emb.Cluster().KeepControl()
		if paused.Load() {
			return nil, errors.New("paused by the spool test"), true
		}
		return nil, nil, false
	})
	return &paused
}

// telemetry is what the telemetry topic holds: the seqs of every device.
type telemetry struct {
	records  int
	distinct int
	devices  map[string]map[uint64]struct{}
}

// readTelemetry reads the whole telemetry topic.
func readTelemetry(t *testing.T, opts kafka.Options) telemetry {
	t.Helper()
	client, err := opts.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	topic := opts.Topics().Telemetry()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	out := telemetry{devices: make(map[string]map[uint64]struct{})}
	for _, p := range parts {
		oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
		newest, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("offsets of %s/%d: %v", topic, p, err)
		}
		if newest <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		timeout := time.After(60 * time.Second)
	loop:
		for {
			select {
			case m := <-pc.Messages():
				var r vppv1.Reading
				if err := proto.Unmarshal(m.Value, &r); err != nil {
					t.Fatalf("telemetry record %s/%d@%d: %v", topic, p, m.Offset, err)
				}
				out.records++
				seqs := out.devices[r.GetDeviceId()]
				if seqs == nil {
					seqs = make(map[uint64]struct{})
					out.devices[r.GetDeviceId()] = seqs
				}
				if _, dup := seqs[r.GetSeq()]; !dup {
					out.distinct++
					seqs[r.GetSeq()] = struct{}{}
				}
				if m.Offset+1 >= newest {
					break loop
				}
			case <-timeout:
				t.Fatalf("reading %s/%d timed out", topic, p)
			}
		}
		pc.Close()
	}
	return out
}

// checkEveryReading fails unless the topic holds, for every device, every
// seq from 1 to its last: the sim acked them all, and it never resends an
// acked reading, so one missing was acked and lost.
func checkEveryReading(t *testing.T, tel telemetry, sent int64) {
	t.Helper()
	if int64(tel.distinct) != sent {
		t.Errorf("telemetry holds %d distinct readings (%d records), the sim sent and had acked %d", tel.distinct, tel.records, sent)
	}
	for dev, seqs := range tel.devices {
		for s := uint64(1); s <= uint64(len(seqs)); s++ {
			if _, ok := seqs[s]; !ok {
				t.Errorf("device %s: seq %d missing from telemetry (has %d readings)", dev, s, len(seqs))
				break
			}
		}
	}
}

// startSpoolPipeline starts a pipeline whose ingest buffers in a spool.
func startSpoolPipeline(t *testing.T, ctx context.Context, name string, so spool.Options) (*kafka.Embedded, kafka.Options, *spool.Spool, *pipeline.Pipeline, func()) {
	t.Helper()
	log := testutil.Logger(slog.LevelInfo)
	emb, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := kafka.Options{Brokers: []string{emb.Addr()}, Prefix: kafkatest.Prefix(name), Version: kafka.DefaultVersion,
		Partitions: 4, Replication: 1, ClientID: "vpp-test"}
	so.Dir = t.TempDir()
	so.Logger = log.With("part", "spool")
	sp, err := spool.Open(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	p, err := pipeline.Start(pctx, pipeline.Config{
		Kafka:       opts,
		Ingest:      ingestConfig(func(c *ingest.Config) { c.Buffer, c.ShutdownTimeout = sp, 5*time.Second }),
		Aggregators: 1,
		HTTPAddr:    "127.0.0.1:0",
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		pcancel()
		if err := p.Wait(); err != nil {
			t.Errorf("pipeline shutdown: %v", err)
		}
		sp.Close()
		emb.Close()
	}
	return emb, opts, sp, p, stop
}

// TestSpoolRidesOutKafkaOutage fails every produce request for 5 s while a
// simulator sends: devices keep being acked (the readings are fsynced in
// the spool), the spool grows; once Kafka is back the spool drains, every
// reading is in the telemetry topic and the fleet totals equal the truth.
func TestSpoolRidesOutKafkaOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emb, opts, sp, p, stop := startSpoolPipeline(t, ctx, "spool", spool.Options{MaxBytes: 256 << 20, MemoryBytes: 4 << 20})
	defer stop()

	const count = 100_000
	s, err := sim.New(sim.Config{URL: p.IngestURL(), TokenFunc: p.TokenFunc(), Devices: 500, Rate: 10_000, Count: count, Seed: 11, Conns: 20,
		Start: time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC), DrainTimeout: 90 * time.Second, Logger: testutil.Logger(slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()
	waitUntil(t, 30*time.Second, "sim warmed up", func() bool { return s.Stats().Acked >= 3000 })

	paused := pauseProduce(emb)
	time.Sleep(500 * time.Millisecond) // let the records in flight fail
	ackedAtPause := s.Stats().Acked
	// Kafka stays paused until 20,000 more readings are acked, which only
	// the spool can do; polled with a generous limit rather than a fixed
	// window, so a slow machine (or the race detector) takes longer but
	// a spool that does not take over still fails.
	pausedAt := time.Now()
	var peak int64
	for s.Stats().Acked-ackedAtPause < 20_000 && time.Since(pausedAt) < 60*time.Second {
		peak = max(peak, sp.Stats().DiskBytes)
		time.Sleep(20 * time.Millisecond)
	}
	ackedInOutage := s.Stats().Acked - ackedAtPause
	spoolAtResume := sp.Stats()
	t.Logf("during the %s outage: %d readings acked (in the spool only), spool %d records, %d bytes on disk (peak %d), %d segments",
		time.Since(pausedAt).Round(100*time.Millisecond), ackedInOutage, spoolAtResume.Records, spoolAtResume.DiskBytes, peak, spoolAtResume.Segments)
	if ackedInOutage < 20_000 {
		t.Errorf("only %d readings acked during the outage: the spool did not take over", ackedInOutage)
	}
	if spoolAtResume.Records < 20_000 || !spoolAtResume.Engaged {
		t.Errorf("spool did not grow during the outage: %+v", spoolAtResume)
	}
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
	if truth.ReadingsAcked != count || truth.ReadingsSent != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	waitUntil(t, 60*time.Second, "spool drained", func() bool { return sp.Len() == 0 })
	tel := readTelemetry(t, opts)
	checkEveryReading(t, tel, count)
	var f fleetJSON
	waitUntil(t, 60*time.Second, "fleet equals the truth", func() bool {
		return getJSON(ctx, p.APIURL()+"/api/metrics/fleet", &f) == nil && matches(f, truth)
	})
	st := sp.Stats()
	t.Logf("after: sent %d, acked %d, telemetry %d records (%d distinct); spool peak %d bytes, %d fsyncs, %d read back from disk, %d retried",
		truth.ReadingsSent, truth.ReadingsAcked, tel.records, tel.distinct, st.PeakDiskBytes, st.Fsyncs, st.DiskReads, st.Retried)
}

// TestSpoolFullPushesBack caps the spool small and pauses Kafka: the sim's
// acked count stops growing once the spool is full (ingest stops reading
// sockets), the spool stays within its bound, and after Kafka returns
// nothing acked is missing.
func TestSpoolFullPushesBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const maxBytes = 512 << 10
	emb, opts, sp, p, stop := startSpoolPipeline(t, ctx, "spoolfull", spool.Options{MaxBytes: maxBytes, MemoryBytes: 256 << 10})
	defer stop()

	const count = 40_000
	s, err := sim.New(sim.Config{URL: p.IngestURL(), TokenFunc: p.TokenFunc(), Devices: 400, Rate: 10_000, Count: count, Seed: 5, Conns: 10,
		Start: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), DrainTimeout: 90 * time.Second, Logger: testutil.Logger(slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()
	waitUntil(t, 30*time.Second, "sim warmed up", func() bool { return s.Stats().Acked >= 2000 })

	paused := pauseProduce(emb)
	ackedAtPause := s.Stats().Acked
	waitUntil(t, 20*time.Second, "spool full", func() bool { return sp.Stats().DiskBytes > maxBytes*3/4 })
	time.Sleep(500 * time.Millisecond)
	settled := s.Stats().Acked
	var peak int64
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		st := sp.Stats()
		peak = max(peak, st.DiskBytes)
		if st.DiskBytes > maxBytes {
			t.Fatalf("spool over its bound: %d > %d bytes", st.DiskBytes, maxBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := s.Stats()
	t.Logf("spool full: acked %d at the pause, %d once full, %d 3 s later; spool peak %d of %d bytes; sim %+v",
		ackedAtPause, settled, after.Acked, peak, maxBytes, after)
	if after.Acked != settled {
		t.Errorf("acks kept growing with the spool full: %d → %d", settled, after.Acked)
	}
	if settled <= ackedAtPause {
		t.Errorf("nothing acked into the spool during the outage (%d → %d)", ackedAtPause, settled)
	}
	if after.Sent-after.Acked < 1000 {
		t.Errorf("the sim was not held back: sent %d, acked %d", after.Sent, after.Acked)
	}
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
	if truth.ReadingsAcked != count {
		t.Fatalf("acked %d of %d", truth.ReadingsAcked, count)
	}
	waitUntil(t, 60*time.Second, "spool drained", func() bool { return sp.Len() == 0 })
	checkEveryReading(t, readTelemetry(t, opts), count)
	var f fleetJSON
	waitUntil(t, 60*time.Second, "fleet equals the truth", func() bool {
		return getJSON(ctx, p.APIURL()+"/api/metrics/fleet", &f) == nil && matches(f, truth)
	})
}

// ingestProc is a `vpp ingest` process.
type ingestProc struct {
	cmd  *exec.Cmd
	done chan error
}

func startIngestProc(t *testing.T, bin, logPath string, args ...string) *ingestProc {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"ingest"}, args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "VPP_CONFIG=")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vpp ingest: %v", err)
	}
	p := &ingestProc{cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		lf.Close()
	}()
	return p
}

func (p *ingestProc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("vpp ingest did not stop on %v", sig)
	}
}

func waitListening(t *testing.T, addr string, p *ingestProc, logPath string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("vpp ingest exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("vpp ingest not listening on %s\n%s", addr, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSpoolSurvivesIngestCrash runs the real `vpp ingest` binary with a
// spool, pauses Kafka while the sim sends (readings are acked from the
// spool), SIGKILLs ingest, starts it again on the same spool directory and
// resumes Kafka: every reading the sim had acked is in the telemetry topic.
func TestSpoolSurvivesIngestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the vpp binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin := testutil.BuildVPP(ctx, t)
	emb, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	opts := kafka.Options{Brokers: []string{emb.Addr()}, Prefix: kafkatest.Prefix("crash"), Version: kafka.DefaultVersion,
		Partitions: 4, Replication: 1, ClientID: "vpp-test"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	spoolDir := filepath.Join(tmp, "spool")
	logPath := filepath.Join(tmp, "ingest.log")
	args := append([]string{"--insecure", "--listen", addr, "--status=false", "--spool-dir", spoolDir,
		"--spool-fsync", "always", "--shutdown-timeout", "10s"}, testutil.KafkaFlags(opts)...)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("vpp ingest log:\n%s", b)
		}
	}()
	proc := startIngestProc(t, bin, logPath, args...)
	waitListening(t, addr, proc, logPath)

	const count = 60_000
	s, err := sim.New(sim.Config{URL: "ws://" + addr + ingest.TelemetryPath, Devices: 300, Rate: 6000, Count: count, Seed: 3,
		Conns: 10, Start: time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC), DrainTimeout: 120 * time.Second, Logger: testutil.Logger(slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()
	waitUntil(t, 60*time.Second, "sim warmed up", func() bool { return s.Stats().Acked >= 3000 })

	paused := pauseProduce(emb)
	time.Sleep(500 * time.Millisecond)
	ackedAtPause := s.Stats().Acked
	// The spool alone acks while Kafka is paused: wait for 5,000 of
	// those acks (generous limit) before the kill.
	waitUntil(t, 60*time.Second, "5,000 readings acked into the spool", func() bool { return s.Stats().Acked-ackedAtPause >= 5000 })
	proc.stop(t, syscall.SIGKILL)
	ackedAtKill := s.Stats().Acked
	segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.seg"))
	t.Logf("killed ingest: %d readings acked before the outage, %d acked during it (in the spool only); %d segments on disk",
		ackedAtPause, ackedAtKill-ackedAtPause, len(segs))
	if ackedAtKill-ackedAtPause < 5000 {
		t.Fatalf("only %d readings acked during the outage: the test would prove little", ackedAtKill-ackedAtPause)
	}

	proc = startIngestProc(t, bin, logPath, args...)
	waitListening(t, addr, proc, logPath)
	time.Sleep(time.Second) // the replay meets a Kafka still down
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
	if truth.ReadingsAcked != count {
		t.Fatalf("acked %d of %d", truth.ReadingsAcked, count)
	}
	var tel telemetry
	deadline := time.Now().Add(60 * time.Second)
	for {
		tel = readTelemetry(t, opts)
		if int64(tel.distinct) >= count || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	checkEveryReading(t, tel, count)
	proc.stop(t, syscall.SIGTERM)
	b, _ := os.ReadFile(logPath)
	t.Logf("sent %d, acked %d (%d during the outage, before the kill), telemetry %d records, %d distinct; replay logged: %v",
		truth.ReadingsSent, truth.ReadingsAcked, ackedAtKill-ackedAtPause, tel.records, tel.distinct,
		strings.Contains(string(b), "replaying records kafka had not acknowledged"))
	if !strings.Contains(string(b), "replaying records kafka had not acknowledged") {
		t.Errorf("the restarted ingest did not replay the spool")
	}
}
