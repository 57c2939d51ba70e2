package ingest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/proto/vppv1"
)

// TestEmbeddedKafka runs ingest with the sarama publisher against the
// embedded Kafka-protocol broker and reads the telemetry back.
func TestEmbeddedKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded broker")
	}
	opts := kafkatest.Options(t, 3)
	srv := startServer(t, Config{Kafka: opts, StatsInterval: 50 * time.Millisecond}, nil)
	c := dial(t, srv.url)

	const sites, devsPerSite, seqs = 3, 2, 5
	want := map[string]string{} // device/seq → site
	for seq := uint64(1); seq <= seqs; seq++ {
		var rs []*vppv1.Reading
		for s := range sites {
			for d := range devsPerSite {
				dev, site := fmt.Sprintf("dev-%d-%d", s, d), fmt.Sprintf("site-%d", s)
				rs = append(rs, reading(dev, site, seq))
				want[fmt.Sprintf("%s/%d", dev, seq)] = site
			}
		}
		c.send(rs...)
	}
	bad := reading("dev-bad", "site-0", 1)
	bad.Mode = vppv1.Mode_MODE_UNSPECIFIED
	c.send(bad)
	for s := range sites {
		for d := range devsPerSite {
			c.waitAck(fmt.Sprintf("dev-%d-%d", s, d), seqs)
		}
	}
	c.waitAck("dev-bad", 1)

	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	topic := opts.Topics().Telemetry()
	parts, err := consumer.Partitions(topic)
	if err != nil || len(parts) != 3 {
		t.Fatalf("partitions of %s: %v %v", topic, parts, err)
	}
	msgs := make(chan *sarama.ConsumerMessage, 100)
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	got := map[string]bool{}
	sitePartition := map[string]int32{}
	timeout := time.After(waitFor)
	for len(got) < len(want) {
		select {
		case m := <-msgs:
			var r vppv1.Reading
			if err := proto.Unmarshal(m.Value, &r); err != nil {
				t.Fatalf("telemetry value: %v", err)
			}
			k := fmt.Sprintf("%s/%d", r.DeviceId, r.Seq)
			if want[k] == "" || got[k] {
				t.Fatalf("unexpected or duplicate reading %s", k)
			}
			if string(m.Key) != r.SiteId || r.SiteId != want[k] {
				t.Fatalf("reading %s: key %q, site %q", k, m.Key, r.SiteId)
			}
			if p, ok := sitePartition[r.SiteId]; ok && p != m.Partition {
				t.Fatalf("site %s in partitions %d and %d", r.SiteId, p, m.Partition)
			}
			sitePartition[r.SiteId] = m.Partition
			got[k] = true
		case <-timeout:
			t.Fatalf("read %d of %d readings back from %s", len(got), len(want), topic)
		}
	}

	// The invalid reading is in the rejected topic with its reason.
	rc, err := consumer.ConsumePartition(opts.Topics().Rejected(), 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	select {
	case m := <-rc.Messages():
		var reason string
		for _, h := range m.Headers {
			if string(h.Key) == kafka.HeaderReason {
				reason = string(h.Value)
			}
		}
		if string(m.Key) != "dev-bad" || reason != ReasonModeUnknown {
			t.Fatalf("rejected record key %q reason %q", m.Key, reason)
		}
	case <-time.After(waitFor):
		t.Fatal("no rejected record")
	}

	if err := srv.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	st := srv.Stats()
	if st.Published != uint64(len(want)) || st.Acked != uint64(len(want))+1 || st.Buffered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestEmbeddedKafkaOutage: while the broker refuses produce requests,
// nothing is acked and records stay buffered; once it is back, every
// reading is published exactly once and acked.
func TestEmbeddedKafkaOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded broker")
	}
	emb, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	opts := kafka.Options{
		Brokers: []string{emb.Addr()}, Prefix: "out.", Version: kafka.DefaultVersion,
		Partitions: 2, Replication: 1, ClientID: "ingest-test",
	}
	srv := startServer(t, Config{Kafka: opts}, nil)
	c := dial(t, srv.url)
	c.send(reading("warm", "s0", 1))
	c.waitAck("warm", 1)

	var outage atomic.Bool
	outage.Store(true)
	emb.Cluster().ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		emb.Cluster().KeepControl()
		if outage.Load() {
			return nil, errors.New("injected outage"), true
		}
		return nil, nil, false
	})
	const n = 20
	for seq := uint64(1); seq <= n; seq++ {
		c.send(reading("o1", "s1", seq), reading("o2", "s2", seq))
	}
	eventually(t, "kafka marked down", func() bool { return srv.Stats().KafkaDown })
	if got := c.ack("o1") + c.ack("o2"); got != 0 {
		t.Fatalf("acks during the outage: o1=%d o2=%d", c.ack("o1"), c.ack("o2"))
	}
	if st := srv.Stats(); st.Buffered != 2*n {
		t.Fatalf("buffered %d during the outage, want %d", st.Buffered, 2*n)
	}
	outage.Store(false)
	c.waitAck("o1", n)
	c.waitAck("o2", n)

	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	for p := int32(0); p < 2; p++ {
		pc, err := consumer.ConsumePartition(opts.Topics().Telemetry(), p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		hwm := pc.HighWaterMarkOffset()
		for off := int64(0); off < hwm; off++ {
			m := <-pc.Messages()
			var r vppv1.Reading
			if err := proto.Unmarshal(m.Value, &r); err != nil {
				t.Fatal(err)
			}
			seen[fmt.Sprintf("%s/%d", r.DeviceId, r.Seq)]++
		}
		pc.Close()
	}
	if len(seen) != 2*n+1 {
		t.Fatalf("%d distinct readings in Kafka, want %d", len(seen), 2*n+1)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("reading %s in Kafka %d times", k, c)
		}
	}
	eventually(t, "kafka back", func() bool { return !srv.Stats().KafkaDown })
}
