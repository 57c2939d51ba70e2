package follow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// The broker check of a partition that looks idle (see checkIdle).
const (
	// idleCheckTimeout bounds the dial, write and read of each request of
	// a check, so that a check goroutine ends within a few of them after
	// its session.
	idleCheckTimeout = 5 * time.Second
	// idleCheckBytes is the most record bytes a check asks for per fetch:
	// one record at the offset asked for tells enough, and the broker
	// returns the first batch at that offset whole even when it is larger.
	idleCheckBytes = 64 << 10
	// idleCheckPages is the most fetches of one check: each goes on from
	// the end of the batches the previous one returned, so that a run of
	// control batches, or of batches whose records compaction removed, is
	// crossed. A check that did not get to the mark says "not idle"; the
	// next one goes on from where it stopped.
	idleCheckPages = 8
)

// idleVerdict is the broker's answer about a partition that looked idle.
type idleVerdict struct {
	k    topicPartition
	from int64 // the offset asked from
	mark int64
	// idle is whether the broker holds no record at or after from below
	// mark: nothing more will come below the catch-up mark.
	idle bool
	// found is the offset of a record the broker still holds in
	// [from, mark) when not idle, -1 when none was found.
	found int64
	// reached is how far the check got: the broker holds no record the
	// consumer would deliver in [from, reached).
	reached int64
	err     error
}

// idleChecks are a session's broker checks of partitions that look idle;
// owned by the Run goroutine, but for verdicts.
type idleChecks struct {
	inflight map[topicPartition]bool
	// last is when the latest check of a partition answered "not idle":
	// its idle clock restarts then.
	last map[topicPartition]time.Time
	// reached is how far the checks of a partition found no record: the
	// next check goes on from there (offsets below a high-water mark only
	// lose records, never gain them).
	reached  map[topicPartition]int64
	verdicts chan idleVerdict
	// start runs a check of k from from off the Run goroutine.
	start func(k topicPartition, from, mark int64)
}

// verifyIdle asks the leader of k whether it holds any record at or after
// from and below mark, over a connection of its own (the client's, shared
// with the consumer, is held by its fetches for up to their MaxWaitTime,
// and cannot be interrupted) with requests bounded by idleCheckTimeout.
// It fetches with MaxWaitTime 0, so the broker answers at once with what it
// has. A failed check is not idle: the partition is failing, keep waiting.
func verifyIdle(ctx context.Context, client sarama.Client, scfg *sarama.Config, k topicPartition, from, mark int64) idleVerdict {
	v := idleVerdict{k: k, from: from, mark: mark, found: -1, reached: from}
	fail := func(err error) idleVerdict {
		v.err = fmt.Errorf("check %s/%d from offset %d below its catch-up mark %d: %w", k.topic, k.partition, from, mark, err)
		return v
	}
	leader, err := client.Leader(k.topic, k.partition)
	if err != nil {
		return fail(fmt.Errorf("leader: %w", err))
	}
	cfg := *scfg
	cfg.Net.DialTimeout = min(cfg.Net.DialTimeout, idleCheckTimeout)
	cfg.Net.ReadTimeout = min(cfg.Net.ReadTimeout, idleCheckTimeout)
	cfg.Net.WriteTimeout = min(cfg.Net.WriteTimeout, idleCheckTimeout)
	b := sarama.NewBroker(leader.Addr())
	if err := b.Open(&cfg); err != nil {
		return fail(fmt.Errorf("connect to %s: %w", leader.Addr(), err))
	}
	defer b.Close()

	at := from
	for range idleCheckPages {
		v.reached = at
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if at >= mark {
			v.idle = true
			return v
		}
		req := newFetchRequest(&cfg)
		req.AddBlock(k.topic, k.partition, at, idleCheckBytes, -1)
		resp, err := b.Fetch(req)
		if err != nil {
			return fail(fmt.Errorf("fetch from %s: %w", leader.Addr(), err))
		}
		if resp.ErrorCode != 0 {
			return fail(fmt.Errorf("fetch from %s: %w", leader.Addr(), sarama.KError(resp.ErrorCode)))
		}
		block := resp.GetBlock(k.topic, k.partition)
		if block == nil {
			return fail(fmt.Errorf("fetch from %s: %w", leader.Addr(), sarama.ErrIncompleteResponse))
		}
		switch {
		case errors.Is(block.Err, sarama.ErrNoError):
		case errors.Is(block.Err, sarama.ErrOffsetOutOfRange):
			// Retention removed the records from at on (go on from the
			// oldest the broker still holds), or the log was truncated
			// below at (none is left there).
			oldest, err := offsetAt(b, &cfg, k, sarama.OffsetOldest)
			if err != nil {
				return fail(err)
			}
			if oldest > at {
				at = oldest
				continue
			}
			newest, err := offsetAt(b, &cfg, k, sarama.OffsetNewest)
			if err != nil {
				return fail(err)
			}
			if newest <= at {
				v.idle = true
				return v
			}
			return fail(fmt.Errorf("fetch from %s: %w (offsets %d to %d)", leader.Addr(), block.Err, oldest, newest))
		default:
			return fail(fmt.Errorf("fetch from %s: %w", leader.Addr(), block.Err))
		}
		found, resume := scanBlock(block, at, mark)
		switch {
		case found >= 0:
			v.found = found
			return v
		case resume <= at:
			// Nothing at or after at: the broker has no record left there.
			v.idle = true
			return v
		}
		at = resume
	}
	// Not at the mark yet, and no record found: not idle, the next check
	// goes on from here.
	v.reached = at
	return v
}

// newFetchRequest is a fetch at the version sarama's consumer uses for
// cfg.Version (record batches from 0.11 on), answered at once.
func newFetchRequest(cfg *sarama.Config) *sarama.FetchRequest {
	req := &sarama.FetchRequest{MinBytes: 1, MaxWaitTime: 0}
	switch v := cfg.Version; {
	case v.IsAtLeast(sarama.V2_7_0_0):
		req.Version = 12
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 11
	case v.IsAtLeast(sarama.V2_1_0_0):
		req.Version = 10
	case v.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 8
	case v.IsAtLeast(sarama.V1_1_0_0):
		req.Version = 7
	case v.IsAtLeast(sarama.V1_0_0_0):
		req.Version = 6
	case v.IsAtLeast(sarama.V0_11_0_0):
		req.Version = 5
	case v.IsAtLeast(sarama.V0_10_1_0):
		req.Version = 3
	case v.IsAtLeast(sarama.V0_10_0_0):
		req.Version = 2
	case v.IsAtLeast(sarama.V0_9_0_0):
		req.Version = 1
	}
	if req.Version >= 3 {
		req.MaxBytes = idleCheckBytes
	}
	if req.Version >= 4 {
		// As the consumer reads: read-uncommitted (sarama's default, which
		// the follower keeps) delivers the records of every transaction.
		req.Isolation = cfg.Consumer.IsolationLevel
	}
	if req.Version >= 7 {
		req.SessionID, req.SessionEpoch = 0, -1 // no fetch session
	}
	return req
}

// offsetAt asks b, the leader of k, for k's offset at ts (ms, or
// sarama.OffsetOldest, sarama.OffsetNewest).
func offsetAt(b *sarama.Broker, cfg *sarama.Config, k topicPartition, ts int64) (int64, error) {
	req := sarama.NewOffsetRequest(cfg.Version)
	req.AddBlock(k.topic, k.partition, ts, 1)
	resp, err := b.GetAvailableOffsets(req)
	if err != nil {
		return 0, fmt.Errorf("offset %d from %s: %w", ts, b.Addr(), err)
	}
	block := resp.GetBlock(k.topic, k.partition)
	switch {
	case block == nil:
		return 0, fmt.Errorf("offset %d from %s: %w", ts, b.Addr(), sarama.ErrIncompleteResponse)
	case !errors.Is(block.Err, sarama.ErrNoError):
		return 0, fmt.Errorf("offset %d from %s: %w", ts, b.Addr(), block.Err)
	case len(block.Offsets) != 1:
		return 0, fmt.Errorf("offset %d from %s: %d offsets", ts, b.Addr(), len(block.Offsets))
	}
	return block.Offsets[0], nil
}

// scanBlock looks in a fetch answer from offset from for a record the
// consumer would deliver with an offset in [from, mark). It returns that
// offset, or -1 and the offset to go on from: past every batch the answer
// holds whole, at a partial trailing one (the next fetch returns it whole,
// as the first batch of a fetch always is), from itself when the answer
// holds nothing.
//
// A batch may begin before from (the broker returns the batch holding the
// offset asked for); its records before from were delivered already.
// Control batches (transaction markers) take offsets but are never
// delivered.
func scanBlock(block *sarama.FetchResponseBlock, from, mark int64) (found, resume int64) {
	resume = from
	sets := block.RecordsSet
	if len(sets) == 0 && block.Records != nil {
		sets = []*sarama.Records{block.Records}
	}
	if len(sets) == 0 && block.Partial {
		// A first batch larger than the answer (before KIP-74): there are
		// records at from that did not fit.
		return from, from
	}
	in := func(off int64) bool { return off >= from && off < mark }
	whole := false // whether a whole batch or message came before
	for _, rs := range sets {
		switch {
		case rs == nil:
		case rs.RecordBatch != nil:
			rb := rs.RecordBatch
			last := rb.FirstOffset + int64(rb.LastOffsetDelta)
			if rb.PartialTrailingRecord {
				if rb.Control || rb.FirstOffset >= mark || last < from {
					return -1, max(resume, last+1)
				}
				if !whole {
					// Not even the first batch fits (before KIP-74):
					// records are there.
					return max(rb.FirstOffset, from), resume
				}
				// Not here whole: the next fetch starts with it.
				return -1, rb.FirstOffset
			}
			if !rb.Control {
				for _, r := range rb.Records {
					if off := rb.FirstOffset + r.OffsetDelta; in(off) {
						return off, resume
					}
				}
			}
			resume, whole = max(resume, last+1), true
		case rs.MsgSet != nil:
			// Legacy message sets, offsets as sarama's consumer reads them.
			for _, mb := range rs.MsgSet.Messages {
				inner := mb.Messages()
				for _, m := range inner {
					off := m.Offset
					if m.Msg != nil && m.Msg.Version >= 1 {
						off += mb.Offset - inner[len(inner)-1].Offset
					}
					if in(off) {
						return off, resume
					}
				}
				resume, whole = max(resume, mb.Offset+1), true
			}
			if rs.MsgSet.PartialTrailingMessage {
				if !whole {
					return from, from // not even the first message fits
				}
				return -1, resume
			}
		}
	}
	return -1, resume
}
