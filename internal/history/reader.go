package history

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
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Reader defaults.
const (
	// DefaultWindow is how far back a Reader backfills and how many seconds
	// it keeps.
	DefaultWindow = 15 * time.Minute
	// idleCatchUp is how long the reader waits for records below its
	// start-up high-water mark before it treats them as read.
	idleCatchUp     = 5 * time.Second
	tickInterval    = 250 * time.Millisecond
	drainBatch      = 64
	backoffMin      = 250 * time.Millisecond
	backoffMax      = 10 * time.Second
	skipLogInterval = time.Minute
)

// Option configures a Reader.
type Option func(*Reader)

// WithClock makes the Reader use now instead of time.Now, for tests.
func WithClock(now func() time.Time) Option {
	return func(r *Reader) {
		if now != nil {
			r.now = now
		}
	}
}

// Reader folds the history topic into per-second series of the fleet, its
// regions and substations, and the pipeline: on start it reads from
// now − window (backfill), then follows the topic. One goroutine (Run)
// folds; any number of goroutines call Series concurrently.
//
// Memory: 9 float32 series of window seconds per node (fleet, regions,
// substations), 36 B per node-second: 10 regions × 100 substations
// (1,011 nodes) × 900 s is 32.8 MB, plus the latest sample of every
// partition (about 100 B per substation and partition).
type Reader struct {
	opts   kafka.Options
	topic  string
	window time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu sync.RWMutex
	f  *fold

	started  atomic.Bool
	caughtUp chan struct{}
	done     chan struct{}

	// Owned by the Run goroutine.
	next       int64 // next offset to read; < 0 until positioned
	target     int64 // start-up high-water mark
	isCaughtUp bool
	lastActive time.Time
	skipped    uint64
	skipLogged time.Time
}

// NewReader returns a reader of the deployment's history topic that keeps
// window (default DefaultWindow when <= 0) of per-second history. It does
// not connect: Run does. logger nil means slog.Default().
func NewReader(opts kafka.Options, window time.Duration, logger *slog.Logger, options ...Option) *Reader {
	if window <= 0 {
		window = DefaultWindow
	}
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reader{
		opts:     opts,
		topic:    opts.Topics().History(),
		window:   window,
		log:      logger.With("component", "history-reader"),
		now:      time.Now,
		caughtUp: make(chan struct{}),
		done:     make(chan struct{}),
		next:     -1,
	}
	for _, o := range options {
		o(r)
	}
	r.f = newFold(r.seconds(), r.startSec())
	return r
}

// seconds is the window in whole seconds.
func (r *Reader) seconds() int64 { return int64(math.Ceil(r.window.Seconds())) }

// startSec is the first second of a backfill starting now.
func (r *Reader) startSec() int64 { return r.now().Add(-r.window).Unix() }

// Series returns the last n per-second values of metric m of the fleet, a
// region or a substation (pipeline metrics: the fleet only), oldest first,
// ending at the last finalized second (about Grace behind now). Unknown
// seconds, nodes and metrics are NaN. It allocates only the result.
func (r *Reader) Series(kind fleet.Kind, id string, m Metric, n int) []float64 {
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	r.mu.RLock()
	r.f.series(kind, id, m, out)
	r.mu.RUnlock()
	return out
}

// Latest returns the last finalized second, the one Series end at; ok is
// false before any.
func (r *Reader) Latest() (t time.Time, ok bool) {
	r.mu.RLock()
	end, ok := r.f.end()
	r.mu.RUnlock()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(end, 0).UTC(), true
}

// WaitCaughtUp blocks until the backfill read the topic up to its high-water
// mark at start, or until ctx ends or Run returns.
func (r *Reader) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-r.caughtUp:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for history backfill: %w", ctx.Err())
	case <-r.done:
		select {
		case <-r.caughtUp:
			return nil
		default:
		}
		return errors.New("history reader stopped before its backfill completed")
	}
}

// Run backfills from now − window and follows the history topic until ctx
// ends. On a Kafka error it logs, reconnects with backoff and resumes where
// it stopped. It returns nil when ctx ends; it may be called once.
func (r *Reader) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("history reader: Run called twice")
	}
	defer close(r.done)
	backoff := backoffMin
	for {
		progressed, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = backoffMin
		}
		r.log.Warn("kafka session ended, reconnecting", "topic", r.topic, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// config is the sarama configuration of the reader.
func (r *Reader) config() (*sarama.Config, error) {
	cfg, err := r.opts.SaramaConfig()
	if err != nil {
		return nil, fmt.Errorf("history reader: %w", err)
	}
	cfg.Consumer.Return.Errors = true
	cfg.Metadata.AllowAutoTopicCreation = false
	return cfg, nil
}

// session runs one Kafka client until an error or the end of ctx and
// reports whether it read anything.
func (r *Reader) session(ctx context.Context) (progressed bool, err error) {
	cfg, err := r.config()
	if err != nil {
		return false, err
	}
	client, err := sarama.NewClient(r.opts.Brokers, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to kafka %v: %w", r.opts.Brokers, err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return false, fmt.Errorf("history consumer: %w", err)
	}
	defer consumer.Close()

	start, err := r.position(client)
	if err != nil {
		return false, err
	}
	pc, err := consumer.ConsumePartition(r.topic, 0, start)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		pc, err = consumer.ConsumePartition(r.topic, 0, sarama.OffsetOldest)
	}
	if err != nil {
		return false, fmt.Errorf("consume %s/0 from %d: %w", r.topic, start, err)
	}
	defer func() {
		if cerr := pc.Close(); cerr != nil && ctx.Err() == nil {
			r.log.Debug("close history consumer", "err", cerr)
		}
	}()
	r.lastActive = r.now()
	r.log.Debug("reading history", "topic", r.topic, "from", start, "high_water_mark", r.target)

	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	batch := make([]*vppv1.HistoryRecord, 0, drainBatch)
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case perr, ok := <-pc.Errors():
			if !ok {
				return progressed, fmt.Errorf("consumer of %s/0 stopped", r.topic)
			}
			r.log.Debug("consume history (sarama retries)", "err", perr.Err)
		case m, ok := <-pc.Messages():
			if !ok {
				return progressed, fmt.Errorf("consumer of %s/0 stopped", r.topic)
			}
			progressed = true
			// Decode outside the lock; fold a small batch under it, so
			// that Series never waits long, even during a backfill.
			batch = append(batch[:0], r.decode(m))
		drain:
			for len(batch) < drainBatch {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						break drain
					}
					batch = append(batch, r.decode(m))
				default:
					break drain
				}
			}
			r.mu.Lock()
			for _, rec := range batch {
				if rec != nil {
					r.f.addRecord(rec)
				}
			}
			r.advanceLocked()
			r.mu.Unlock()
			clear(batch)
		case <-tick.C:
			if !r.isCaughtUp && r.now().Sub(r.lastActive) >= idleCatchUp {
				r.log.Warn("history topic idle below its start-up high-water mark, treating it as read", "next", r.next, "high_water_mark", r.target)
				r.markCaughtUp()
			}
			r.mu.Lock()
			r.advanceLocked()
			r.mu.Unlock()
		}
	}
}

// position returns the offset to read from: on the first session the first
// record at or after now − window, later where the last session stopped.
// It also records the high-water mark the backfill waits for.
func (r *Reader) position(client sarama.Client) (int64, error) {
	oldest, err := client.GetOffset(r.topic, 0, sarama.OffsetOldest)
	if err != nil {
		return 0, fmt.Errorf("oldest offset of %s/0: %w", r.topic, err)
	}
	newest, err := client.GetOffset(r.topic, 0, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("newest offset of %s/0: %w", r.topic, err)
	}
	start := r.next
	if start < 0 {
		startTime := r.now().Add(-r.window)
		off, err := client.GetOffset(r.topic, 0, startTime.UnixMilli())
		switch {
		case err != nil:
			r.log.Warn("find history offset by time, reading from the oldest", "err", err)
			off = oldest
		case off < 0: // no record that recent
			off = newest
		}
		start = off
		r.mu.Lock()
		r.f.restart(startTime.Unix())
		r.mu.Unlock()
	}
	start = min(max(start, oldest), newest)
	if !r.isCaughtUp {
		r.target = newest
		if start >= newest {
			r.markCaughtUp()
		}
	}
	return start, nil
}

// decode decodes one record and tracks the read position; nil for a record
// that does not decode (logged, at most once per skipLogInterval).
func (r *Reader) decode(m *sarama.ConsumerMessage) *vppv1.HistoryRecord {
	r.next = m.Offset + 1
	r.lastActive = r.now()
	if !r.isCaughtUp && r.next >= r.target {
		r.markCaughtUp()
	}
	rec := &vppv1.HistoryRecord{}
	err := proto.Unmarshal(m.Value, rec)
	if err == nil && rec.GetBody() == nil {
		err = errors.New("empty history record")
	}
	if err == nil {
		return rec
	}
	r.skipped++
	if now := r.now(); now.Sub(r.skipLogged) >= skipLogInterval {
		r.log.Warn("skip history record", "offset", m.Offset, "key", string(m.Key), "skipped", r.skipped, "err", err)
		r.skipLogged = now
	}
	return nil
}

// advanceLocked finalizes the seconds the watermark passed: while
// backfilling, the newest sample time (never beyond now) minus Grace; once
// caught up, the clock minus Grace, so seconds advance (as NaN) even when
// no samples come. The caller holds mu.
func (r *Reader) advanceLocked() {
	now := r.now().UnixMilli()
	wm := min(r.f.maxTs, now)
	if r.isCaughtUp {
		wm = now
	}
	if wm > 0 {
		r.f.advance(wm - graceMs)
	}
}

func (r *Reader) markCaughtUp() {
	if r.isCaughtUp {
		return
	}
	r.isCaughtUp = true
	close(r.caughtUp)
	r.log.Info("history backfilled", "topic", r.topic, "next", r.next)
}
