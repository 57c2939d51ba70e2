package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Writer writes dispatch requests: Store, or a fake in tests.
type Writer interface {
	// Put writes d as the "d/<id>" record and returns once the brokers
	// acknowledged it.
	Put(ctx context.Context, d *vppv1.Dispatch) error
}

// Store writes "d/" records to the dispatch topic with a synchronous,
// idempotent producer (acks from all in-sync replicas). It never creates
// the topic: vpp aggregate does, compacted, with one partition. It
// connects on its first Put (and again on the next Put after a failed
// connect), so that a dashboard or API that starts while Kafka is away
// comes up and says so instead of failing.
type Store struct {
	topic   string
	brokers []string
	cfg     *sarama.Config

	mu       sync.Mutex
	producer sarama.SyncProducer // nil until connected
	closed   bool
}

// NewStore returns a store for the deployment's dispatch topic; it does not
// connect yet.
func NewStore(opts kafka.Options) (*Store, error) {
	cfg, err := opts.ProducerConfig()
	if err != nil {
		return nil, fmt.Errorf("dispatch store: %w", err)
	}
	cfg.Metadata.AllowAutoTopicCreation = false // a wrong, uncompacted topic would lose the audit trail
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	return &Store{topic: opts.Topics().Dispatch(), brokers: opts.Brokers, cfg: cfg}, nil
}

// connected returns the producer, connecting it first if needed.
func (s *Store) connected() (sarama.SyncProducer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("dispatch store closed")
	}
	if s.producer == nil {
		p, err := sarama.NewSyncProducer(s.brokers, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("dispatch store: connect to kafka %v: %w", s.brokers, err)
		}
		s.producer = p
	}
	return s.producer, nil
}

// Put implements Writer. When ctx ends first the record may still be
// written: the producer keeps its retries.
func (s *Store) Put(ctx context.Context, d *vppv1.Dispatch) error {
	if err := ValidID(d.GetId()); err != nil {
		return fmt.Errorf("put dispatch: %w", err)
	}
	b, err := proto.Marshal(&vppv1.DispatchRecord{Body: &vppv1.DispatchRecord_Dispatch{Dispatch: d}})
	if err != nil {
		return fmt.Errorf("encode dispatch %s: %w", d.GetId(), err)
	}
	msg := &sarama.ProducerMessage{
		Topic:     s.topic,
		Partition: 0,
		Key:       sarama.StringEncoder(DispatchKey(d.GetId())),
		Value:     sarama.ByteEncoder(b),
	}
	producer, err := s.connected()
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := producer.SendMessage(msg)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("write dispatch %s to %s: %w", d.GetId(), s.topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("write dispatch %s: %w", d.GetId(), ctx.Err())
	}
}

// Close closes the producer, if it connected.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.producer == nil {
		return nil
	}
	return s.producer.Close()
}

// DefaultWriteTimeout bounds a create or cancel: the write and the wait
// for the view to show it.
const DefaultWriteTimeout = 10 * time.Second

// Service is the operator's side of dispatch: it validates and writes
// requests and cancellations, and reads them back from a View. Create and
// Cancel are serialized, so that two requests with one idempotency key, or
// two cancels, cannot both write; they return once the View shows the
// write (read your writes).
type Service struct {
	// Writer writes the requests (a Store).
	Writer Writer
	// View reads the dispatch topic; it must be running.
	View *View
	// Fleet, when set, is the fleet the node must exist in; nil skips the
	// check (for tests and tools that checked already).
	Fleet fleet.SnapshotSource
	// FleetReady, when set, reports whether Fleet is complete; while it is
	// not, Create answers ErrNotReady.
	FleetReady func() bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives an audit line per create and cancel; nil means
	// slog.Default().
	Logger *slog.Logger

	mu sync.Mutex
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Get returns dispatch id, or an error wrapping ErrNotFound (ErrInvalid
// for a malformed ID, ErrNotReady before the view caught up).
func (s *Service) Get(id string) (Entry, error) {
	if err := ValidID(id); err != nil {
		return Entry{}, invalid("%v", err)
	}
	if !s.View.CaughtUp() {
		return Entry{}, fmt.Errorf("%w: reading the dispatch topic", ErrNotReady)
	}
	e, ok := s.View.Get(id)
	if !ok {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
}

// List returns every dispatch, newest start first (ErrNotReady before the
// view caught up).
func (s *Service) List() ([]Entry, error) {
	if !s.View.CaughtUp() {
		return nil, fmt.Errorf("%w: reading the dispatch topic", ErrNotReady)
	}
	return s.View.List(), nil
}

// Create validates r (Build), checks its node against the fleet, and
// writes it. With an idempotency key whose dispatch exists, it returns the
// existing dispatch and created false when the request is the same, and an
// error wrapping ErrConflict with the difference when it is not. The
// returned headroom is the node's at the time of the check (zero without
// Fleet).
func (s *Service) Create(ctx context.Context, r Request) (e Entry, created bool, h Headroom, err error) {
	now := s.now()
	d, err := Build(r, now)
	if err != nil {
		return Entry{}, false, Headroom{}, err
	}
	if !s.View.CaughtUp() {
		return Entry{}, false, Headroom{}, fmt.Errorf("%w: reading the dispatch topic", ErrNotReady)
	}
	if s.Fleet != nil {
		if s.FleetReady != nil && !s.FleetReady() {
			return Entry{}, false, Headroom{}, fmt.Errorf("%w: loading the fleet", ErrNotReady)
		}
		node, _ := ParseNode(d.GetNode()) // Build checked it
		if h, err = CheckNode(s.Fleet.Snapshot(), node); err != nil {
			return Entry{}, false, Headroom{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.View.Get(d.GetId()); ok {
		if r.IdempotencyKey == "" || old.Dispatch.GetIdempotencyKey() != r.IdempotencyKey {
			return Entry{}, false, h, fmt.Errorf("%w: dispatch %s exists", ErrConflict, d.GetId())
		}
		if same, why := SameRequest(old.Dispatch, r); !same {
			return Entry{}, false, h, fmt.Errorf("%w: idempotency key %q was used for another request (%s)", ErrConflict, r.IdempotencyKey, why)
		}
		return old, false, h, nil
	}
	if err := s.put(ctx, d); err != nil {
		return Entry{}, false, h, err
	}
	s.log().Info("dispatch created", "id", d.GetId(), "node", d.GetNode(), "target_kw", d.GetTargetKw(),
		"start", time.UnixMilli(d.GetStartMs()).UTC(), "end", time.UnixMilli(d.GetEndMs()).UTC(),
		"created_by", d.GetCreatedBy(), "source", d.GetSource())
	e, _ = s.View.Get(d.GetId())
	return e, true, h, nil
}

// Cancel rewrites dispatch id's request with cancelled_ms (now) and
// cancelled_by. Unknown IDs wrap ErrNotFound; a dispatch that ended or was
// cancelled already wraps ErrConflict.
func (s *Service) Cancel(ctx context.Context, id, by string) (Entry, error) {
	if len(by) > MaxAuditBytes {
		return Entry{}, invalid("canceller longer than %d bytes", MaxAuditBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.Get(id)
	if err != nil {
		return Entry{}, err
	}
	now := s.now()
	if e.Ended(now) {
		return Entry{}, fmt.Errorf("%w: dispatch %s is %s, nothing to cancel", ErrConflict, id, StateName(e.State(now)))
	}
	d := proto.CloneOf(e.Dispatch)
	d.CancelledMs, d.CancelledBy = now.UnixMilli(), by
	if err := s.put(ctx, d); err != nil {
		return Entry{}, err
	}
	s.log().Info("dispatch cancelled", "id", id, "cancelled_by", by)
	e, _ = s.View.Get(id)
	return e, nil
}

// put writes d and waits until the view shows it.
func (s *Service) put(ctx context.Context, d *vppv1.Dispatch) error {
	if s.Writer == nil {
		return errors.New("dispatch service: no writer")
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultWriteTimeout)
	defer cancel()
	if err := s.Writer.Put(ctx, d); err != nil {
		return err
	}
	return s.View.WaitFor(ctx, d.GetId(), func(e Entry, ok bool) bool {
		return ok && proto.Equal(e.Dispatch, d)
	})
}

// Open returns a Service over a new Store and View of the deployment's
// dispatch topic: the caller runs View.Run, may set Fleet and FleetReady,
// and calls Close when done.
func Open(opts kafka.Options, logger *slog.Logger) (*Service, error) {
	v, err := NewView(opts, logger)
	if err != nil {
		return nil, err
	}
	st, err := NewStore(opts)
	if err != nil {
		return nil, err
	}
	return &Service{Writer: st, View: v, Logger: logger}, nil
}

// Close closes the Writer when it is an io.Closer (a Store).
func (s *Service) Close() error {
	if c, ok := s.Writer.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
