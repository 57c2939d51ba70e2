package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/buffer"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/latency"
)

// Publisher is the seam to Kafka.
type Publisher interface {
	// Publish hands m to Kafka asynchronously. It may block while the
	// producer is saturated, until ctx ends (then it returns ctx's error and
	// v is never called). Otherwise v.Published is called exactly once
	// (from any goroutine, possibly before Publish returns; it must not
	// block), with nil when Kafka acknowledged the record (acks from all
	// in-sync replicas) or with the error that made it fail. m and its
	// slices must not be modified until then.
	Publish(ctx context.Context, m *buffer.Message, v Verdict) error
	// Close flushes what was handed to Publish (calling every pending
	// Verdict) and releases the producer. Publish must not be called after
	// Close.
	Close() error
}

// Prober is implemented by a Publisher that can check, without
// publishing, that Kafka answers. A Server probes its publisher every
// probeInterval and is not Ready while the latest probe failed, so an idle
// server sees Kafka go away as a busy one does.
type Prober interface {
	// Probe returns nil once Kafka answered a cheap request (the
	// telemetry topic's metadata), or the error that kept it from
	// answering before ctx ended. It may be called from any goroutine.
	Probe(ctx context.Context) error
}

// Verdict receives Kafka's verdict on a message handed to Publish. It is
// an interface rather than a function so that the server's records can
// take their verdicts themselves: a closure per record would be an
// allocation per reading.
type Verdict interface {
	Published(err error)
}

// VerdictFunc is a function used as a Verdict.
type VerdictFunc func(err error)

// Published implements Verdict.
func (f VerdictFunc) Published(err error) { f(err) }

// SaramaPublisher is a Publisher on a sarama AsyncProducer configured by
// kafka.Options.ProducerConfig: idempotent, WaitForAll, LZ4, batching. It
// always drains both Successes and Errors; every message carries its
// *pending (with the Verdict) as Metadata.
type SaramaPublisher struct {
	producer sarama.AsyncProducer
	log      *slog.Logger
	wg       sync.WaitGroup
	once     sync.Once
	// free holds *pending whose message sarama gave back, for reuse.
	free sync.Pool

	latency latency.Histogram // Publish → Kafka's verdict
	// epoch is the monotonic origin of pending.start: a reading of the
	// monotonic clock alone (time.Since) costs about half of time.Now,
	// which reads the wall clock too.
	epoch  time.Time
	errors atomic.Uint64 // records Kafka failed (each retried by the buffer)

	// probeMu guards probing (the running probe, if any) and probeClosed
	// (which ends the probes). probeClient is the client the probes ask,
	// made on the first probe and again after a failed one; it belongs to
	// the running probe, and to Close when none runs.
	probeMu     sync.Mutex
	probing     *probeCall
	probeClosed bool
	probeOpts   kafka.Options
	probeClient sarama.Client
}

// pending is one message handed to sarama, with what its verdict needs.
// Sarama is done with a message once it returns it on Successes or Errors,
// so the whole pending is reused then: publishing allocates nothing of its
// own in steady state.
type pending struct {
	msg      sarama.ProducerMessage
	key, val bytesEncoder
	headers  []sarama.RecordHeader
	start    time.Duration // since the publisher's epoch
	verdict  Verdict
}

// bytesEncoder is sarama.ByteEncoder behind a pointer, so that setting a
// message's Key or Value to one does not allocate.
type bytesEncoder struct{ b []byte }

// Encode implements sarama.Encoder.
func (e *bytesEncoder) Encode() ([]byte, error) { return e.b, nil }

// Length implements sarama.Encoder.
func (e *bytesEncoder) Length() int { return len(e.b) }

// get returns a pending for m and v, its message ready to send.
func (p *SaramaPublisher) get(m *buffer.Message, v Verdict) *pending {
	pd, _ := p.free.Get().(*pending)
	if pd == nil {
		pd = &pending{}
	}
	pd.msg = sarama.ProducerMessage{Topic: m.Topic, Metadata: pd}
	pd.val.b = m.Value
	pd.msg.Value = &pd.val
	if m.Key != nil {
		pd.key.b = m.Key
		pd.msg.Key = &pd.key
	}
	if len(m.Headers) > 0 {
		hs := pd.headers[:0]
		for _, h := range m.Headers {
			hs = append(hs, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		pd.headers = hs
		pd.msg.Headers = hs
	}
	pd.start, pd.verdict = p.now(), v
	return pd
}

// now is the monotonic time since the publisher's epoch.
func (p *SaramaPublisher) now() time.Duration { return time.Since(p.epoch) }

// finish reports Kafka's verdict, received at now, on pd's message and
// recycles pd.
func (p *SaramaPublisher) finish(pd *pending, err error, now time.Duration) {
	p.latency.Observe(now - pd.start)
	if err != nil {
		p.errors.Add(1)
	}
	v := pd.verdict
	p.put(pd)
	if v != nil {
		v.Published(err)
	}
}

// put recycles pd, dropping its references to the caller's bytes.
func (p *SaramaPublisher) put(pd *pending) {
	clear(pd.headers)
	*pd = pending{headers: pd.headers[:0]}
	p.free.Put(pd)
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
		var denied *kafka.AuthzError
		if err = opts.ProducerDenied(err); errors.As(err, &denied) {
			return nil, fmt.Errorf("start producer: %w", err)
		}
		log.Warn("kafka producer not ready, retrying", "brokers", opts.Brokers, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start producer: %w", errors.Join(err, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
	sp := startPublisherWith(p, opts, log)
	log.Info("kafka producer started", "brokers", opts.Brokers)
	return sp, nil
}

// denied explains a produce error that lacks an ACL (see
// kafka.Options.TopicDenied); other errors come back unchanged.
func (p *SaramaPublisher) denied(err error, topic string) error {
	if errors.Is(err, sarama.ErrTopicAuthorizationFailed) || errors.Is(err, sarama.ErrClusterAuthorizationFailed) {
		return p.probeOpts.TopicDenied(err, "WRITE", topic)
	}
	return err
}

// startPublisher returns a SaramaPublisher on p, draining its Successes and
// Errors.
func startPublisher(p sarama.AsyncProducer, log *slog.Logger) *SaramaPublisher {
	return startPublisherWith(p, kafka.Options{}, log)
}

// startPublisherWith is startPublisher for the Kafka options opts, which
// the probes and the explanations of refused writes use.
func startPublisherWith(p sarama.AsyncProducer, opts kafka.Options, log *slog.Logger) *SaramaPublisher {
	sp := &SaramaPublisher{producer: p, log: log, epoch: time.Now(), probeOpts: opts}
	sp.wg.Add(2)
	go func() {
		defer sp.wg.Done()
		var clk verdictClock
		for m := range p.Successes() {
			if pd, ok := m.Metadata.(*pending); ok {
				sp.finish(pd, nil, clk.now(sp))
			}
			clk.next(len(p.Successes()))
		}
	}()
	go func() {
		defer sp.wg.Done()
		var clk verdictClock
		for pe := range p.Errors() {
			if pd, ok := pe.Msg.Metadata.(*pending); ok {
				sp.finish(pd, fmt.Errorf("produce to %s: %w", pe.Msg.Topic, sp.denied(pe.Err, pe.Msg.Topic)), clk.now(sp))
			}
			clk.next(len(p.Errors()))
		}
	}()
	return sp
}

// maxClockReuse bounds the verdicts timed by one clock reading.
const maxClockReuse = 32

// verdictClock times the verdicts a drain loop receives. Sarama returns
// the messages of a produce response together, so a verdict that was
// already waiting in the channel when the previous one was finished
// arrived no later than that: it takes the previous reading, off by at
// most the time to finish maxClockReuse verdicts (microseconds, against
// produce latencies of milliseconds), instead of a clock reading of its
// own.
type verdictClock struct {
	t     time.Duration
	valid bool
	uses  int
}

// now returns the time of the current verdict.
func (c *verdictClock) now(p *SaramaPublisher) time.Duration {
	if !c.valid {
		c.t, c.valid, c.uses = p.now(), true, 0
	}
	c.uses++
	return c.t
}

// next is called after a verdict with the messages waiting in the
// channel: none means the next one has yet to arrive, and needs its own
// reading.
func (c *verdictClock) next(waiting int) {
	c.valid = waiting > 0 && c.uses < maxClockReuse
}

// Publish implements Publisher.
func (p *SaramaPublisher) Publish(ctx context.Context, m *buffer.Message, v Verdict) error {
	pd := p.get(m, v)
	select {
	case p.producer.Input() <- &pd.msg:
		return nil
	case <-ctx.Done():
		p.put(pd) // sarama never saw it
		return fmt.Errorf("publish: %w", ctx.Err())
	}
}

// ProducerStats returns the produce latency (from Publish to Kafka's
// acknowledgement or error) and the number of failed produce attempts.
func (p *SaramaPublisher) ProducerStats() (latency.Snapshot, uint64) {
	return p.latency.Snapshot(), p.errors.Load()
}

// probeTimeout bounds each network step of a probe (dial, request,
// response): a probe of a Kafka that went away ends within a few of them.
const probeTimeout = time.Second

// Probe implements Prober: it asks Kafka for the telemetry topic's
// metadata on a client of its own with short timeouts (the producer's are
// made for patience, not for noticing). A failed probe closes the client,
// so the next one connects afresh. At most one probe runs at a time: a
// call while one is running waits for that one's result (or ctx), so a
// cluster that hangs longer than the callers wait does not pile probes up.
func (p *SaramaPublisher) Probe(ctx context.Context) error {
	p.probeMu.Lock()
	if p.probeClosed {
		p.probeMu.Unlock()
		return errors.New("kafka probe: publisher closed")
	}
	c := p.probing
	if c == nil {
		c = &probeCall{done: make(chan struct{})}
		p.probing = c
		go p.runProbe(c)
	}
	p.probeMu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("kafka probe: %w", ctx.Err())
	}
}

// probeCall is one running probe and, once done is closed, its result.
type probeCall struct {
	done chan struct{}
	err  error
}

// runProbe runs the probe c and publishes its result. The probe client
// belongs to the running probe; Close leaves it to runProbe to close when
// a probe is running.
func (p *SaramaPublisher) runProbe(c *probeCall) {
	c.err = p.probe()
	p.probeMu.Lock()
	p.probing = nil
	if p.probeClosed && p.probeClient != nil {
		_ = p.probeClient.Close()
		p.probeClient = nil
	}
	p.probeMu.Unlock()
	close(c.done)
}

// probe runs one probe (see Probe); it returns within a few probeTimeouts.
// Only runProbe calls it, one at a time.
func (p *SaramaPublisher) probe() error {
	if p.probeClient == nil {
		if len(p.probeOpts.Brokers) == 0 {
			return nil // not built by newSaramaPublisher: nothing to probe
		}
		cfg, err := p.probeOpts.SaramaConfig()
		if err != nil {
			return fmt.Errorf("kafka probe: %w", err)
		}
		cfg.ClientID += "-probe"
		cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = probeTimeout, probeTimeout, probeTimeout
		cfg.Metadata.Retry.Max = 0
		cfg.Metadata.Timeout = 2 * probeTimeout
		cfg.Metadata.RefreshFrequency = 0 // only the probes refresh
		cfg.Metadata.Full = false
		c, err := sarama.NewClient(p.probeOpts.Brokers, cfg)
		if err != nil {
			err, _ = p.probeOpts.Explain(strings.Join(p.probeOpts.Brokers, ","), err)
			return fmt.Errorf("kafka probe: connect: %w", err)
		}
		p.probeClient = c
	}
	if err := p.probeClient.RefreshMetadata(p.probeOpts.Topics().Telemetry()); err != nil {
		_ = p.probeClient.Close()
		p.probeClient = nil
		err, _ = p.probeOpts.Explain(strings.Join(p.probeOpts.Brokers, ","), err)
		return fmt.Errorf("kafka probe: metadata: %w", p.probeOpts.TopicDenied(err, "DESCRIBE", p.probeOpts.Topics().Telemetry()))
	}
	return nil
}

// Close implements Publisher: it flushes in-flight messages (their
// Verdicts are called) and waits for the producer to stop.
func (p *SaramaPublisher) Close() error {
	p.once.Do(func() {
		p.probeMu.Lock()
		p.probeClosed = true
		if p.probing == nil && p.probeClient != nil { // else runProbe closes it
			_ = p.probeClient.Close()
			p.probeClient = nil
		}
		p.probeMu.Unlock()
		p.producer.AsyncClose()
		p.wg.Wait()
	})
	return nil
}
