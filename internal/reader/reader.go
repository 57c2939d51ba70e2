// Package reader folds the deployment's state and stats topics into a
// fleet.Tree and publishes immutable fleet.Snapshots of it: the reader
// behind `vpp top`, the HTTP API and `vpp demo`.
//
// Records are read by a follow.Follower (every partition from the oldest
// offset, reconnecting, with honest catch-up). A record keyed s/<site> on
// the state topic is a site state (a tombstone removes the site), p/<n> a
// partition's accounting, and ingest/<instance> on the stats topic an
// ingest instance's accounting. A record that does not decode is skipped
// and counted, never fatal.
package reader

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

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/follow"
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
)

// Option configures a Reader.
type Option func(*follow.Config)

// WithBackoff sets the reconnect backoff (default 250 ms to 10 s).
func WithBackoff(p backoff.Policy) Option {
	return func(c *follow.Config) { c.Backoff = p }
}

// WithFailFast ends Run (and WaitCaughtUp) with the first error that
// retrying will not cure soon (kafka.Persistent: Kafka unreachable, a
// topic missing, access refused) instead of retrying: for a reader that
// must answer at once, like vpp top --once. By default the reader retries
// and its snapshots' Load says why it cannot read.
func WithFailFast() Option {
	return func(c *follow.Config) { c.Fatal = kafka.Persistent }
}

// Reader folds the compacted state topic (site and partition states) and
// the stats topic (ingest accounting) into a Tree and publishes immutable
// Snapshots of it. One goroutine (Run) folds; any number of goroutines read
// Snapshot concurrently.
type Reader struct {
	log        *slog.Logger
	stateTopic string
	statsTopic string
	follower   *follow.Follower

	snap    atomic.Pointer[fleet.Snapshot]
	mu      sync.Mutex
	changed chan struct{}

	// Owned by the Run goroutine.
	tree      *fleet.Tree
	dirty     bool
	load      fleet.Load // of the latest published snapshot
	skipped   uint64
	startedAt time.Time
}

// New returns a reader of the deployment's state and stats topics. It
// does not connect: Run does, and keeps reconnecting.
func New(opts kafka.Options, logger *slog.Logger, options ...Option) (*Reader, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("fleet reader: no kafka brokers")
	}
	if _, err := opts.SaramaConfig(); err != nil {
		return nil, fmt.Errorf("fleet reader: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	t := opts.Topics()
	r := &Reader{
		log:        logger.With("component", "fleet-reader"),
		stateTopic: t.State(),
		statsTopic: t.Stats(),
		changed:    make(chan struct{}),
		tree:       fleet.NewTree(),
		startedAt:  time.Now(),
	}
	cfg := follow.Config{
		Kafka:        opts,
		Topics:       []string{r.stateTopic, r.statsTopic},
		Apply:        r.apply,
		Tick:         r.tick,
		CaughtUp:     r.caughtUp,
		Name:         "fleet reader",
		Logger:       r.log,
		TickInterval: DefaultPublishInterval,
	}
	for _, o := range options {
		o(&cfg)
	}
	r.follower = follow.New(cfg)
	r.load = loadOf(r.follower.Progress())
	s := r.tree.Snapshot()
	s.Load = r.load
	r.snap.Store(s)
	return r, nil
}

// Snapshot returns the latest published snapshot; never nil. Before the
// reader caught up it is incomplete, and its Load says so (Loading, with
// the progress, and why the reader cannot read if it cannot).
func (r *Reader) Snapshot() *fleet.Snapshot { return r.snap.Load() }

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
	return r.follower.WaitCaughtUp(ctx)
}

// Run consumes every partition of the state and stats topics from the
// oldest offset and keeps following them until ctx ends. On a Kafka error
// it logs, closes its client and reconnects with backoff, resuming where it
// stopped. It returns nil when ctx ends; it may be called once.
func (r *Reader) Run(ctx context.Context) error {
	return r.follower.Run(ctx)
}

// Progress is how far the reader is with loading the fleet.
func (r *Reader) Progress() follow.Progress { return r.follower.Progress() }

// loadOf is the snapshot form of a follower's progress.
func loadOf(p follow.Progress) fleet.Load {
	l := fleet.Load{
		Loading:    !p.CaughtUp,
		Partitions: p.Partitions,
		Done:       p.Done,
		Records:    p.Records,
		Read:       p.Read,
		Percent:    p.Percent(),
	}
	if p.Err != nil {
		l.Err = p.Err.Error()
	}
	return l
}

// tick publishes what changed since the last snapshot: the tree, or how
// far loading is.
func (r *Reader) tick() {
	if r.dirty || loadOf(r.follower.Progress()) != r.load {
		r.publish()
	}
}

// caughtUp publishes the complete snapshot before WaitCaughtUp returns.
func (r *Reader) caughtUp() {
	r.publish()
	r.log.Info("caught up", "sites", r.tree.Sites(), "devices", r.tree.Rollup().Devices, "took", time.Since(r.startedAt).Round(time.Millisecond))
}

// apply folds one record into the tree.
func (r *Reader) apply(m follow.Record) {
	if err := r.fold(m); err != nil {
		r.skipped++
		if r.skipped <= 10 || r.skipped%1000 == 0 {
			r.log.Warn("skip record", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "skipped", r.skipped, "err", err)
		}
		return
	}
	r.dirty = true
}

func (r *Reader) fold(m follow.Record) error {
	key := string(m.Key)
	switch {
	case m.Topic == r.stateTopic && strings.HasPrefix(key, SiteKeyPrefix):
		id := key[len(SiteKeyPrefix):]
		if m.Value == nil {
			r.tree.RemoveSite(id)
			return nil
		}
		if err := r.tree.ApplySiteRecord(id, m.Value); err != nil {
			return fmt.Errorf("state record %q: %w", key, err)
		}
	case m.Topic == r.stateTopic && strings.HasPrefix(key, PartitionKeyPrefix):
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
	case m.Topic == r.statsTopic && strings.HasPrefix(key, IngestKeyPrefix):
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
	s := r.tree.Snapshot()
	r.load = loadOf(r.follower.Progress())
	s.Load = r.load
	r.snap.Store(s)
	r.dirty = false
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Ready is the reader's readiness check (api.ReadyCheck): ready once it
// caught up, so that its snapshot is complete; until then the reason says
// how far loading is, or why the reader cannot read.
func (r *Reader) Ready() (ok bool, reason string) {
	if r.follower.CaughtUpNow() {
		return true, ""
	}
	return false, "fleet reader " + loadOf(r.follower.Progress()).Text()
}
