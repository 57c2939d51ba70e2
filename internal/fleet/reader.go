package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Key prefixes of the state and stats topics.
const (
	SiteKeyPrefix      = "s/"
	PartitionKeyPrefix = "p/"
	IngestKeyPrefix    = "ingest/"
)

// Reader defaults.
const (
	// DefaultPublishInterval is the most often the reader republishes its
	// snapshot while records arrive.
	DefaultPublishInterval = 100 * time.Millisecond
	// DefaultRefreshInterval is how often the reader looks for new
	// partitions.
	DefaultRefreshInterval = 10 * time.Second
	// DefaultIdleCatchUp is how long a partition may deliver nothing before
	// the reader stops waiting for its start-up high-water mark (compaction
	// can remove the records just below it, e.g. an expired tombstone).
	DefaultIdleCatchUp = 5 * time.Second

	errorLogInterval = 10 * time.Second
)

// SnapshotSource is anything that serves fleet snapshots: the Reader, or a
// fixed snapshot in tests.
type SnapshotSource interface {
	// Snapshot returns the current snapshot; never nil.
	Snapshot() *Snapshot
}

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int32
}

// Reader folds the compacted state topic (site and partition states) and
// the stats topic (ingest accounting) into a Tree and publishes immutable
// Snapshots of it. One goroutine (Run) folds; any number of goroutines read
// Snapshot concurrently.
type Reader struct {
	opts   kafka.Options
	cfg    *sarama.Config
	log    *slog.Logger
	topics []string

	publishInterval time.Duration
	refreshInterval time.Duration
	idleCatchUp     time.Duration
	backoffMin      time.Duration
	backoffMax      time.Duration

	snap     atomic.Pointer[Snapshot]
	mu       sync.Mutex
	changed  chan struct{}
	caughtUp chan struct{}
	done     chan struct{}
	runErr   error
	started  atomic.Bool

	// Owned by the Run goroutine.
	tree       *Tree
	next       map[topicPartition]int64
	captured   bool
	pending    map[topicPartition]int64
	lastActive map[topicPartition]time.Time
	lastError  map[topicPartition]*atomic.Int64 // unix ns of the last consume error, set by forward
	dirty      bool
	skipped    uint64
	startedAt  time.Time
}

// NewReader returns a reader of the deployment's state and stats topics. It
// does not connect: Run does, and keeps reconnecting.
func NewReader(opts kafka.Options, logger *slog.Logger) (*Reader, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("fleet reader: no kafka brokers")
	}
	cfg, err := opts.SaramaConfig()
	if err != nil {
		return nil, fmt.Errorf("fleet reader: %w", err)
	}
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Metadata.AllowAutoTopicCreation = false // a reader never creates topics
	if logger == nil {
		logger = slog.Default()
	}
	t := opts.Topics()
	r := &Reader{
		opts:            opts,
		cfg:             cfg,
		log:             logger.With("component", "fleet-reader"),
		topics:          []string{t.State(), t.Stats()},
		publishInterval: DefaultPublishInterval,
		refreshInterval: DefaultRefreshInterval,
		idleCatchUp:     DefaultIdleCatchUp,
		backoffMin:      250 * time.Millisecond,
		backoffMax:      10 * time.Second,
		changed:         make(chan struct{}),
		caughtUp:        make(chan struct{}),
		done:            make(chan struct{}),
		tree:            NewTree(),
		next:            make(map[topicPartition]int64),
		lastActive:      make(map[topicPartition]time.Time),
		lastError:       make(map[topicPartition]*atomic.Int64),
	}
	r.snap.Store(r.tree.Snapshot())
	return r, nil
}

// Snapshot returns the latest published snapshot; never nil. Before the
// reader caught up it may be incomplete (see WaitCaughtUp).
func (r *Reader) Snapshot() *Snapshot { return r.snap.Load() }

// Version is the update count of the latest published snapshot; it grows
// whenever a newer snapshot is published.
func (r *Reader) Version() uint64 { return r.snap.Load().Version }

// Changed returns a channel that is closed when the next snapshot is
// published. Call it again after it fired.
func (r *Reader) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// WaitCaughtUp blocks until the reader has read every partition up to the
// high-water mark it saw when it first connected, so that its snapshot is
// complete, or until ctx ends or Run returns.
func (r *Reader) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-r.caughtUp:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for fleet reader to catch up: %w", ctx.Err())
	case <-r.done:
		select {
		case <-r.caughtUp:
			return nil
		default:
		}
		if r.runErr != nil {
			return fmt.Errorf("fleet reader stopped before catching up: %w", r.runErr)
		}
		return errors.New("fleet reader stopped before catching up")
	}
}

// Run consumes every partition of the state and stats topics from the
// oldest offset and keeps following them until ctx ends. On a Kafka error
// it logs, closes its client and reconnects with backoff, resuming where it
// stopped. It returns nil when ctx ends; it may be called once.
func (r *Reader) Run(ctx context.Context) (err error) {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("fleet reader: Run called twice")
	}
	defer func() {
		r.runErr = err
		close(r.done)
	}()
	r.startedAt = time.Now()
	backoff := r.backoffMin
	for {
		progressed, serr := r.session(ctx)
		if r.dirty {
			r.publish()
		}
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = r.backoffMin
		}
		r.log.Warn("kafka session ended, reconnecting", "brokers", r.opts.Brokers, "err", serr, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, r.backoffMax)
	}
}

// session runs one Kafka client until an error or the end of ctx. It
// reports whether it read anything.
func (r *Reader) session(ctx context.Context) (progressed bool, err error) {
	client, err := sarama.NewClient(r.opts.Brokers, r.cfg)
	if err != nil {
		return false, fmt.Errorf("connect to kafka %v: %w", r.opts.Brokers, err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return false, fmt.Errorf("create consumer: %w", err)
	}
	defer consumer.Close()

	sctx, cancel := context.WithCancel(ctx)
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	failed := make(chan error, 1)
	pcs := make(map[topicPartition]sarama.PartitionConsumer)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		for _, pc := range pcs {
			pc.AsyncClose() // close all at once: each may wait for a fetch
		}
		for _, pc := range pcs {
			for range pc.Errors() { // drain until closed
			}
		}
	}()

	start := func(k topicPartition) error {
		offset, ok := r.next[k]
		if !ok {
			offset = sarama.OffsetOldest
		}
		pc, err := consumer.ConsumePartition(k.topic, k.partition, offset)
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			r.log.Info("offset out of range, rereading partition from the oldest offset", "topic", k.topic, "partition", k.partition, "offset", offset)
			pc, err = consumer.ConsumePartition(k.topic, k.partition, sarama.OffsetOldest)
		}
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", k.topic, k.partition, err)
		}
		pcs[k] = pc
		r.lastActive[k] = time.Now()
		lastErr := r.lastError[k]
		if lastErr == nil {
			lastErr = new(atomic.Int64)
			r.lastError[k] = lastErr
		}
		wg.Go(func() { forward(sctx, k, pc, msgs, failed, lastErr, r.log) })
		return nil
	}
	discover := func() ([]topicPartition, error) {
		if err := client.RefreshMetadata(r.topics...); err != nil {
			return nil, fmt.Errorf("refresh metadata of %v: %w", r.topics, err)
		}
		var all []topicPartition
		for _, topic := range r.topics {
			parts, err := client.Partitions(topic)
			if err != nil {
				return nil, fmt.Errorf("partitions of %s: %w", topic, err)
			}
			if len(parts) == 0 {
				return nil, fmt.Errorf("partitions of %s: topic has none", topic)
			}
			for _, p := range parts {
				all = append(all, topicPartition{topic, p})
			}
		}
		return all, nil
	}

	all, err := discover()
	if err != nil {
		return false, err
	}
	if !r.captured {
		if err := r.capture(client, all); err != nil {
			return false, err
		}
	}
	for _, k := range all {
		if err := start(k); err != nil {
			return false, err
		}
	}
	r.log.Debug("consuming", "topics", r.topics, "partitions", len(all))

	publish := time.NewTicker(r.publishInterval)
	defer publish.Stop()
	refresh := time.NewTicker(r.refreshInterval)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case err := <-failed:
			return progressed, err
		case m := <-msgs:
			r.apply(m)
			progressed = true
		drain:
			for range cap(msgs) {
				select {
				case m := <-msgs:
					r.apply(m)
				default:
					break drain
				}
			}
			r.checkCaughtUp()
		case <-publish.C:
			r.checkIdle()
			if r.dirty {
				r.publish()
			}
		case <-refresh.C:
			all, err := discover()
			if err != nil {
				r.log.Warn("look for new partitions", "err", err)
				continue
			}
			for _, k := range all {
				if _, ok := pcs[k]; ok {
					continue
				}
				r.log.Info("new partition", "topic", k.topic, "partition", k.partition)
				if err := start(k); err != nil {
					return progressed, err
				}
			}
		}
	}
}

// forward copies one partition consumer's messages to msgs and logs its
// errors (at most one line per errorLogInterval) until ctx ends; it reports
// on failed when the consumer stops.
func forward(ctx context.Context, k topicPartition, pc sarama.PartitionConsumer, msgs chan<- *sarama.ConsumerMessage, failed chan<- error, lastErr *atomic.Int64, log *slog.Logger) {
	errs := pc.Errors()
	var logged time.Time
	suppressed := 0
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				select {
				case failed <- fmt.Errorf("consumer of %s/%d stopped", k.topic, k.partition):
				default:
				}
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			now := time.Now()
			lastErr.Store(now.UnixNano())
			if now.Sub(logged) < errorLogInterval {
				suppressed++
				continue
			}
			log.Warn("consume (sarama retries)", "topic", k.topic, "partition", k.partition, "err", e.Err, "suppressed", suppressed)
			logged, suppressed = now, 0
		case <-ctx.Done():
			return
		}
	}
}

// capture records the high-water marks WaitCaughtUp waits for.
func (r *Reader) capture(client sarama.Client, all []topicPartition) error {
	pending := make(map[topicPartition]int64)
	for _, k := range all {
		newest, err := client.GetOffset(k.topic, k.partition, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("newest offset of %s/%d: %w", k.topic, k.partition, err)
		}
		oldest, err := client.GetOffset(k.topic, k.partition, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("oldest offset of %s/%d: %w", k.topic, k.partition, err)
		}
		if newest > oldest && r.next[k] < newest {
			pending[k] = newest
		}
	}
	r.pending, r.captured = pending, true
	r.checkCaughtUp()
	return nil
}

// checkCaughtUp publishes and signals WaitCaughtUp once nothing is pending.
func (r *Reader) checkCaughtUp() {
	if !r.captured || len(r.pending) > 0 {
		return
	}
	select {
	case <-r.caughtUp:
		return
	default:
	}
	r.publish()
	close(r.caughtUp)
	r.log.Info("caught up", "sites", r.tree.Sites(), "devices", r.tree.Rollup().Devices, "took", time.Since(r.startedAt).Round(time.Millisecond))
}

// checkIdle stops waiting for partitions that delivered nothing for
// idleCatchUp.
func (r *Reader) checkIdle() {
	if len(r.pending) == 0 {
		return
	}
	now := time.Now()
	for k, target := range r.pending {
		if e := r.lastError[k]; e != nil && now.Sub(time.Unix(0, e.Load())) < r.idleCatchUp {
			continue // failing, not idle
		}
		if last, ok := r.lastActive[k]; ok && now.Sub(last) >= r.idleCatchUp {
			r.log.Warn("partition idle below its start-up high-water mark, treating it as read", "topic", k.topic, "partition", k.partition, "next", r.next[k], "high_water_mark", target)
			delete(r.pending, k)
		}
	}
	r.checkCaughtUp()
}

// apply folds one record into the tree.
func (r *Reader) apply(m *sarama.ConsumerMessage) {
	k := topicPartition{m.Topic, m.Partition}
	r.next[k] = m.Offset + 1
	r.lastActive[k] = time.Now()
	if target, ok := r.pending[k]; ok && m.Offset+1 >= target {
		delete(r.pending, k)
	}
	if err := r.fold(m); err != nil {
		r.skipped++
		if r.skipped <= 10 || r.skipped%1000 == 0 {
			r.log.Warn("skip record", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "skipped", r.skipped, "err", err)
		}
		return
	}
	r.dirty = true
}

func (r *Reader) fold(m *sarama.ConsumerMessage) error {
	key := string(m.Key)
	switch {
	case m.Topic == r.topics[0] && strings.HasPrefix(key, SiteKeyPrefix):
		id := key[len(SiteKeyPrefix):]
		if m.Value == nil {
			r.tree.RemoveSite(id)
			return nil
		}
		var rec vppv1.StateRecord
		if err := proto.Unmarshal(m.Value, &rec); err != nil {
			return fmt.Errorf("decode state record %q: %w", key, err)
		}
		s := rec.GetSite()
		if s == nil {
			return fmt.Errorf("state record %q: not a site state", key)
		}
		if s.GetSiteId() != id {
			return fmt.Errorf("state record %q: holds site %q", key, s.GetSiteId())
		}
		r.tree.ApplySite(s)
	case m.Topic == r.topics[0] && strings.HasPrefix(key, PartitionKeyPrefix):
		p, err := strconv.ParseInt(key[len(PartitionKeyPrefix):], 10, 32)
		if err != nil {
			return fmt.Errorf("state record %q: bad partition: %w", key, err)
		}
		if m.Value == nil {
			r.tree.RemovePartition(int32(p))
			return nil
		}
		var rec vppv1.StateRecord
		if err := proto.Unmarshal(m.Value, &rec); err != nil {
			return fmt.Errorf("decode state record %q: %w", key, err)
		}
		ps := rec.GetPartition()
		if ps == nil {
			return fmt.Errorf("state record %q: not a partition state", key)
		}
		ps.Partition = int32(p) // the key is authoritative
		r.tree.ApplyPartition(ps)
	case m.Topic == r.topics[1] && strings.HasPrefix(key, IngestKeyPrefix):
		instance := key[len(IngestKeyPrefix):]
		if m.Value == nil {
			r.tree.RemoveIngestStats(instance)
			return nil
		}
		var st vppv1.IngestStats
		if err := proto.Unmarshal(m.Value, &st); err != nil {
			return fmt.Errorf("decode ingest stats %q: %w", key, err)
		}
		st.Instance = instance // the key is authoritative
		r.tree.ApplyIngestStats(&st)
	default:
		return fmt.Errorf("unknown key %q", key)
	}
	return nil
}

// publish stores a new snapshot and wakes Changed waiters.
func (r *Reader) publish() {
	r.snap.Store(r.tree.Snapshot())
	r.dirty = false
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}
