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
//
// The holders table maps the hash of a device ID (Server.idHash, 64 bits
// with a seed of the process) to the slot of the connection holding it,
// in maps that hold no pointers and no strings: 16 bytes or so per device
// on a live connection, which the garbage collector does not scan, and
// which a connection's end gives back (a connection keeps the hashes it
// entered, 8 bytes each). Two device IDs of one hash (about 1 in 10^7 for
// a fleet of a million devices) would share a holder: the setpoints of
// one would go to the other's connection, which drops setpoints for
// devices it does not carry.

// maxHeldPerConn bounds the devices one connection holds (64 times a
// decoder's maxInterned; about 2.5 MB of holders at most): beyond it, the
// device it entered first is released for the next. A gateway of more
// devices than that would miss the setpoints of those it carries longest;
// a client sending made-up device IDs cannot grow the table without end.
const maxHeldPerConn = 1 << 16

// maxQueuedDownlinks bounds the setpoint messages waiting for one
// connection's writer.
const maxQueuedDownlinks = 1024

// holderShards splits the holders table so connections rarely contend.
const holderShards = 64

// holderTable maps device hashes to connection slots (see above).
type holderTable struct {
	shards [holderShards]holderShard
	// slots are the connections that hold devices, by slot (slots[0] is
	// never used); free the slots given back.
	slotMu sync.RWMutex
	slots  []*conn
	free   []uint32
}

type holderShard struct {
	mu sync.Mutex
	m  map[uint64]uint32
	// peak is the most entries m held since it was made: once it holds a
	// quarter of that, it is made anew (a Go map does not shrink).
	peak int
	_    [32]byte // a shard's lock to a cache line of its own
}

func (t *holderTable) shard(h uint64) *holderShard { return &t.shards[h%holderShards] }

// takeSlot gives c a slot of its own.
func (t *holderTable) takeSlot(c *conn) uint32 {
	t.slotMu.Lock()
	defer t.slotMu.Unlock()
	if n := len(t.free); n > 0 {
		slot := t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[slot] = c
		return slot
	}
	if len(t.slots) == 0 {
		t.slots = append(t.slots, nil)
	}
	t.slots = append(t.slots, c)
	return uint32(len(t.slots) - 1)
}

// releaseSlot gives back a slot none of the table's entries names.
func (t *holderTable) releaseSlot(slot uint32) {
	t.slotMu.Lock()
	defer t.slotMu.Unlock()
	t.slots[slot] = nil
	t.free = append(t.free, slot)
}

// put enters h as held by slot and reports whether it was not already.
func (t *holderTable) put(h uint64, slot uint32) bool {
	sh := t.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = make(map[uint64]uint32)
	}
	if sh.m[h] == slot {
		return false
	}
	sh.m[h] = slot
	sh.peak = max(sh.peak, len(sh.m))
	return true
}

// release removes the entries of hs that slot still holds.
func (t *holderTable) release(hs []uint64, slot uint32) {
	for _, h := range hs {
		t.release1(h, slot)
	}
}

// release1 removes h's entry if slot still holds it.
func (t *holderTable) release1(h uint64, slot uint32) {
	sh := t.shard(h)
	sh.mu.Lock()
	if sh.m[h] == slot {
		delete(sh.m, h)
		if n := len(sh.m); n < sh.peak/4 {
			sh.shrink()
		}
	}
	sh.mu.Unlock()
}

// shrink makes the shard's map anew, of its entries now. sh.mu is held.
func (sh *holderShard) shrink() {
	if len(sh.m) == 0 {
		sh.m, sh.peak = nil, 0
		return
	}
	m := make(map[uint64]uint32, len(sh.m))
	for h, slot := range sh.m {
		m[h] = slot
	}
	sh.m, sh.peak = m, len(m)
}

// holder returns the connection holding the device of hash h.
func (t *holderTable) holder(h uint64) (*conn, bool) {
	sh := t.shard(h)
	sh.mu.Lock()
	slot := sh.m[h]
	sh.mu.Unlock()
	if slot == 0 {
		return nil, false
	}
	t.slotMu.RLock()
	defer t.slotMu.RUnlock()
	c := t.slots[slot]
	return c, c != nil
}

// len returns the devices held.
func (t *holderTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// heldBy returns the connection holding device id.
func (s *Server) heldBy(id string) (*conn, bool) { return s.holders.holder(s.idHash(id)) }

// hold records that c holds device id, of hash h (c's decoder met it).
// It runs on c's read loop.
func (c *conn) hold(_ string, h uint64) {
	t := &c.s.holders
	if c.slot == 0 {
		c.slot = t.takeSlot(c)
	}
	if !t.put(h, c.slot) {
		return
	}
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if len(c.held) < maxHeldPerConn {
		c.held = append(c.held, h)
		return
	}
	// Full: the oldest entry makes room (c.held is a ring from heldNext).
	if old := c.held[c.heldNext]; old != h {
		t.release1(old, c.slot)
	}
	c.held[c.heldNext] = h
	c.heldNext = (c.heldNext + 1) % maxHeldPerConn
}

// releaseHeld removes c's devices from the holders (those another
// connection took since stay with it) and gives back c's slot.
func (c *conn) releaseHeld() {
	c.heldMu.Lock()
	held, slot := c.held, c.slot
	c.held, c.slot, c.heldNext = nil, 0, 0
	c.heldMu.Unlock()
	if slot == 0 {
		return
	}
	c.s.holders.release(held, slot)
	c.s.holders.releaseSlot(slot)
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
		c, ok := s.heldBy(sp.GetDeviceId())
		if !ok {
			s.ctr.spNotHeld.Add(1)
			continue
		}
		msg, err := proto.Marshal(&vppv1.Downlink{Body: &vppv1.Downlink_Setpoint{Setpoint: sp}})
		if err != nil {
			s.ctr.spDropped.Add(1)
			continue
		}
		if !c.enqueueDownlink(msg) {
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
