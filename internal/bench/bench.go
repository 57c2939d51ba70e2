// Package bench measures the pipeline on one machine against the physical
// limit of the same broker: the floor (raw sarama produce → consume of the
// same record bytes and keys), the highest end-to-end rate the pipeline
// sustains, freshness (device timestamp → reflected in the published state)
// and the simulator's rate accuracy.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/pipeline"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Config configures a benchmark run.
type Config struct {
	// Kafka are the brokers; every step uses topics under a fresh prefix.
	Kafka kafka.Options
	// FloorRecords is the number of records of the floor measurement
	// (default 500,000).
	FloorRecords int
	// Step is how long each end-to-end step runs (default 30s).
	Step time.Duration
	// Devices is the simulated fleet size (default 20,000).
	Devices int
	// Rates are the end-to-end rates to try, ascending (default 10k, 25k,
	// 50k, 100k, 200k, 400k); the search stops at the first that is not
	// sustained.
	Rates []float64
	// Progress receives one line per measurement as it completes.
	Progress io.Writer
	// Logger receives the pipeline's logs (default: discarded).
	Logger *slog.Logger
}

// Percentiles summarises a latency distribution.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

// Step is one end-to-end run at a requested rate.
type Step struct {
	Requested  float64
	SimRate    float64 // readings/s the simulator generated
	Applied    float64 // readings/s applied to twins over the step
	LagAtEnd   int64   // records not yet applied when the simulator stopped
	DrainTime  time.Duration
	Sustained  bool
	Freshness  Percentiles
	CPUPerRead time.Duration // process CPU (sim, ingest, aggregate, broker in this process) per reading
}

// Result is every figure of a run.
type Result struct {
	Broker     string
	FloorRate  float64
	FloorBytes int
	Steps      []Step
}

// MaxSustained is the highest sustained step, or nil.
func (r *Result) MaxSustained() *Step {
	var best *Step
	for i := range r.Steps {
		if r.Steps[i].Sustained && (best == nil || r.Steps[i].Applied > best.Applied) {
			best = &r.Steps[i]
		}
	}
	return best
}

func (c *Config) defaults() {
	if c.FloorRecords <= 0 {
		c.FloorRecords = 500_000
	}
	if c.Step <= 0 {
		c.Step = 30 * time.Second
	}
	if c.Devices <= 0 {
		c.Devices = 20_000
	}
	if len(c.Rates) == 0 {
		c.Rates = []float64{10_000, 25_000, 50_000, 100_000, 200_000, 400_000}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Run measures the floor, then each end-to-end step until one is not
// sustained.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	res := &Result{Broker: fmt.Sprint(cfg.Kafka.Brokers)}
	rate, size, err := Floor(ctx, cfg.Kafka, cfg.FloorRecords)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	res.FloorRate, res.FloorBytes = rate, size
	fmt.Fprintf(cfg.Progress, "floor: %.0f records/s (%d records of ~%d bytes, produce → consume)\n", rate, cfg.FloorRecords, size)
	for _, r := range cfg.Rates {
		st, err := EndToEnd(ctx, cfg, r)
		if err != nil {
			return res, fmt.Errorf("end to end at %.0f/s: %w", r, err)
		}
		res.Steps = append(res.Steps, st)
		fmt.Fprintf(cfg.Progress, "end to end at %.0f/s: sim %.0f/s, applied %.0f/s, lag at end %d, drained in %v, sustained %v, freshness p50 %v p99 %v max %v, CPU %v/reading\n",
			r, st.SimRate, st.Applied, st.LagAtEnd, st.DrainTime.Round(time.Millisecond), st.Sustained,
			st.Freshness.P50, st.Freshness.P99, st.Freshness.Max, st.CPUPerRead)
		if !st.Sustained {
			break
		}
	}
	return res, nil
}

// sampleReadings returns n distinct readings spread over sites like the
// simulator's fleet, marshalled, with their keys.
func sampleReadings(n, devices int) (keys [][]byte, values [][]byte) {
	const sitesPerDevice = 4
	sites := max(devices/sitesPerDevice, 1)
	now := time.Now().UnixMilli()
	for i := range n {
		d := i % devices
		site := "site-" + strconv.Itoa(d%sites)
		r := &vppv1.Reading{
			DeviceId: "dev-" + strconv.Itoa(d), SiteId: site, SubstationId: "sub-" + strconv.Itoa(d%sites/25),
			RegionId: "north", Seq: uint64(i/devices + 1), TsMs: now, SocPct: 55.5 + float64(i%40), SohPct: 93.1,
			PowerKw: -2.25 + float64(i%9)/2, VoltageV: 401.5, CurrentA: -5.6, TemperatureC: 24.5, CapacityKwh: 13.5,
			MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_CHARGING,
		}
		b, _ := proto.Marshal(r)
		keys = append(keys, []byte(site))
		values = append(values, b)
	}
	return keys, values
}

// Floor produces n reading-sized records keyed by site with the same
// producer configuration ingest uses and consumes them back from every
// partition; it returns records per second from the first send to the last
// record consumed, and the mean record size.
func Floor(ctx context.Context, opts kafka.Options, n int) (float64, int, error) {
	o := opts
	o.Prefix = opts.Prefix + "floor." + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	if err := kafka.EnsureTopics(ctx, o); err != nil {
		return 0, 0, err
	}
	topic := o.Topics().Telemetry()
	const distinct = 100_000
	keys, values := sampleReadings(min(n, distinct), 20_000)
	size := 0
	for _, v := range values {
		size += len(v)
	}
	size /= len(values)

	ccfg, err := o.SaramaConfig()
	if err != nil {
		return 0, 0, err
	}
	ccfg.Consumer.Fetch.Default = 4 << 20
	consumer, err := sarama.NewConsumer(o.Brokers, ccfg)
	if err != nil {
		return 0, 0, fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		return 0, 0, fmt.Errorf("partitions: %w", err)
	}
	var consumed atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, 0, fmt.Errorf("consume partition %d: %w", p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case <-pc.Messages():
					if consumed.Add(1) == int64(n) {
						once.Do(func() { close(done) })
					}
				case <-done:
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	pcfg, err := o.ProducerConfig()
	if err != nil {
		return 0, 0, err
	}
	producer, err := sarama.NewAsyncProducer(o.Brokers, pcfg)
	if err != nil {
		return 0, 0, fmt.Errorf("producer: %w", err)
	}
	var perr atomic.Value
	go func() {
		for range producer.Successes() {
		}
	}()
	go func() {
		for e := range producer.Errors() {
			perr.Store(e.Err)
		}
	}()
	start := time.Now()
	for i := range n {
		msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(keys[i%len(keys)]), Value: sarama.ByteEncoder(values[i%len(values)])}
		select {
		case producer.Input() <- msg:
		case <-ctx.Done():
			producer.AsyncClose()
			return 0, 0, ctx.Err()
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("consumed %d of %d records", consumed.Load(), n)
	}
	elapsed := time.Since(start)
	wg.Wait()
	_ = producer.Close()
	if e, ok := perr.Load().(error); ok {
		return 0, 0, fmt.Errorf("produce: %w", e)
	}
	return float64(n) / elapsed.Seconds(), size, nil
}

// EndToEnd runs sim → ingest → Kafka → aggregate at the requested rate for
// cfg.Step on fresh topics and reports what the pipeline sustained.
func EndToEnd(ctx context.Context, cfg Config, rate float64) (Step, error) {
	cfg.defaults()
	st := Step{Requested: rate}
	o := cfg.Kafka
	o.Prefix = cfg.Kafka.Prefix + "e2e." + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	p, err := pipeline.Start(pctx, pipeline.Config{Kafka: o, Logger: cfg.Logger})
	if err != nil {
		return st, err
	}
	defer func() {
		pcancel()
		_ = p.Wait()
	}()

	fresh := newFreshness()
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	go func() { _ = fresh.run(fctx, o) }()

	s, err := sim.New(sim.Config{URL: p.IngestURL(), TokenFunc: p.TokenFunc(), Devices: cfg.Devices, Rate: rate, Duration: cfg.Step,
		Seed: 1, DrainTimeout: 30 * time.Second, Logger: cfg.Logger})
	if err != nil {
		return st, err
	}
	applied0 := appliedOf(p)
	cpu0 := cpuTime()
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()
	select {
	case <-time.After(cfg.Step):
	case <-ctx.Done():
		return st, ctx.Err()
	}
	at := s.Stats()
	st.SimRate = float64(at.Sent) / cfg.Step.Seconds()
	applied1 := appliedOf(p)
	st.Applied = float64(applied1-applied0) / cfg.Step.Seconds()
	st.LagAtEnd = int64(at.Sent) - int64(applied1-applied0)

	if err := <-simDone; err != nil && !errors.Is(err, sim.ErrUnacked) {
		return st, fmt.Errorf("sim: %w", err)
	}
	drainStart := time.Now()
	total := s.Truth().ReadingsSent
	for appliedOf(p)-applied0 < uint64(total) {
		if time.Since(drainStart) > time.Minute {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	st.DrainTime = time.Since(drainStart)
	if total > 0 {
		st.CPUPerRead = (cpuTime() - cpu0) / time.Duration(total)
	}
	time.Sleep(500 * time.Millisecond) // let the last state reach the freshness reader
	st.Freshness = fresh.percentiles()
	st.Sustained = st.SimRate >= 0.95*rate && st.Applied >= 0.95*rate && st.DrainTime < 2*time.Second
	return st, nil
}

func appliedOf(p *pipeline.Pipeline) uint64 {
	var n uint64
	for _, a := range p.Aggregators() {
		n += a.Stats().Applied
	}
	return n
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freshness follows the state topic and records, for every device whose
// last reading advanced, the time from the reading's timestamp to now.
type freshness struct {
	mu      sync.Mutex
	lastSeq map[string]uint64
	samples []time.Duration
}

func newFreshness() *freshness { return &freshness{lastSeq: map[string]uint64{}} }

const maxFreshnessSamples = 2_000_000

func (f *freshness) run(ctx context.Context, o kafka.Options) error {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return err
	}
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	consumer, err := sarama.NewConsumer(o.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(o.Topics().State())
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(o.Topics().State(), p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("consume state partition %d: %w", p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			var rec vppv1.StateRecord
			for {
				select {
				case m := <-pc.Messages():
					now := time.Now()
					if proto.Unmarshal(m.Value, &rec) != nil || rec.GetSite() == nil {
						continue
					}
					f.observe(rec.GetSite(), now)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

func (f *freshness) observe(s *vppv1.SiteState, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range s.GetDevices() {
		r := d.GetLast()
		if r == nil || r.GetSeq() <= f.lastSeq[r.GetDeviceId()] {
			continue
		}
		f.lastSeq[r.GetDeviceId()] = r.GetSeq()
		if len(f.samples) < maxFreshnessSamples {
			f.samples = append(f.samples, now.Sub(time.UnixMilli(r.GetTsMs())))
		}
	}
}

func (f *freshness) percentiles() Percentiles {
	f.mu.Lock()
	s := slices.Clone(f.samples)
	f.mu.Unlock()
	if len(s) == 0 {
		return Percentiles{}
	}
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))].Round(time.Millisecond)
	}
	return Percentiles{N: len(s), P50: q(0.50), P99: q(0.99), Max: s[len(s)-1].Round(time.Millisecond)}
}
