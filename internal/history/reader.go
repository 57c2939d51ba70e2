package history

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/follow"
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
	topic  string
	window time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu sync.RWMutex
	f  *fold

	follower *follow.Follower

	// Owned by the Run goroutine.
	batch      []*vppv1.HistoryRecord
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
		topic:  opts.Topics().History(),
		window: window,
		log:    logger.With("component", "history-reader"),
		now:    time.Now,
		batch:  make([]*vppv1.HistoryRecord, 0, drainBatch),
	}
	for _, o := range options {
		o(r)
	}
	r.f = newFold(r.seconds(), r.startSec())
	r.follower = follow.New(follow.Config{
		Kafka:        opts,
		Topics:       []string{r.topic},
		From:         r.from,
		Apply:        r.decode,
		Flush:        r.flush,
		Tick:         r.tick,
		CaughtUp:     r.caughtUp,
		Name:         "history reader",
		Logger:       r.log,
		Batch:        drainBatch,
		TickInterval: tickInterval,
		IdleCatchUp:  idleCatchUp,
	})
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
	return r.follower.WaitCaughtUp(ctx)
}

// Run backfills from now − window and follows the history topic until ctx
// ends. On a Kafka error it logs, reconnects with backoff and resumes where
// it stopped. It returns nil when ctx ends; it may be called once.
func (r *Reader) Run(ctx context.Context) error {
	return r.follower.Run(ctx)
}

// from is the start of the backfill: it restarts the fold at now − window.
func (r *Reader) from() time.Time {
	startTime := r.now().Add(-r.window)
	r.mu.Lock()
	r.f.restart(startTime.Unix())
	r.mu.Unlock()
	r.log.Debug("reading history", "topic", r.topic, "from", startTime)
	return startTime
}

// decode decodes one record outside the lock into the batch that flush
// folds; a record that does not decode is skipped (logged, at most once
// per skipLogInterval).
func (r *Reader) decode(m follow.Record) {
	rec := &vppv1.HistoryRecord{}
	err := proto.Unmarshal(m.Value, rec)
	if err == nil && rec.GetBody() == nil {
		err = errors.New("empty history record")
	}
	if err == nil {
		r.batch = append(r.batch, rec)
		return
	}
	r.skipped++
	if now := r.now(); now.Sub(r.skipLogged) >= skipLogInterval {
		r.log.Warn("skip history record", "offset", m.Offset, "key", string(m.Key), "skipped", r.skipped, "err", err)
		r.skipLogged = now
	}
}

// flush folds a batch under the lock: small batches, so that Series never
// waits long, even during a backfill.
func (r *Reader) flush() {
	r.mu.Lock()
	for _, rec := range r.batch {
		r.f.addRecord(rec)
	}
	r.advanceLocked()
	r.mu.Unlock()
	clear(r.batch)
	r.batch = r.batch[:0]
}

// tick finalizes seconds as the clock advances.
func (r *Reader) tick() {
	r.mu.Lock()
	r.advanceLocked()
	r.mu.Unlock()
}

// advanceLocked finalizes the seconds the watermark passed: while
// backfilling, the newest sample time (never beyond now) minus Grace; once
// caught up, the clock minus Grace, so seconds advance (as NaN) even when
// no samples come. The caller holds mu.
func (r *Reader) advanceLocked() {
	now := r.now().UnixMilli()
	wm := min(r.f.maxTs, now)
	if r.follower.CaughtUpNow() {
		wm = now
	}
	if wm > 0 {
		r.f.advance(wm - graceMs)
	}
}

// caughtUp logs the end of the backfill.
func (r *Reader) caughtUp() {
	r.log.Info("history backfilled", "topic", r.topic)
}
