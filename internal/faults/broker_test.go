package faults_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/sim"
)

// ackGaps samples a simulator's acked count every 10 ms until ctx ends and
// keeps the longest time in which it did not grow while readings were in
// flight: how long devices waited for an ack at worst.
type ackGaps struct {
	mu      sync.Mutex
	longest time.Duration
	at      time.Time // when the longest gap began
	done    chan struct{}
}

func watchAckGaps(ctx context.Context, s *sim.Sim) *ackGaps {
	g := &ackGaps{done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var last int64
		since := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				st := s.Stats()
				if st.Acked != last || st.InFlight == 0 {
					last, since = st.Acked, now
					continue
				}
				g.mu.Lock()
				if d := now.Sub(since); d > g.longest {
					g.longest, g.at = d, since
				}
				g.mu.Unlock()
			}
		}
	}()
	return g
}

// result returns the longest gap and when it began.
func (g *ackGaps) result() (time.Duration, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.longest, g.at
}

// unavailable is a way of taking the only broker away for 20 s and giving
// it back: its script commands, what the report calls it, and what ingest
// must log meanwhile.
type unavailable struct {
	name, takeAway, giveBack, fault string
	seed                            int64
	logs                            []string
}

// TestBrokerOutage stops the only Kafka broker for 20 s — SIGKILL, then a
// restart on the same config and data — while the simulator sends to a
// `vpp ingest` with a spool: devices keep being acked from the spool,
// /readyz turns 503 while Kafka is down, and after the restart the spool
// drains, every acked reading is in Kafka and the totals equal the truth.
func TestBrokerOutage(t *testing.T) {
	brokerUnavailable(t, unavailable{name: "outage", takeAway: "kill", giveBack: "restart", seed: 41,
		fault: "broker SIGKILL, down 20 s, restart on the same data (ingest with spool)",
		logs:  []string{"kafka lost", "spool engaged", "kafka back", "spool drained"}})
}

// TestHungBroker freezes the only Kafka broker with SIGSTOP for 20 s: its
// sockets stay open and nothing answers, so no connection is refused and
// no request fails at once. Ingest with a spool must notice anyway (its
// /readyz probe times out), keep acking devices from the spool, and once
// the broker resumes, drain the spool: every acked reading in Kafka and
// the totals equal to the truth.
func TestHungBroker(t *testing.T) {
	brokerUnavailable(t, unavailable{name: "hung", takeAway: "pause", giveBack: "resume", seed: 61,
		fault: "broker SIGSTOP (hung, sockets open) for 20 s, then SIGCONT (ingest with spool)",
		logs:  []string{"kafka probe failed", "kafka probe answered"}})
}

// brokerUnavailable runs the simulator against an ingest with a spool,
// takes the broker away as u says once 15,000 readings are acked, gives it
// back 20 s later and checks what both tests promise.
func brokerUnavailable(t *testing.T, u unavailable) {
	skipShort(t)
	requireJava(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k, brokers := startBroker(t, ctx)
	rg := startRig(t, ctx, kafkaOptions(brokers, "fault-"+u.name, 6, 1), true)

	const count = 120_000
	s := newSim(t, rg.listen, sim.Config{Devices: 300, Rate: 3000, Count: count, Seed: u.seed, Conns: 10})
	gctx, stopGaps := context.WithCancel(ctx)
	defer stopGaps()
	done := runSim(ctx, s)
	gaps := watchAckGaps(gctx, s)
	waitUntil(t, ctx, 60*time.Second, "15,000 readings acked", func() bool { return s.Stats().Acked >= 15_000 })

	down := time.Now()
	ackedAtDown := s.Stats().Acked
	k.must(t, ctx, u.takeAway)
	notReady, notReadyAfter := watchNotReady(ctx, rg.httpAddr, down, 20*time.Second)
	ackedMeanwhile := s.Stats().Acked - ackedAtDown
	k.must(t, ctx, u.giveBack)
	outage := time.Since(down)
	t.Logf("broker away %s (%s for 20 s, then %s); %d readings acked meanwhile from the spool; %s",
		outage.Round(100*time.Millisecond), u.takeAway, u.giveBack, ackedMeanwhile, notReady)
	checkNotReady(t, notReady, notReadyAfter)
	if ackedMeanwhile < 10_000 {
		t.Errorf("only %d readings acked while the broker was away: the spool did not take over", ackedMeanwhile)
	}

	end := waitSim(t, ctx, s, done)
	stopGaps()
	<-gaps.done
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	waitReady(t, ctx, rg.httpAddr, rg.ing) // Kafka back and the spool caught up
	tel := waitTelemetry(t, ctx, rg.opts, truth.ReadingsAcked, 120*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, rg.r, truth, end, 120*time.Second)
	acct := waitAccounting(ctx, rg.r, tel.records, 15*time.Second)
	gap, _ := gaps.result()
	if gap > maxSpoolAckPause {
		t.Errorf("longest pause in acks %s while the broker was away, want ≤ %s: the spool should keep acking", gap.Round(10*time.Millisecond), maxSpoolAckPause)
	}
	log := logSince(rg.ing.logPath, 0)
	for _, want := range u.logs {
		if !strings.Contains(log, want) {
			t.Errorf("ingest did not log %q", want)
		}
	}
	result{
		Fault: u.fault, Broker: "Apache Kafka 4.4, single node (own)",
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{
			fmt.Sprintf("broker away %s; %d readings acked from the spool meanwhile; longest pause in acks %s",
				outage.Round(100*time.Millisecond), ackedMeanwhile, gap.Round(10*time.Millisecond)),
			notReady,
		},
	}.report(t)
}

// TestClusterBrokerLoss runs a three-node KRaft cluster (replication 3,
// min.insync.replicas 2) and SIGKILLs the leader of telemetry partition 0
// mid-stream. Ingest runs without a spool, so a device's ack waits for
// acks=all from Kafka and the longest pause in acks is the leader
// election. Once the stream flows again on the new leaders the killed node
// is started again on its data and must rejoin the in-sync replicas of
// every telemetry partition. No acked reading may be lost and the totals
// must equal the truth. VPP_FAULT_CLUSTER=0 skips it (it needs ~1.2 GB for
// the brokers).
func TestClusterBrokerLoss(t *testing.T) {
	skipShort(t)
	if os.Getenv("VPP_FAULT_CLUSTER") == "0" {
		t.Skip("VPP_FAULT_CLUSTER=0")
	}
	requireJava(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k, brokers := startCluster(t, ctx, 3)
	rg := startRig(t, ctx, kafkaOptions(brokers, "fault-cluster", 6, 3), false)
	opts, r := rg.opts, rg.r
	victim, err := leaderOf(opts, opts.Topics().Telemetry(), 0)
	if err != nil {
		t.Fatal(err)
	}

	const count = 90_000
	s := newSim(t, rg.listen, sim.Config{Devices: 300, Rate: 3000, Count: count, Seed: 51, Conns: 10})
	gctx, stopGaps := context.WithCancel(ctx)
	defer stopGaps()
	done := runSim(ctx, s)
	gaps := watchAckGaps(gctx, s)
	waitUntil(t, ctx, 60*time.Second, "10,000 readings acked", func() bool { return s.Stats().Acked >= 10_000 })
	killed := time.Now()
	ackedAtKill := s.Stats().Acked
	k.must(t, ctx, "node-kill", fmt.Sprint(victim))
	waitUntil(t, ctx, 60*time.Second, "5,000 more readings acked on the new leaders", func() bool { return s.Stats().Acked >= ackedAtKill+5_000 })
	rejoined := time.Now()
	k.must(t, ctx, "node-start", fmt.Sprint(victim))

	end := waitSim(t, ctx, s, done)
	stopGaps()
	<-gaps.done
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	tel := waitTelemetry(t, ctx, opts, truth.ReadingsAcked, 60*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, r, truth, end, 60*time.Second)
	acct := waitAccounting(ctx, r, tel.records, 15*time.Second)
	gap, gapAt := gaps.result()
	t.Logf("longest pause in acks: %s, beginning %s after the kill", gap.Round(10*time.Millisecond), gapAt.Sub(killed).Round(10*time.Millisecond))
	// The pause is the fencing of the dead leader (the test cluster's
	// broker.session.timeout.ms, 6 s) and the election; it must end, and
	// well before the producer's own timeouts would fail the records.
	const maxPause = 20 * time.Second
	if gap > maxPause {
		t.Errorf("longest pause in acks %s after the leader was killed, want ≤ %s (session timeout 6 s and the election)", gap.Round(10*time.Millisecond), maxPause)
	}
	waitInSync(t, ctx, opts, opts.Topics().Telemetry(), victim, 90*time.Second)
	inSync := time.Since(rejoined)
	t.Logf("node %d restarted %s after the kill, back in every telemetry ISR within %s of its restart", victim, rejoined.Sub(killed).Round(100*time.Millisecond), inSync.Round(100*time.Millisecond))
	result{
		Fault: "1 of 3 brokers SIGKILLed (leader of telemetry partition 0; RF 3, min ISR 2; ingest without spool)", Broker: "Apache Kafka 4.4, three-node KRaft (own)",
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{fmt.Sprintf("node %d killed after %d acked; longest pause in acks %s (leader election); restarted %s after the kill, in every telemetry ISR within %s of its restart",
			victim, ackedAtKill, gap.Round(10*time.Millisecond), rejoined.Sub(killed).Round(100*time.Millisecond), inSync.Round(100*time.Millisecond))},
	}.report(t)
}

// leaderOf returns the node ID of the leader of topic/partition.
func leaderOf(opts kafka.Options, topic string, partition int32) (int32, error) {
	client, err := opts.NewClient()
	if err != nil {
		return 0, err
	}
	defer client.Close()
	b, err := client.Leader(topic, partition)
	if err != nil {
		return 0, fmt.Errorf("leader of %s/%d: %w", topic, partition, err)
	}
	return b.ID(), nil
}
