package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// The downlink of setpoints. Every ingest instance reads every partition of
// the setpoints topic (SetpointBatch records, see docs/dispatch.md) from its
// end and delivers the setpoints of the devices it holds: a device is held
// by the live connection that last sent a reading for it (holders; an entry
// is added when a connection's decoder meets a device, removed when the
// connection ends, so the table is bounded by the devices on live
// connections). A setpoint for a device held elsewhere is skipped; one for
// a connection whose downlink queue is full is dropped and counted: vpp
// refreshes every setpoint a few times per heartbeat, so a slow connection
// never blocks the delivery to the others.

// maxQueuedDownlinks bounds the setpoint messages waiting for one
// connection's writer.
const maxQueuedDownlinks = 1024

// hold records that c holds device id (c's decoder met it).
func (c *conn) hold(id string) {
	if v, ok := c.s.holders.Load(id); ok && v.(*conn) == c {
		return
	}
	c.s.holders.Store(id, c)
	c.heldMu.Lock()
	c.held = append(c.held, id)
	c.heldMu.Unlock()
}

// releaseHeld removes c's devices from the holders (those another
// connection took since stay with it).
func (c *conn) releaseHeld() {
	c.heldMu.Lock()
	held := c.held
	c.held = nil
	c.heldMu.Unlock()
	for _, id := range held {
		c.s.holders.CompareAndDelete(id, c)
	}
}

// enqueueDownlink queues a serialized Downlink for c's writer; false when
// the queue is full.
func (c *conn) enqueueDownlink(b []byte) bool {
	c.dlqMu.Lock()
	if len(c.dlq) >= maxQueuedDownlinks {
		c.dlqMu.Unlock()
		return false
	}
	c.dlq = append(c.dlq, b)
	c.dlqMu.Unlock()
	c.s.queueWrite(c)
	return true
}

// flushDownlinks writes the queued setpoint messages; its caller holds wmu
// (it is one of the connection's data writers, like flushAcks).
func (c *conn) flushDownlinks() error {
	c.dlqMu.Lock()
	q := c.dlq
	c.dlq = nil
	c.dlqMu.Unlock()
	for _, b := range q {
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			return fmt.Errorf("write setpoint: %w", err)
		}
	}
	c.s.ctr.spDelivered.Add(uint64(len(q)))
	return nil
}

// DeliverSetpoints hands the setpoints of b to the connections holding
// their devices.
func (s *Server) DeliverSetpoints(b *vppv1.SetpointBatch) {
	for _, sp := range b.GetSetpoints() {
		v, ok := s.holders.Load(sp.GetDeviceId())
		if !ok {
			s.ctr.spNotHeld.Add(1)
			continue
		}
		msg, err := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Setpoint{Setpoint: sp}})
		if err != nil {
			s.ctr.spDropped.Add(1)
			continue
		}
		if !v.(*conn).enqueueDownlink(msg) {
			s.ctr.spDropped.Add(1)
		}
	}
}

// SetpointReader reads every partition of the setpoints topic from its end
// (at start) and hands each batch to Deliver, reconnecting with backoff
// after errors.
type SetpointReader struct {
	Kafka   kafka.Options
	Deliver func(*vppv1.SetpointBatch)
	Logger  *slog.Logger
	// Errors counts consume errors (nil: not counted).
	Errors func()
}

// Run reads until ctx ends.
func (r *SetpointReader) Run(ctx context.Context) error {
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "setpoints")
	cfg, err := r.Kafka.SaramaConfig()
	if err != nil {
		return fmt.Errorf("setpoint reader: %w", err)
	}
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetNewest
	// A setpoint is waited for at the device: fetches return at once.
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	cfg.Metadata.AllowAutoTopicCreation = false
	if cfg.ClientID == "vpp" {
		cfg.ClientID = "vpp-ingest-setpoints"
	}
	topic := r.Kafka.Topics().Setpoints()
	retry := backoff.Policy{Min: 250 * time.Millisecond, Max: 10 * time.Second}
	resume := map[int32]int64{} // next offset per partition, once read
	for n := 0; ctx.Err() == nil; n++ {
		read, err := r.session(ctx, cfg, topic, resume, log)
		if ctx.Err() != nil {
			return nil
		}
		if read {
			n = 0
		}
		if r.Errors != nil {
			r.Errors()
		}
		log.Warn("setpoint reader session ended, reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry.Delay(n)):
		}
	}
	return nil
}

// session reads every partition until ctx ends or an error; it reports
// whether it read anything.
func (r *SetpointReader) session(ctx context.Context, cfg *sarama.Config, topic string, resume map[int32]int64, log *slog.Logger) (read bool, err error) {
	client, err := sarama.NewClient(r.Kafka.Brokers, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return false, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return false, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type msg struct {
		p      int32
		offset int64
		value  []byte
	}
	msgs := make(chan msg, 256)
	failed := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		from, ok := resume[p]
		if !ok {
			from = sarama.OffsetNewest
		}
		pc, err := consumer.ConsumePartition(topic, p, from)
		if err != nil && from != sarama.OffsetNewest {
			pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetNewest)
		}
		if err != nil {
			return false, fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case <-sctx.Done():
					return
				case e, ok := <-pc.Errors():
					if ok {
						failed <- e
						return
					}
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case msgs <- msg{p: m.Partition, offset: m.Offset, value: m.Value}:
					case <-sctx.Done():
						return
					}
				}
			}
		}()
	}
	defer wg.Wait()
	log.Info("reading setpoints", "topic", topic, "partitions", len(parts))
	for {
		select {
		case <-ctx.Done():
			cancel()
			return read, nil
		case err := <-failed:
			cancel()
			return read, err
		case m := <-msgs:
			read = true
			resume[m.p] = m.offset + 1
			var b vppv1.SetpointBatch
			if err := proto.Unmarshal(m.value, &b); err != nil {
				log.Warn("skip undecodable setpoint batch", "partition", m.p, "offset", m.offset, "err", err)
				continue
			}
			r.Deliver(&b)
		}
	}
}
