package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/sim"
)

// The figures the operations guide states as behaviour, asserted here.
const (
	// maxNotReadyDelay bounds the time from Kafka going away (killed or
	// hung) to ingest's /readyz answering 503: a probe every second, each
	// given a second to answer, and a second for a loaded machine.
	maxNotReadyDelay = 3 * time.Second
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
	k, brokers := startBroker(t, ctx)
	rg := startRig(t, ctx, kafkaOptions(brokers, "fault-shutdown", 6, 1), true)
	ing := rg.ing

	const count = 60_000
	s := newSim(t, rg.listen, sim.Config{Devices: 300, Rate: 3000, Count: count, Seed: 71, Conns: 10})
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
	rg.startIngest(t, ctx)
	end := waitSim(t, ctx, s, done)
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	tel := waitTelemetry(t, ctx, rg.opts, truth.ReadingsAcked, 90*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, rg.r, truth, end, 90*time.Second)
	acct := waitAccounting(ctx, rg.r, tel.records, 15*time.Second)
	rg.ing.stop(t)
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
	client, err := opts.NewClient()
	if err != nil {
		t.Fatal(err)
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
