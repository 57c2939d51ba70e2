// Package follow follows a set of Kafka topics, every partition of each,
// and hands their records to a callback: the part that the readers of
// vpp's state, stats and history topics share.
//
// The contract:
//
//   - Start. On its first connection a Follower reads every partition from
//     the oldest offset, or, with From set, from the first record at or
//     after From() (a partition with no record that recent starts at its
//     end). From is called once per Run.
//   - Delivery. Apply receives every record of a partition once, in offset
//     order, on the goroutine that called Run; a record with a nil Value
//     is a tombstone. Records of different partitions interleave. Apply is
//     called in batches of at most Batch records; Flush follows every
//     batch. Neither may block for long: the follower reads nothing
//     meanwhile.
//   - Reconnects. On a Kafka error the follower logs, closes its client and
//     reconnects with backoff (Backoff, 250 ms to 10 s by default, reset
//     once a session read a record), resuming every partition after the
//     last record it delivered. A resume offset that compaction or
//     retention removed restarts the partition at its oldest offset, so a
//     compacted topic is read again from its start rather than skipped.
//     Partitions that appear later (more partitions on a topic) are found
//     within Refresh and read from their oldest offset.
//   - Catch-up. On its first connection the follower records each
//     partition's high-water mark, the catch-up mark. It is caught up when
//     every partition delivered the record just below its mark, or was
//     empty from its start point. Compaction can remove the records just
//     below a mark (an expired tombstone), and a transaction marker takes
//     an offset that is never delivered, so a partition below its mark
//     also counts as read when it is idle, which the broker says, not the
//     follower's observations (see checkIdle): once it looks quiet (no
//     record of it waits in the follower, its last one was handed over
//     IdleCatchUp ago, three times that from its start when none came yet,
//     and no fetch of it failed in that time), the follower fetches from
//     its leader at the next offset to deliver, and only an answer with no
//     record there below the mark ends the wait. A partition that is slow,
//     or whose check fails, keeps the follower loading, checked again
//     IdleCatchUp later: partial totals are never reported as complete.
//     CaughtUp is called once, before WaitCaughtUp returns and after the
//     Flush of every record below the marks, so that a caller's published
//     state is complete when its waiters wake. Catch-up is never undone by
//     a later reconnect.
//   - Progress. Progress reports the partitions and records caught up of
//     those below the marks, and the error of the latest failed session
//     until a session starts consuming again; it is updated every
//     TickInterval, when a session ends and at catch-up.
//   - Errors. Session errors are explained with the kafka package's types:
//     *kafka.UnreachableError (no broker answered), *kafka.MissingTopicError,
//     *kafka.AuthzError. With Fatal set, Run returns the first session
//     error Fatal accepts instead of retrying (vpp top --once).
//   - Ticks. Tick is called every TickInterval while connected, and once
//     after every session ends.
//
// Apply, Flush, Tick and CaughtUp are all called from the Run goroutine,
// never concurrently. WaitCaughtUp and CaughtUpNow are safe from any
// goroutine.
package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/backoff"
	"github.com/vppctl/vpp/internal/kafka"
)

// Follower defaults.
const (
	// DefaultBatch is the most records handed to Apply between two Flush
	// calls.
	DefaultBatch = 1024
	// DefaultTickInterval is how often Tick is called.
	DefaultTickInterval = 100 * time.Millisecond
	// DefaultRefreshInterval is how often the follower looks for new
	// partitions.
	DefaultRefreshInterval = 10 * time.Second
	// DefaultIdleCatchUp is how long a partition below its catch-up mark
	// may deliver nothing before the follower asks the broker whether any
	// record is left below the mark (and how long between two such
	// checks of a partition).
	DefaultIdleCatchUp = 5 * time.Second

	// DefaultBackoffMin and DefaultBackoffMax bound the reconnect backoff
	// when Config.Backoff is zero.
	DefaultBackoffMin = 250 * time.Millisecond
	DefaultBackoffMax = 10 * time.Second

	errorLogInterval = 10 * time.Second
	// firstFetchWaits is how many IdleCatchUp a partition's consumer that
	// delivered nothing yet must stay quiet to count as idle.
	firstFetchWaits = 3
)

// Record is one Kafka record handed to Apply. The follower does not reuse
// Key and Value after Apply returns.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	// Value is nil for a tombstone.
	Value     []byte
	Timestamp time.Time
}

// Config configures a Follower. Zero durations and sizes take the package
// defaults.
type Config struct {
	// Kafka is where to connect; its Brokers must not be empty.
	Kafka kafka.Options
	// Topics are the topics to follow, every partition of each.
	Topics []string
	// From, when set, gives the start time of the first connection; nil
	// means the oldest offset.
	From func() time.Time
	// Apply receives every record (required).
	Apply func(Record)
	// Flush, when set, is called after every batch of Apply calls.
	Flush func()
	// Tick, when set, is called every TickInterval and after every session.
	Tick func()
	// CaughtUp, when set, is called once when the follower caught up.
	CaughtUp func()
	// Fatal, when set, ends Run with the first session error for which it
	// returns true (kafka.Persistent, for a reader that must answer at
	// once); nil retries every error.
	Fatal func(error) bool
	// Name names the follower in errors ("fleet reader").
	Name string
	// Logger receives the follower's logs; nil means slog.Default().
	Logger *slog.Logger

	// MaxWait bounds how long the broker holds a fetch waiting for records
	// (sarama's Consumer.MaxWaitTime; 0: sarama's default). Short for
	// topics whose records someone waits on.
	MaxWait time.Duration

	Batch           int
	TickInterval    time.Duration
	RefreshInterval time.Duration
	IdleCatchUp     time.Duration
	Backoff         backoff.Policy
}

// Progress is how far a follower is with its catch-up.
type Progress struct {
	// Started is whether the catch-up marks are known (the first session
	// reached the brokers and found every topic).
	Started bool
	// CaughtUp is whether the follower caught up (see the package doc).
	CaughtUp bool
	// Partitions is the number of partitions followed at start; Done how
	// many of them are read up to their catch-up mark.
	Partitions, Done int
	// Records is the number of offsets below the catch-up marks from the
	// start points; Read how many of them were read.
	Records, Read int64
	// Err is why the latest session failed, nil once a session consumes.
	Err error
}

// Percent is the share of the records read, 0 to 100 (100 once caught up).
func (p Progress) Percent() float64 {
	switch {
	case p.CaughtUp:
		return 100
	case p.Records <= 0:
		return 0
	}
	return 100 * float64(p.Read) / float64(p.Records)
}

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int32
}

// Follower follows the topics of its Config; see the package doc.
type Follower struct {
	cfg Config
	log *slog.Logger

	caughtUp chan struct{}
	done     chan struct{}
	isCaught atomic.Bool
	started  atomic.Bool
	// runErr is what Run returned, set before done is closed; lastErr
	// the error that ended the latest Kafka session (nil while none did).
	runErr   error
	lastErr  atomic.Pointer[error]
	progress atomic.Pointer[Progress]

	// Owned by the Run goroutine.
	next       map[topicPartition]int64
	captured   bool
	pending    map[topicPartition]int64
	starts     map[topicPartition]int64 // start offset of each partition with a catch-up mark above it
	marks      map[topicPartition]int64
	partitions int
	sessionErr error
	stats      map[topicPartition]*partStats
	from       *time.Time
}

// partStats is what a partition's forward goroutine tells the Run
// goroutine.
type partStats struct {
	lastError atomic.Int64 // unix ns of the last consume error
	started   atomic.Int64 // unix ns of the start of the partition's consumer
	lastRecv  atomic.Int64 // unix ns of the last record handed to the Run goroutine, 0 for none yet
	holding   atomic.Bool  // a record out of the consumer waits to be handed over
}

// New returns a follower of cfg. It does not connect: Run does.
func New(cfg Config) *Follower {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.IdleCatchUp <= 0 {
		cfg.IdleCatchUp = DefaultIdleCatchUp
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Min: DefaultBackoffMin, Max: DefaultBackoffMax}
	}
	if cfg.Name == "" {
		cfg.Name = "follower"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Follower{
		cfg:      cfg,
		log:      cfg.Logger,
		caughtUp: make(chan struct{}),
		done:     make(chan struct{}),
		next:     make(map[topicPartition]int64),
		starts:   make(map[topicPartition]int64),
		marks:    make(map[topicPartition]int64),
		stats:    make(map[topicPartition]*partStats),
	}
}

// Progress returns how far the follower is with its catch-up; safe from
// any goroutine.
func (f *Follower) Progress() Progress {
	if p := f.progress.Load(); p != nil {
		return *p
	}
	return Progress{}
}

// updateProgress publishes the Run goroutine's view of the catch-up.
func (f *Follower) updateProgress() {
	p := Progress{Started: f.captured, CaughtUp: f.isCaught.Load(), Partitions: f.partitions, Err: f.sessionErr}
	if f.captured {
		p.Done = f.partitions - len(f.pending)
		for k, mark := range f.marks {
			start := f.starts[k]
			p.Records += mark - start
			if _, ok := f.pending[k]; !ok {
				p.Read += mark - start
				continue
			}
			if next, ok := f.next[k]; ok {
				p.Read += min(max(next-start, 0), mark-start)
			}
		}
	}
	f.progress.Store(&p)
}

// CaughtUpNow reports whether the follower has caught up.
func (f *Follower) CaughtUpNow() bool { return f.isCaught.Load() }

// WaitCaughtUp blocks until the follower caught up (see the package doc),
// or until ctx ends or Run returns.
func (f *Follower) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-f.caughtUp:
		return nil
	case <-ctx.Done():
		if last := f.lastErr.Load(); last != nil {
			return fmt.Errorf("wait for %s to catch up: %w (last kafka error: %v)", f.cfg.Name, ctx.Err(), *last)
		}
		if p := f.Progress(); p.Started {
			return fmt.Errorf("wait for %s to catch up: %w, %d/%d partitions read (%.0f %% of %d records)", f.cfg.Name, ctx.Err(), p.Done, p.Partitions, math.Floor(p.Percent()), p.Records)
		}
		return fmt.Errorf("wait for %s to catch up: %w", f.cfg.Name, ctx.Err())
	case <-f.done:
		select {
		case <-f.caughtUp:
			return nil
		default:
		}
		if kafka.Persistent(f.runErr) {
			return f.runErr // names the follower and the cause already
		}
		if f.runErr != nil {
			return fmt.Errorf("%s stopped before catching up: %w", f.cfg.Name, f.runErr)
		}
		return fmt.Errorf("%s stopped before catching up", f.cfg.Name)
	}
}

// config is the sarama configuration of a session.
func (f *Follower) config() (*sarama.Config, error) {
	if len(f.cfg.Kafka.Brokers) == 0 {
		return nil, errors.New("no kafka brokers")
	}
	if len(f.cfg.Topics) == 0 {
		return nil, errors.New("no topics")
	}
	if f.cfg.Apply == nil {
		return nil, errors.New("no Apply")
	}
	cfg, err := f.cfg.Kafka.SaramaConfig()
	if err != nil {
		return nil, err
	}
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Metadata.AllowAutoTopicCreation = false // a follower never creates topics
	if f.cfg.MaxWait > 0 {
		cfg.Consumer.MaxWaitTime = f.cfg.MaxWait
	}
	return cfg, nil
}

// Run follows the topics until ctx ends, reconnecting after errors. It
// returns nil when ctx ends, and an error when called twice or when the
// configuration is unusable.
func (f *Follower) Run(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: Run called twice", f.cfg.Name)
	}
	defer close(f.done)
	scfg, err := f.config()
	if err != nil {
		f.runErr = fmt.Errorf("%s: %w", f.cfg.Name, err)
		return f.runErr
	}
	retry := backoff.Retry{Policy: f.cfg.Backoff}
	for {
		progressed, serr := f.session(ctx, scfg)
		if ctx.Err() != nil {
			if f.cfg.Tick != nil {
				f.cfg.Tick()
			}
			return nil
		}
		if serr != nil {
			f.lastErr.Store(&serr)
			f.sessionErr = serr
		}
		f.updateProgress()
		if f.cfg.Tick != nil {
			f.cfg.Tick()
		}
		if serr != nil && f.cfg.Fatal != nil && f.cfg.Fatal(serr) {
			f.runErr = fmt.Errorf("%s: %w", f.cfg.Name, serr)
			return f.runErr
		}
		if progressed {
			retry.Reset()
		}
		wait := retry.Fail()
		f.log.Warn("kafka session ended, reconnecting", "brokers", f.cfg.Kafka.Brokers, "topics", f.cfg.Topics, "err", serr, "backoff", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// session runs one Kafka client until an error or the end of ctx. It
// reports whether it read anything.
func (f *Follower) session(ctx context.Context, scfg *sarama.Config) (progressed bool, err error) {
	client, err := sarama.NewClient(f.cfg.Kafka.Brokers, scfg)
	if err != nil {
		return false, f.cfg.Kafka.Unreachable(fmt.Errorf("connect to kafka %v: %w", f.cfg.Kafka.Brokers, err))
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return false, fmt.Errorf("create consumer: %w", err)
	}
	defer consumer.Close()

	sctx, cancel := context.WithCancel(ctx)
	msgs := make(chan *sarama.ConsumerMessage, f.cfg.Batch)
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
		offset, ok := f.next[k]
		if !ok {
			offset = sarama.OffsetOldest
		}
		pc, err := consumer.ConsumePartition(k.topic, k.partition, offset)
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			f.log.Info("offset out of range, rereading partition from the oldest offset", "topic", k.topic, "partition", k.partition, "offset", offset)
			pc, err = consumer.ConsumePartition(k.topic, k.partition, sarama.OffsetOldest)
		}
		if err != nil {
			return f.cfg.Kafka.TopicDenied(fmt.Errorf("consume %s/%d: %w", k.topic, k.partition, err), "READ", k.topic)
		}
		pcs[k] = pc
		st := f.stats[k]
		if st == nil {
			st = new(partStats)
			f.stats[k] = st
		}
		st.started.Store(time.Now().UnixNano())
		st.lastRecv.Store(0)
		wg.Go(func() { forward(sctx, k, pc, msgs, failed, st, f.log) })
		return nil
	}
	discover := func() ([]topicPartition, error) {
		var all []topicPartition
		for _, topic := range f.cfg.Topics {
			// One topic at a time, so that an error names its topic.
			if err := client.RefreshMetadata(topic); err != nil {
				return nil, f.topicError(fmt.Errorf("refresh metadata of %s: %w", topic, err), topic)
			}
			parts, err := client.Partitions(topic)
			if err != nil {
				return nil, f.topicError(fmt.Errorf("partitions of %s: %w", topic, err), topic)
			}
			if len(parts) == 0 {
				return nil, &kafka.MissingTopicError{Topic: topic, Err: fmt.Errorf("partitions of %s: topic has none", topic)}
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
	f.sessionErr = nil // reached the brokers and found every topic
	if !f.captured {
		if err := f.capture(client, all); err != nil {
			return false, err
		}
	}
	for _, k := range all {
		if err := start(k); err != nil {
			return false, err
		}
	}
	f.log.Debug("consuming", "topics", f.cfg.Topics, "partitions", len(all))
	f.updateProgress()

	checks := &idleChecks{
		inflight: make(map[topicPartition]bool),
		last:     make(map[topicPartition]time.Time),
		reached:  make(map[topicPartition]int64),
		verdicts: make(chan idleVerdict),
	}
	checks.start = func(k topicPartition, from, mark int64) {
		checks.inflight[k] = true
		// Not in wg: a check cannot be interrupted mid-request, and the
		// session must not wait for it; it ends within a few
		// idleCheckTimeout (its connection, bounded by them, is its own).
		go func() {
			v := verifyIdle(sctx, client, scfg, k, from, mark)
			select {
			case checks.verdicts <- v:
			case <-sctx.Done():
			}
		}()
	}

	tick := time.NewTicker(f.cfg.TickInterval)
	defer tick.Stop()
	refresh := time.NewTicker(f.cfg.RefreshInterval)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case err := <-failed:
			return progressed, err
		case m := <-msgs:
			f.apply(m)
			progressed = true
		drain:
			for range f.cfg.Batch - 1 {
				select {
				case m := <-msgs:
					f.apply(m)
				default:
					break drain
				}
			}
			if f.cfg.Flush != nil {
				f.cfg.Flush()
			}
			f.checkCaughtUp()
		case v := <-checks.verdicts:
			f.idleVerdict(checks, v)
		case <-tick.C:
			f.checkIdle(pcs, len(msgs), checks)
			f.updateProgress()
			if f.cfg.Tick != nil {
				f.cfg.Tick()
			}
		case <-refresh.C:
			all, err := discover()
			if err != nil {
				f.log.Warn("look for new partitions", "err", err)
				continue
			}
			for _, k := range all {
				if _, ok := pcs[k]; ok {
					continue
				}
				f.log.Info("new partition", "topic", k.topic, "partition", k.partition)
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
func forward(ctx context.Context, k topicPartition, pc sarama.PartitionConsumer, msgs chan<- *sarama.ConsumerMessage, failed chan<- error, st *partStats, log *slog.Logger) {
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
			st.holding.Store(true)
			select {
			case msgs <- m:
				st.lastRecv.Store(time.Now().UnixNano())
				st.holding.Store(false)
			case <-ctx.Done():
				st.holding.Store(false)
				return
			}
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			now := time.Now()
			st.lastError.Store(now.UnixNano())
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

// capture positions every partition of the first connection and records
// the catch-up marks.
func (f *Follower) capture(client sarama.Client, all []topicPartition) error {
	if f.cfg.From != nil && f.from == nil {
		t := f.cfg.From()
		f.from = &t
	}
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
		startAt := oldest
		if next, ok := f.next[k]; ok {
			startAt = next
		} else if f.from != nil {
			off, err := client.GetOffset(k.topic, k.partition, f.from.UnixMilli())
			switch {
			case err != nil:
				f.log.Warn("find offset by time, reading from the oldest", "topic", k.topic, "partition", k.partition, "err", err)
				off = oldest
			case off < 0: // no record that recent
				off = newest
			}
			startAt = min(max(off, oldest), newest)
			f.next[k] = startAt
		}
		if startAt < newest {
			pending[k] = newest
			f.starts[k], f.marks[k] = startAt, newest
		}
	}
	f.pending, f.captured, f.partitions = pending, true, len(all)
	f.checkCaughtUp()
	return nil
}

// topicError explains an error about topic: missing or not authorized.
func (f *Follower) topicError(err error, topic string) error {
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return &kafka.MissingTopicError{Topic: topic, Err: err}
	}
	return f.cfg.Kafka.TopicDenied(err, "DESCRIBE", topic)
}

// checkCaughtUp signals catch-up once nothing is pending.
func (f *Follower) checkCaughtUp() {
	if !f.captured || len(f.pending) > 0 || f.isCaught.Load() {
		return
	}
	// CaughtUpNow is true already while CaughtUp runs, so that what the
	// callback folds is folded as complete.
	f.isCaught.Store(true)
	f.updateProgress()
	if f.cfg.CaughtUp != nil {
		f.cfg.CaughtUp()
	}
	close(f.caughtUp)
}

// checkIdle asks the broker about the partitions below their catch-up
// mark that look idle, to stop waiting for those that are idle, not merely
// slow.
//
// Records below a mark can be gone (compaction removed them, an expired
// tombstone; a transaction marker takes an offset but is never delivered),
// and then no more records will come. A partition is just as quiet when
// it is slow: the Run goroutine is busy folding other partitions (at a
// large fleet a partition's records can wait seconds behind the shared
// channel), or sarama's fetch, shared by every partition of a broker,
// takes long. What can be observed locally does not tell the two apart
// (at 1M devices a partition 52k records short of its mark looked idle),
// so it only picks the partitions to ask about, all of which must hold:
//
//   - no record out of the partition's consumer waits to be handed to the
//     Run goroutine, none is buffered in the consumer, none handed over (of
//     any partition) waits to be applied, and the partition's last record
//     was handed over IdleCatchUp ago or more;
//   - no fetch of the partition failed in that time (sarama reports every
//     failed fetch, and retries it): a failing partition is not idle;
//   - a consumer that has delivered nothing yet waits firstFetchWaits
//     times as long from its start: its first fetch carries the most;
//   - no check of it is under way, and its latest one answered "not idle"
//     IdleCatchUp ago or more.
//
// The check (verifyIdle, off the Run goroutine, so that it never stalls
// delivery) fetches from the partition's leader from the next offset to
// deliver. The partition is idle only when the broker holds no record
// there below the mark; a record there, or a failed check, keeps it
// pending, and its idle clock restarts (idleVerdict).
func (f *Follower) checkIdle(pcs map[topicPartition]sarama.PartitionConsumer, queued int, checks *idleChecks) {
	if len(f.pending) == 0 || queued > 0 {
		return // records handed over but not applied yet: nobody is idle
	}
	now := time.Now()
	for k, target := range f.pending {
		pc, st := pcs[k], f.stats[k]
		if pc == nil || st == nil || checks.inflight[k] {
			continue
		}
		if now.Sub(time.Unix(0, st.lastError.Load())) < f.cfg.IdleCatchUp {
			continue // failing, not idle
		}
		if st.holding.Load() || len(pc.Messages()) > 0 {
			continue // records waiting: slow, not idle
		}
		if now.Sub(checks.last[k]) < f.cfg.IdleCatchUp {
			continue // the broker said "not idle" a moment ago
		}
		since, wait := st.lastRecv.Load(), f.cfg.IdleCatchUp
		if since == 0 {
			// Nothing yet from this consumer: its first fetch, from the
			// start point, may be the slow one (a large response).
			since, wait = st.started.Load(), firstFetchWaits*f.cfg.IdleCatchUp
		}
		if now.Sub(time.Unix(0, since)) < wait {
			continue
		}
		from, ok := f.next[k]
		if !ok {
			from = f.starts[k]
		}
		checks.start(k, max(from, checks.reached[k]), target)
	}
}

// idleVerdict acts on the broker's answer about a partition that looked
// idle: an idle one counts as read, any other keeps waiting, its idle
// clock restarted.
func (f *Follower) idleVerdict(checks *idleChecks, v idleVerdict) {
	delete(checks.inflight, v.k)
	if _, ok := f.pending[v.k]; !ok {
		return // reached its mark meanwhile
	}
	if !v.idle {
		checks.last[v.k] = time.Now()
		checks.reached[v.k] = max(checks.reached[v.k], v.reached)
		if v.err != nil {
			f.log.Warn("partition quiet below its catch-up mark, but checking it failed: still waiting", "topic", v.k.topic, "partition", v.k.partition, "next", f.next[v.k], "high_water_mark", v.mark, "err", v.err)
			return
		}
		f.log.Debug("partition quiet below its catch-up mark, but the broker still holds records there: slow, still waiting", "topic", v.k.topic, "partition", v.k.partition, "next", f.next[v.k], "high_water_mark", v.mark, "record", v.found, "checked_to", v.reached)
		return
	}
	// None at or after v.from below the mark, and whatever was delivered
	// since came from there: none is left to deliver.
	f.log.Info("partition idle below its catch-up mark: the broker holds no record left below it, treating it as read", "topic", v.k.topic, "partition", v.k.partition, "next", f.next[v.k], "checked_from", v.from, "high_water_mark", v.mark)
	delete(f.pending, v.k)
	f.checkCaughtUp()
	f.updateProgress()
}

// apply records the position of m and hands it to Apply.
func (f *Follower) apply(m *sarama.ConsumerMessage) {
	k := topicPartition{m.Topic, m.Partition}
	f.next[k] = m.Offset + 1
	if target, ok := f.pending[k]; ok && m.Offset+1 >= target {
		delete(f.pending, k)
	}
	f.cfg.Apply(Record{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Timestamp: m.Timestamp,
	})
}
