package aggregate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// handler is the sarama.ConsumerGroupHandler of an Aggregator. Under
// cooperative rebalancing Setup runs once per join and ConsumeClaim once per
// newly assigned partition, so all per-partition work (restore, flush, drop)
// lives in ConsumeClaim.
type handler struct {
	a        *Aggregator
	client   sarama.Client   // reads offsets of the state topic
	consumer sarama.Consumer // reads the state topic to restore
	producer sarama.SyncProducer
	hist     *historySink // nil: no history samples
	// joined is set by the first Setup: the group admitted this member
	// once (Setup runs in the goroutine that called Consume).
	joined bool
}

// Setup implements sarama.ConsumerGroupHandler.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	h.joined = true
	h.a.mu.Lock()
	h.a.session = sess
	h.a.sessionErr = ""
	h.a.mu.Unlock()
	h.a.log.Info("joined group", "member", sess.MemberID(), "generation", sess.GenerationID(),
		"partitions", sess.Claims()[h.a.topic])
	return nil
}

// Cleanup implements sarama.ConsumerGroupHandler.
func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.a.mu.Lock()
	h.a.session = nil
	h.a.mu.Unlock()
	h.a.log.Info("session ended", "member", sess.MemberID(), "generation", sess.GenerationID())
	return nil
}

// ConsumeClaim implements sarama.ConsumerGroupHandler: it restores the
// partition's state, applies its telemetry, flushes on every tick and, when
// the partition is revoked or the session ends, flushes a last time and
// drops the state.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	a := h.a
	ctx := sess.Context()
	p := claim.Partition()
	log := a.log.With("partition", p)

	ps, err := a.acquire(ctx, p)
	if err != nil {
		return nil // the session ended before the previous owner let go
	}
	defer a.release(ps)
	log.Info("partition assigned", "initial_offset", claim.InitialOffset(), "generation", sess.GenerationID())

	start := time.Now()
	for {
		err := h.restore(ctx, ps)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			log.Info("partition released before restore completed")
			return nil
		}
		log.Warn("restore partition state, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retryBackoff):
		}
	}
	ps.mu.Lock()
	next := resumeAt(ps.acct)
	log.Info("partition restored", "sites", len(ps.sites), "devices", ps.devices,
		"next_offset", ps.acct.NextOffset, "replay_from", next, "took", time.Since(start).Round(time.Millisecond))
	ps.mu.Unlock()
	if next > 0 {
		// Already durable: the state topic reflects every record below it.
		sess.MarkOffset(claim.Topic(), p, next, "")
	}

	ticker := time.NewTicker(a.cfg.FlushInterval)
	defer ticker.Stop()
	var sampleC <-chan time.Time // history samples, only once restored
	if h.hist != nil {
		st := time.NewTicker(a.cfg.HistoryInterval)
		defer st.Stop()
		sampleC = st.C
		h.sample(ps, claim)
	}
	// State is published in the background, one publication at a time per
	// partition, while telemetry keeps being applied: a tick that finds the
	// previous publication still in flight leaves the dirty sites for the
	// next one.
	published := make(chan publication, 1)
	inFlight := false
	failing := false
	settle := func(pub publication) {
		inFlight = false
		err := h.settle(sess, claim, ps, pub)
		switch {
		case err != nil && !failing:
			log.Warn("publish partition state, will retry", "err", err)
		case err == nil && failing:
			log.Info("publish partition state recovered")
		}
		failing = err != nil
	}
	batch := make([]*sarama.ConsumerMessage, 0, maxConsumeBatch)
loop:
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				break loop
			}
			// The messages already waiting are applied with this one, under
			// one lock, instead of one select each.
			batch, ok = waiting(claim.Messages(), append(batch[:0], msg))
			h.consume(ps, batch, claim.HighWaterMarkOffset())
			clear(batch)
			if !ok {
				break loop
			}
		case <-ticker.C:
			if inFlight {
				continue
			}
			pub, err := h.capture(claim, ps, false)
			if err != nil {
				settle(publication{err: err})
				continue
			}
			if pub.msgs == nil {
				continue
			}
			inFlight = true
			go func() {
				pub.err = h.producer.SendMessages(pub.msgs)
				published <- pub
			}()
		case pub := <-published:
			settle(pub)
		case <-sampleC:
			h.sample(ps, claim)
		case <-ctx.Done():
			break loop
		}
	}
	if inFlight {
		settle(<-published)
	}

	reason := "revoked"
	if ctx.Err() != nil {
		reason = "session ended"
	}
	var ferr error
	for attempt := range finalFlushAttempts {
		if ferr = h.flush(sess, claim, ps); ferr == nil {
			break
		}
		if attempt < finalFlushAttempts-1 {
			time.Sleep(retryBackoff / 4)
		}
	}
	if ferr != nil {
		log.Error("final publish of partition state failed; the next owner reprocesses from the last durable state",
			"err", ferr, "reason", reason)
	}
	ps.mu.Lock()
	log.Info("partition released", "reason", reason, "next_offset", ps.acct.NextOffset,
		"consumed", ps.acct.Consumed, "applied", ps.acct.Applied, "duplicates", ps.acct.Duplicates)
	ps.mu.Unlock()
	return nil
}

// consume applies telemetry records, in order, except those the restored
// state already reflects.
func (h *handler) consume(ps *partState, msgs []*sarama.ConsumerMessage, hwm int64) {
	nowMs := h.a.now().UnixMilli()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm
	}
	for _, msg := range msgs {
		if msg.Offset < ps.acct.NextOffset {
			if msg.Offset >= ps.pos {
				ps.replay(msg.Offset, msg.Value, nowMs)
			}
			continue
		}
		if ts, ok := ps.record(msg.Offset, msg.Value, nowMs); ok {
			h.a.freshness.Observe(time.Duration(nowMs-ts) * time.Millisecond)
		}
	}
}

// maxConsumeBatch bounds the telemetry messages applied under one lock of
// a partition's state: the flush ticker waits for at most that many.
const maxConsumeBatch = 256

// waiting appends to batch the messages already waiting in msgs, up to
// maxConsumeBatch in all, without blocking; ok is false once msgs is
// closed.
func waiting(msgs <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage) (_ []*sarama.ConsumerMessage, ok bool) {
	for len(batch) < maxConsumeBatch {
		select {
		case m, open := <-msgs:
			if !open {
				return batch, false
			}
			batch = append(batch, m)
		default:
			return batch, true
		}
	}
	return batch, true
}

// sample publishes the partition's PartitionSample to the history topic
// without blocking.
func (h *handler) sample(ps *partState, claim sarama.ConsumerGroupClaim) {
	nowMs := h.a.now().UnixMilli()
	hwm := claim.HighWaterMarkOffset()
	ps.mu.Lock()
	s := ps.sample(nowMs, hwm)
	ps.mu.Unlock()
	h.hist.publish(s)
}

// publication is one batch of state records on its way to the state
// topic: the dirty sites and the partition record as captured, and the
// telemetry offset they reflect.
type publication struct {
	msgs  []*sarama.ProducerMessage // nil: nothing to publish
	next  int64                     // telemetry offset behind the state
	start time.Time
	err   error
}

// capture marks silent devices offline and encodes the dirty sites due now
// (all of them when all is set) and the partition record for partition
// ps.id, taking them out of the dirty set (settle puts them back if
// publishing fails).
func (h *handler) capture(claim sarama.ConsumerGroupClaim, ps *partState, all bool) (publication, error) {
	nowMs := h.a.now().UnixMilli()
	hwm := claim.HighWaterMarkOffset()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if hwm > ps.acct.HighWaterMark {
		ps.acct.HighWaterMark = hwm // for Stats; published with the next change
	}
	ps.markOffline(nowMs)
	ps.beginCapture(all)
	if !ps.pending() {
		return publication{}, nil
	}
	recs, err := ps.flushRecords(nowMs, hwm)
	if err != nil {
		return publication{}, err
	}
	ps.take()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		msgs[i] = &sarama.ProducerMessage{
			Topic:     h.a.state,
			Partition: ps.id,
			Key:       sarama.ByteEncoder(r.key),
			Value:     sarama.ByteEncoder(r.value),
		}
	}
	return publication{msgs: msgs, next: resumeAt(ps.acct), start: time.Now()}, nil
}

// settle ends a publication: on success the telemetry offset behind it is
// marked (state before offsets); on failure its sites stay dirty for the
// next flush. It returns the publication's error, with context.
func (h *handler) settle(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, ps *partState, pub publication) error {
	err := pub.err
	if pub.msgs != nil {
		h.a.publishLatency.Observe(time.Since(pub.start))
		ps.mu.Lock()
		ps.settle(err == nil)
		ps.mu.Unlock()
	}
	if err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			err = fmt.Errorf("%d of %d records: %w", len(perrs), len(pub.msgs), perrs[0].Err)
		}
		return fmt.Errorf("publish state of partition %d: %w", ps.id, err)
	}
	if pub.next > 0 {
		sess.MarkOffset(claim.Topic(), ps.id, pub.next, "")
	}
	return nil
}

// flush publishes the partition's whole state synchronously (held sites
// too): capture, send, settle.
func (h *handler) flush(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, ps *partState) error {
	pub, err := h.capture(claim, ps, true)
	if err != nil {
		return h.settle(sess, claim, ps, publication{err: err})
	}
	if pub.msgs != nil {
		pub.err = h.producer.SendMessages(pub.msgs)
	}
	return h.settle(sess, claim, ps, pub)
}

// restore rebuilds ps from state partition ps.id: every record from the
// oldest offset up to the newest one at the start (compaction leaves gaps,
// so it stops at the first record at or beyond newest-1, never waiting for
// a particular offset).
func (h *handler) restore(ctx context.Context, ps *partState) error {
	topic := h.a.state
	oldest, err := h.client.GetOffset(topic, ps.id, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("oldest offset of %s/%d: %w", topic, ps.id, err)
	}
	newest, err := h.client.GetOffset(topic, ps.id, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("newest offset of %s/%d: %w", topic, ps.id, err)
	}
	tmp := newPartState(ps.id, ps.cfg)
	if newest > oldest {
		if err := h.readState(ctx, tmp, oldest, newest); err != nil {
			return err
		}
	}
	ps.mu.Lock()
	ps.adopt(tmp)
	ps.mu.Unlock()
	return nil
}

func (h *handler) readState(ctx context.Context, tmp *partState, oldest, newest int64) (err error) {
	topic := h.a.state
	pc, err := h.consumer.ConsumePartition(topic, tmp.id, oldest)
	if err != nil {
		return fmt.Errorf("read %s/%d from %d: %w", topic, tmp.id, oldest, err)
	}
	defer func() {
		if cerr := pc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close reader of %s/%d: %w", topic, tmp.id, cerr)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("read %s/%d: %w", topic, tmp.id, ctx.Err())
		case cerr, ok := <-pc.Errors():
			if ok {
				return fmt.Errorf("read %s/%d: %w", topic, tmp.id, cerr)
			}
		case msg, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("read %s/%d: reader closed", topic, tmp.id)
			}
			value := msg.Value
			if len(value) == 0 {
				value = nil // tombstone
			}
			if err := tmp.restore(string(msg.Key), value); err != nil {
				h.a.log.Warn("skip unreadable state record", "partition", tmp.id, "offset", msg.Offset, "err", err)
			}
			if msg.Offset+1 >= newest {
				return nil
			}
		}
	}
}

// acquire registers the state of partition p, waiting for a previous claim
// of p in this process (if any) to let go first.
func (a *Aggregator) acquire(ctx context.Context, p int32) (*partState, error) {
	for {
		a.mu.Lock()
		old := a.parts[p]
		if old == nil {
			ps := newPartState(p, a.twin)
			a.parts[p] = ps
			a.mu.Unlock()
			return ps, nil
		}
		a.mu.Unlock()
		select {
		case <-old.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release drops the state of a partition that is no longer owned.
func (a *Aggregator) release(ps *partState) {
	a.mu.Lock()
	if a.parts[ps.id] == ps {
		delete(a.parts, ps.id)
	}
	a.mu.Unlock()
	close(ps.done)
}
