package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/hist"
	"github.com/vppctl/vpp/internal/kafka"
)

// Publisher is the seam to Kafka.
type Publisher interface {
	// Publish hands m to Kafka asynchronously. It may block while the
	// producer is saturated, until ctx ends (then it returns ctx's error and
	// done is never called). Otherwise done is called exactly once (from
	// any goroutine, possibly before Publish returns; it must not block),
	// with nil when Kafka acknowledged the record (acks
	// from all in-sync replicas) or with the error that made it fail. m and
	// its slices must not be modified until done is called.
	Publish(ctx context.Context, m *Message, done func(error)) error
	// Close flushes what was handed to Publish (calling every pending done)
	// and releases the producer. Publish must not be called after Close.
	Close() error
}

// SaramaPublisher is a Publisher on a sarama AsyncProducer configured by
// kafka.Options.ProducerConfig: idempotent, WaitForAll, LZ4, batching. It
// always drains both Successes and Errors; every message carries its done
// callback as Metadata.
type SaramaPublisher struct {
	producer sarama.AsyncProducer
	log      *slog.Logger
	wg       sync.WaitGroup
	once     sync.Once

	latency hist.Histogram // Publish → Kafka's verdict
	errors  atomic.Uint64  // records Kafka failed (each retried by the buffer)
}

// NewSaramaPublisher makes sure the deployment's topics exist (retrying
// until Kafka answers or ctx ends) and starts an async producer.
func NewSaramaPublisher(ctx context.Context, opts kafka.Options) (*SaramaPublisher, error) {
	return newSaramaPublisher(ctx, opts, slog.Default())
}

func newSaramaPublisher(ctx context.Context, opts kafka.Options, log *slog.Logger) (*SaramaPublisher, error) {
	log = log.With("component", "producer")
	log.Info("connecting to kafka", "brokers", opts.Brokers, "prefix", opts.Prefix)
	if err := kafka.EnsureTopics(ctx, opts); err != nil {
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	cfg, err := opts.ProducerConfig()
	if err != nil {
		return nil, fmt.Errorf("producer config: %w", err)
	}
	var p sarama.AsyncProducer
	for {
		p, err = sarama.NewAsyncProducer(opts.Brokers, cfg)
		if err == nil {
			break
		}
		log.Warn("kafka producer not ready, retrying", "brokers", opts.Brokers, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start producer: %w", errors.Join(err, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
	sp := &SaramaPublisher{producer: p, log: log}
	sp.wg.Add(2)
	go func() {
		defer sp.wg.Done()
		for m := range p.Successes() {
			if done, ok := m.Metadata.(func(error)); ok && done != nil {
				done(nil)
			}
		}
	}()
	go func() {
		defer sp.wg.Done()
		for pe := range p.Errors() {
			if done, ok := pe.Msg.Metadata.(func(error)); ok && done != nil {
				done(fmt.Errorf("produce to %s: %w", pe.Msg.Topic, pe.Err))
			}
		}
	}()
	log.Info("kafka producer started", "brokers", opts.Brokers)
	return sp, nil
}

// Publish implements Publisher.
func (p *SaramaPublisher) Publish(ctx context.Context, m *Message, done func(error)) error {
	start := time.Now()
	pm := &sarama.ProducerMessage{
		Topic: m.Topic,
		Value: sarama.ByteEncoder(m.Value),
		Metadata: func(err error) {
			p.latency.Observe(time.Since(start))
			if err != nil {
				p.errors.Add(1)
			}
			if done != nil {
				done(err)
			}
		},
	}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	if len(m.Headers) > 0 {
		pm.Headers = make([]sarama.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			pm.Headers[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
		}
	}
	select {
	case p.producer.Input() <- pm:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish: %w", ctx.Err())
	}
}

// ProducerStats returns the produce latency (from Publish to Kafka's
// acknowledgement or error) and the number of failed produce attempts.
func (p *SaramaPublisher) ProducerStats() (hist.Snapshot, uint64) {
	return p.latency.Snapshot(), p.errors.Load()
}

// Close implements Publisher: it flushes in-flight messages (their done
// callbacks run) and waits for the producer to stop.
func (p *SaramaPublisher) Close() error {
	p.once.Do(func() {
		p.producer.AsyncClose()
		p.wg.Wait()
	})
	return nil
}
