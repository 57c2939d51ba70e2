package ingest

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/kafka/kafkatest"
	"github.com/vppctl/vpp/proto/vppv1"
)

// produceSetpoints writes one SetpointBatch per site to the setpoints topic.
func produceSetpoints(t *testing.T, opts kafka.Options, batches ...*vppv1.SetpointBatch) {
	t.Helper()
	cfg, err := opts.SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(opts.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, b := range batches {
		v, err := proto.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: opts.Topics().Setpoints(), Key: sarama.StringEncoder(b.SiteId), Value: sarama.ByteEncoder(v)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSetpointsReachTheirDevices runs ingest on the embedded broker with two
// connections, each holding one device: a setpoint batch for both sites
// reaches each device on its own connection only; once a connection
// closes, its device is no longer held and its setpoints are counted as
// not held here.
func TestSetpointsReachTheirDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded broker")
	}
	opts := kafkatest.Options(t, 3)
	srv := startServer(t, Config{Kafka: opts}, nil)
	a, b := dial(t, srv.url), dial(t, srv.url)
	a.send(reading("dev-a", "site-a", 1))
	b.send(reading("dev-b", "site-b", 1))
	a.waitAck("dev-a", 1)
	b.waitAck("dev-b", 1)

	sp := func(dev string, seq uint64) *vppv1.Setpoint {
		now := time.Now().UnixMilli()
		return &vppv1.Setpoint{DeviceId: dev, DispatchId: "d-1", Seq: seq, TargetKw: 2.5, Mode: vppv1.SetpointMode_SETPOINT_MODE_FIXED,
			EffectiveMs: now, ExpiryMs: now + 60_000, HeartbeatTimeoutMs: 10_000}
	}
	// The reader starts at the end of the topic: produce until the first
	// batch gets through, then check what arrived where.
	deadline := time.Now().Add(30 * time.Second)
	for seq := uint64(1); len(a.setpoints()) == 0; seq++ {
		if time.Now().After(deadline) {
			t.Fatalf("no setpoint reached dev-a in 30 s (stats %+v)", srv.Stats())
		}
		produceSetpoints(t, opts, &vppv1.SetpointBatch{SiteId: "site-a", Setpoints: []*vppv1.Setpoint{sp("dev-a", seq)}},
			&vppv1.SetpointBatch{SiteId: "site-b", Setpoints: []*vppv1.Setpoint{sp("dev-b", seq)}})
		time.Sleep(100 * time.Millisecond)
	}
	eventually(t, "dev-b's setpoint on its connection", func() bool { return len(b.setpoints()) > 0 })
	for _, c := range []struct {
		cl  *client
		dev string
	}{{a, "dev-a"}, {b, "dev-b"}} {
		for _, got := range c.cl.setpoints() {
			if got.GetDeviceId() != c.dev || got.GetDispatchId() != "d-1" || got.GetTargetKw() != 2.5 {
				t.Errorf("connection of %s received %v", c.dev, got)
			}
		}
	}

	notHeld := srv.Stats().SetpointsNotHeld
	b.ws.Close()
	eventually(t, "dev-b's connection ends", func() bool {
		_, held := srv.heldBy("dev-b")
		return !held
	})
	produceSetpoints(t, opts, &vppv1.SetpointBatch{SiteId: "site-b", Setpoints: []*vppv1.Setpoint{sp("dev-b", 99)}})
	eventually(t, "the setpoint for the gone device counted as not held", func() bool {
		return srv.Stats().SetpointsNotHeld > notHeld
	})
	if _, held := srv.heldBy("dev-a"); !held {
		t.Error("dev-a no longer held while its connection lives")
	}
	if st := srv.Stats(); st.SetpointsDelivered < 2 || st.SetpointsDropped != 0 {
		t.Errorf("stats %+v: want ≥ 2 delivered, none dropped", st)
	}
}
