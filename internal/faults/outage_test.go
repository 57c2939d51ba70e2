package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
)

// The figures the operations guide states as behaviour, asserted here.
const (
	// maxNotReadyDelay bounds the time from Kafka going away (killed or
	// hung) to ingest's /readyz answering 503.
	maxNotReadyDelay = 2 * time.Second
	// maxSpoolAckPause bounds the longest pause in acks while Kafka is
	// down and ingest has a spool: acks come from the fsynced spool, not
	// from Kafka, so an outage must not stall devices.
	maxSpoolAckPause = time.Second
)

// watchNotReady polls ingest's /readyz every 100 ms for d from since and
// returns the first 503 it saw (empty if none) and how long after since it
// came.
func watchNotReady(ctx context.Context, httpAddr string, since time.Time, d time.Duration) (string, time.Duration) {
	var seen string
	var after time.Duration
	for time.Since(since) < d && ctx.Err() == nil {
		if code, body, err := httpStatus(ctx, "http://"+httpAddr+"/readyz"); err == nil && code == http.StatusServiceUnavailable && seen == "" {
			after = time.Since(since)
			seen = fmt.Sprintf("/readyz 503 %s after %s", strings.TrimSpace(body), after.Round(100*time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return seen, after
}

// checkNotReady fails the test unless /readyz answered 503 within
// maxNotReadyDelay.
func checkNotReady(t *testing.T, notReady string, after time.Duration) {
	t.Helper()
	switch {
	case notReady == "":
		t.Errorf("ingest /readyz never answered 503 while Kafka was unavailable")
	case after > maxNotReadyDelay:
		t.Errorf("%s, want within %s", notReady, maxNotReadyDelay)
	}
}

// TestHungBroker freezes the only Kafka broker with SIGSTOP for 20 s: its
// sockets stay open and nothing answers, so no connection is refused and
// no request fails at once. Ingest with a spool must notice anyway (its
// /readyz probe times out), keep acking devices from the spool, and once
// the broker resumes, drain the spool: every acked reading in Kafka and
// the totals equal to the truth.
func TestHungBroker(t *testing.T) {
	skipShort(t)
	requireJava(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := testutil.BuildVPP(ctx, t)
	k, brokers := startBroker(t, ctx)
	opts := kafkaOptions(brokers, "fault-hung", 6, 1)
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	listen, httpAddr := freeAddr(t), freeAddr(t)
	ing := startIngest(t, ctx, dir, bin, opts, listen, httpAddr, "--spool-dir", filepath.Join(dir, "spool"))
	startAggregate(t, dir, bin, opts, opts.Prefix+"aggregate", "a0")
	r := startReader(t, ctx, opts)

	const count = 120_000
	s := newSim(t, listen, sim.Config{Devices: 300, Rate: 3000, Count: count, Seed: 61, Conns: 10})
	gctx, stopGaps := context.WithCancel(ctx)
	defer stopGaps()
	done := runSim(ctx, s)
	gaps := watchAckGaps(gctx, s)
	waitUntil(t, ctx, 60*time.Second, "15,000 readings acked", func() bool { return s.Stats().Acked >= 15_000 })

	paused := time.Now()
	ackedAtPause := s.Stats().Acked
	k.must(t, ctx, "pause")
	notReady, notReadyAfter := watchNotReady(ctx, httpAddr, paused, 20*time.Second)
	ackedInHang := s.Stats().Acked - ackedAtPause
	k.must(t, ctx, "resume")
	hung := time.Since(paused)
	t.Logf("broker hung %s; %d readings acked meanwhile from the spool; %s", hung.Round(100*time.Millisecond), ackedInHang, notReady)
	checkNotReady(t, notReady, notReadyAfter)
	if ackedInHang < 10_000 {
		t.Errorf("only %d readings acked while the broker hung: the spool did not take over", ackedInHang)
	}

	end := waitSim(t, ctx, s, done)
	stopGaps()
	<-gaps.done
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	waitReady(t, ctx, httpAddr, ing)
	tel := waitTelemetry(t, ctx, opts, truth.ReadingsAcked, 120*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, r, truth, end, 120*time.Second)
	acct := waitAccounting(ctx, r, tel.records, 15*time.Second)
	gap, _ := gaps.result()
	if gap > maxSpoolAckPause {
		t.Errorf("longest pause in acks %s while the broker hung, want ≤ %s", gap.Round(10*time.Millisecond), maxSpoolAckPause)
	}
	result{
		Fault: "broker SIGSTOP (hung, sockets open) for 20 s, then SIGCONT (ingest with spool)", Broker: "Apache Kafka 4.4, single node (own)",
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{
			fmt.Sprintf("broker hung %s; %d readings acked from the spool meanwhile; longest pause in acks %s",
				hung.Round(100*time.Millisecond), ackedInHang, gap.Round(10*time.Millisecond)),
			notReady,
		},
	}.report(t)
}

// TestIngestShutdownKafkaDown stops `vpp ingest` with SIGTERM while its
// only broker is down: ingest must exit cleanly within its shutdown
// timeout (not wait for Kafka forever), keeping in its spool what Kafka
// does not have; started again on the same spool once the broker is back,
// it publishes all of it, the simulator reconnects and finishes, and every
// acked reading is in Kafka with the totals equal to the truth.
func TestIngestShutdownKafkaDown(t *testing.T) {
	skipShort(t)
	requireJava(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := testutil.BuildVPP(ctx, t)
	k, brokers := startBroker(t, ctx)
	opts := kafkaOptions(brokers, "fault-shutdown", 6, 1)
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	listen, httpAddr := freeAddr(t), freeAddr(t)
	spoolArgs := []string{"--spool-dir", filepath.Join(dir, "spool")}
	ing := startIngest(t, ctx, dir, bin, opts, listen, httpAddr, spoolArgs...)
	startAggregate(t, dir, bin, opts, opts.Prefix+"aggregate", "a0")
	r := startReader(t, ctx, opts)

	const count = 60_000
	s := newSim(t, listen, sim.Config{Devices: 300, Rate: 3000, Count: count, Seed: 71, Conns: 10})
	done := runSim(ctx, s)
	waitUntil(t, ctx, 60*time.Second, "10,000 readings acked", func() bool { return s.Stats().Acked >= 10_000 })
	k.must(t, ctx, "kill")
	ackedAtKill := s.Stats().Acked
	waitUntil(t, ctx, 30*time.Second, "3,000 more readings acked from the spool", func() bool { return s.Stats().Acked >= ackedAtKill+3_000 })

	// The harness starts ingest with --shutdown-timeout 10s.
	const shutdownTimeout = 10 * time.Second
	off := logSize(ing.logPath)
	term := time.Now()
	ing.stop(t)
	took := time.Since(term)
	if ing.err != nil {
		t.Errorf("ingest exited with %v on SIGTERM while Kafka was down, want a clean exit", ing.err)
	}
	if took > shutdownTimeout+10*time.Second {
		t.Errorf("ingest took %s to stop, want within its shutdown timeout (%s) and a margin", took.Round(100*time.Millisecond), shutdownTimeout)
	}
	stopLog := logSince(ing.logPath, off)
	if !strings.Contains(stopLog, "ingest shutting down") {
		t.Errorf("ingest did not log its shutdown:\n%s", stopLog)
	}
	ackedAtStop := s.Stats().Acked

	k.must(t, ctx, "restart")
	ing = startIngest(t, ctx, dir, bin, opts, listen, httpAddr, spoolArgs...)
	end := waitSim(t, ctx, s, done)
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	tel := waitTelemetry(t, ctx, opts, truth.ReadingsAcked, 90*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, r, truth, end, 90*time.Second)
	acct := waitAccounting(ctx, r, tel.records, 15*time.Second)
	ing.stop(t)
	result{
		Fault: "ingest SIGTERM while Kafka is down, restart on the same spool after the broker", Broker: "Apache Kafka 4.4, single node (own)",
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{fmt.Sprintf("broker killed after %d acked; ingest stopped in %s with %d acked (shutdown timeout %s)",
			ackedAtKill, took.Round(100*time.Millisecond), ackedAtStop, shutdownTimeout)},
	}.report(t)
}

// waitInSync waits until node is in the in-sync replica set of every
// partition of topic.
func waitInSync(t *testing.T, ctx context.Context, opts kafka.Options, topic string, node int32, timeout time.Duration) {
	t.Helper()
	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(opts.Brokers, cfg)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	start := time.Now()
	var missing []int32
	for time.Since(start) < timeout && ctx.Err() == nil {
		missing = missing[:0]
		if err := client.RefreshMetadata(topic); err == nil {
			parts, err := client.Partitions(topic)
			if err != nil {
				t.Fatalf("partitions of %s: %v", topic, err)
			}
			for _, p := range parts {
				isr, err := client.InSyncReplicas(topic, p)
				if err != nil || !containsID(isr, node) {
					missing = append(missing, p)
				}
			}
			if len(missing) == 0 {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("node %d not back in the ISR of %s partitions %v after %s", node, topic, missing, timeout)
}

func containsID(ids []int32, id int32) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}
