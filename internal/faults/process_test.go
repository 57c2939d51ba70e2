package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/testutil"
)

// TestIngestCrash SIGKILLs the real `vpp ingest` (with a spool) mid-stream
// and starts it again on the same spool directory and address: the
// simulator reconnects and retransmits what was not acked, the restarted
// ingest replays what Kafka had not acknowledged, and afterwards every
// acked reading is in Kafka and the fleet totals equal the truth.
func TestIngestCrash(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rg := startRig(t, ctx, kafkaOptions(kafkatest.Brokers(t), "fault-ingest", 6, 1), true)

	const count = 60_000
	s := newSim(t, rg.listen, sim.Config{Devices: 300, Rate: 4000, Count: count, Seed: 21, Conns: 10})
	done := runSim(ctx, s)
	waitUntil(t, ctx, 60*time.Second, "20,000 readings acked", func() bool { return s.Stats().Acked >= 20_000 })
	before := s.Stats()
	rg.ing.kill()
	killed := time.Now()
	time.Sleep(2 * time.Second) // devices find ingest gone
	rg.startIngest(t, ctx)
	downFor := time.Since(killed)
	end := waitSim(t, ctx, s, done)
	truth := s.Truth()
	st := s.Stats()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	if st.Reconnects == 0 {
		t.Errorf("the sim never reconnected: the crash did not happen mid-stream (%+v)", st)
	}
	tel := waitTelemetry(t, ctx, rg.opts, truth.ReadingsAcked, 60*time.Second)
	checkAcked(t, tel, truth)
	conv, _, ok := waitTotals(t, ctx, rg.r, truth, end, 60*time.Second)
	acct := waitAccounting(ctx, rg.r, tel.records, 10*time.Second)
	rg.ing.stop(t)
	result{
		Fault: "ingest SIGKILL + restart on the same spool", Broker: brokerKind(""),
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{
			fmt.Sprintf("killed after %d acked, ingest back after %s", before.Acked, downFor.Round(100*time.Millisecond)),
			fmt.Sprintf("%d readings retransmitted over %d reconnects", st.Retransmitted, st.Reconnects),
		},
	}.report(t)
}

// TestAggregatorCrash runs three `vpp aggregate` processes in one group
// (static membership) and SIGKILLs one mid-stream: once its session times
// out the two others take over its partitions, restore their state from
// the state topic and reprocess from the committed offsets (duplicates
// dropped by seq); the fleet totals must equal the truth within 10 s of
// the end of the stream.
func TestAggregatorCrash(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := testutil.BuildVPP(ctx, t)
	opts := kafkaOptions(kafkatest.Brokers(t), "fault-aggregate", 6, 1)
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		t.Fatal(err)
	}
	listen, httpAddr := freeAddr(t), freeAddr(t)
	startIngest(t, ctx, dir, bin, opts, listen, httpAddr)
	group := opts.Prefix + "aggregate"
	var aggs []*proc
	for i := range 3 {
		aggs = append(aggs, startAggregate(t, dir, bin, opts, group, fmt.Sprintf("a%d", i)))
	}
	r := startReader(t, ctx, opts)
	// The three share the partitions before the stream starts.
	waitUntil(t, ctx, 60*time.Second, "every aggregator owns a partition", func() bool {
		for _, a := range aggs {
			if !strings.Contains(logSince(a.logPath, 0), "partition restored") {
				return false
			}
		}
		return true
	})

	const count = 100_000
	s := newSim(t, listen, sim.Config{Devices: 600, Rate: 4000, Count: count, Seed: 33, Conns: 12})
	done := runSim(ctx, s)
	waitUntil(t, ctx, 60*time.Second, "20,000 readings acked", func() bool { return s.Stats().Acked >= 20_000 })
	victim := aggs[1]
	logOff := map[*proc]int64{}
	for _, a := range aggs {
		logOff[a] = logSize(a.logPath)
	}
	victim.kill()
	killTime := time.Now()
	killedAt := s.Stats().Acked
	t.Logf("SIGKILLed %s after %d readings acked", victim.name, killedAt)
	end := waitSim(t, ctx, s, done)
	truth := s.Truth()
	if truth.ReadingsSent != count || truth.ReadingsAcked != count {
		t.Fatalf("sim sent %d, acked %d of %d", truth.ReadingsSent, truth.ReadingsAcked, count)
	}
	conv, _, ok := waitTotals(t, ctx, r, truth, end, 30*time.Second)
	if ok && conv > 10*time.Second {
		t.Errorf("totals converged %s after the stream ended; want ≤ 10 s", conv.Round(10*time.Millisecond))
	}
	tel := waitTelemetry(t, ctx, opts, truth.ReadingsAcked, 30*time.Second)
	checkAcked(t, tel, truth)
	acct := waitAccounting(ctx, r, tel.records, 10*time.Second)
	for _, a := range aggs {
		if a != victim && a.exited() {
			t.Errorf("%s exited: %v\n%s", a.name, a.err, tail(a.logPath, 20))
		}
	}
	restored := 0
	var takeover time.Duration
	for _, a := range aggs {
		if a == victim {
			continue
		}
		for _, line := range strings.Split(logSince(a.logPath, logOff[a]), "\n") {
			if !strings.Contains(line, `msg="partition restored"`) {
				continue
			}
			restored++
			if f := strings.Fields(line); len(f) > 0 {
				if ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil {
					takeover = max(takeover, ts.Sub(killTime))
				}
			}
		}
	}
	if restored == 0 {
		t.Errorf("no survivor logged a restored partition after the kill")
	}
	result{
		Fault: "aggregator SIGKILL (1 of 3, static membership)", Broker: brokerKind(""),
		Sent: truth.ReadingsSent, Acked: truth.ReadingsAcked, InKafka: tel.distinct, Records: tel.records,
		Duplicates: acct.Duplicates, Match: ok, Converge: conv,
		Notes: []string{fmt.Sprintf("killed after %d acked; survivors restored its %d partitions from the state topic %s after the kill (session timeout)", killedAt, restored, takeover.Round(100*time.Millisecond))},
	}.report(t)
}
