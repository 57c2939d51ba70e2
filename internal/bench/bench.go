// Package bench measures the pipeline on one machine against the physical
// limit of the same broker: the floor (raw sarama produce → consume of the
// same record bytes and keys), the highest end-to-end rate the pipeline
// sustains, freshness (device timestamp → reflected in the published
// state), the CPU each process spends per reading, twin memory, the
// reader's fold and a dashboard frame, and the simulator's rate accuracy.
//
// Ingest, aggregate and (unless brokers are given) the broker run as child
// vpp processes, as an operator runs them, so each one's CPU is its own;
// the simulator and the measurement run in this process.
//
// Configuration: DefaultConfig and DefaultConnsConfig hold the defaults of
// vpp bench and vpp bench conns (their flags are registered from them);
// start from them and change what differs. A zero field that means
// nothing at zero (sizes, durations) also takes its default, a field whose
// zero means something (ReaderDevices and TwinDevices: skip; Readings:
// none) is used as given.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/aggregate"
	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/profile"
	"github.com/vppctl/vpp/internal/sim"
)

// Defaults of Config (see DefaultConfig).
const (
	DefaultFloorRecords    = 500_000          // DefaultFloorRecords is Config.FloorRecords' default.
	DefaultStep            = 30 * time.Second // DefaultStep is Config.Step's default.
	DefaultDevices         = 20_000           // DefaultDevices is Config.Devices' default.
	DefaultMaxRate         = 2_000_000        // DefaultMaxRate is Config.MaxRate's default.
	DefaultReaderDevices   = 100_000          // DefaultReaderDevices is Config.ReaderDevices in DefaultConfig.
	DefaultTwinDevices     = 1_000_000        // DefaultTwinDevices is Config.TwinDevices in DefaultConfig.
	DefaultFreshnessSample = 4                // DefaultFreshnessSample is Config.FreshnessSample's default.
)

// Config configures a benchmark run. Start from DefaultConfig and change
// what differs; a zero FloorRecords, Step, Devices, MaxRate or
// FreshnessSample also takes its default, while ReaderDevices and
// TwinDevices are used as given (0 skips the measurement).
type Config struct {
	// Kafka are the brokers; every measurement uses topics under a fresh
	// prefix below Kafka.Prefix.
	Kafka kafka.Options
	// Exe is the vpp binary run as the ingest and aggregate processes
	// (default: this executable).
	Exe string
	// BrokerPID is the broker's process, for its CPU; 0 looks for the
	// process listening on the first broker's port on this machine.
	BrokerPID int
	// FloorRecords is the number of records of the floor measurement
	// (default 500,000).
	FloorRecords int
	// Step is how long each end-to-end rate runs (default 30s).
	Step time.Duration
	// Devices is the simulated fleet size (default 20,000).
	Devices int
	// DevicesPerSite, when set, shapes the fleet as the sweep does (see
	// SweepShape): 4 regions × 5 substations × Devices ÷ DevicesPerSite
	// sites. 0 keeps the simulator's default shape (500 sites).
	DevicesPerSite int
	// Insecure runs ingest with --insecure and the simulator without
	// tokens. A token lists its connection's sites within
	// auth.MaxTokenBytes, which the simulator's connections exceed when
	// each carries more than a few hundred sites.
	Insecure bool
	// Conns is the simulator's WebSocket connections (default: the
	// simulator's own, min(Devices, 256)).
	Conns int
	// Rates, when set, are the end-to-end rates to try, ascending, instead
	// of the search; it stops at the first not sustained.
	Rates []float64
	// MaxRate bounds the search (default 2,000,000 readings/s).
	MaxRate float64
	// FlushInterval is the aggregator's --flush-interval (0: its default).
	FlushInterval time.Duration
	// ReaderDevices is the fleet size of the reader-cost measurement
	// (default 100,000; 0 or less skips it).
	ReaderDevices int
	// TwinDevices is the fleet size of the twin-memory measurement
	// (default 1,000,000; 0 or less skips it).
	TwinDevices int
	// FreshnessSample k reads the freshness of 1 site in k (by a hash of
	// its ID), every reading of those sites (default 4; 1 reads all).
	FreshnessSample int
	// ProfileDir, when set, receives CPU and allocation profiles of the
	// ingest and aggregate processes of every step (ingest-<rate>.pprof,
	// ingest-<rate>.allocs.pprof, …) and a CPU profile of this process (the
	// simulator and the state watcher: bench-<rate>.pprof).
	ProfileDir string
	// Progress receives one line per measurement as it completes.
	Progress io.Writer
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
}

// Percentiles summarises a latency distribution.
type Percentiles struct {
	N                   int
	P50, P99, P999, Max time.Duration
}

// Step is one end-to-end run at a requested rate.
type Step struct {
	Requested float64
	Sent      int64   // readings the simulator generated
	SimRate   float64 // readings/s the simulator generated
	Applied   float64 // readings/s applied to twins over the step
	LagAtEnd  int64   // readings generated and not yet applied when the step ended
	DrainTime time.Duration
	Sustained bool
	Freshness Percentiles
	// CPU per reading over the step, of each process (0: unknown).
	IngestCPU, AggregateCPU, BrokerCPU, SimCPU time.Duration
	// Resident memory at the end of the step.
	IngestRSS, AggregateRSS int64
	// Peak resident memory of each process (VmHWM) once the step drained.
	IngestPeakRSS, AggregatePeakRSS int64
	// AckedRate is readings/s acknowledged to the simulator over the step.
	AckedRate float64
}

// PipelineCPU is ingest's and aggregate's CPU per reading together.
func (s *Step) PipelineCPU() time.Duration { return s.IngestCPU + s.AggregateCPU }

// Result is every figure of a run.
type Result struct {
	Broker     string
	FloorRate  float64
	FloorBytes int
	// FloorBrokerCPU is the broker's CPU per record during the floor
	// (produce and consume of each record; 0: unknown).
	FloorBrokerCPU time.Duration
	// FloorClientCPU is the sarama producer's and consumer's CPU per record
	// during the floor, in this process: the least a process that
	// produces or consumes each reading with sarama can spend.
	FloorClientCPU time.Duration
	Steps          []Step // the search, in the order run
	Half, Ninety   *Step  // at 50 % and 90 % of the maximum
	TwinBytes      float64
	TwinDevices    int
	ReaderDevices  int
	// FreshnessSample k: freshness was read from 1 site in k.
	FreshnessSample int
	ReaderFold      time.Duration
	Frame           FrameCost
}

// FrameCost is the time of one dashboard frame on the fleet screen.
type FrameCost struct {
	Width, Height   int
	Refresh, Redraw time.Duration
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

// At returns the first step run at the requested rate, or nil.
func (r *Result) At(rate float64) *Step {
	for i := range r.Steps {
		if r.Steps[i].Requested == rate {
			return &r.Steps[i]
		}
	}
	return nil
}

// DefaultConfig returns the Config of vpp bench's defaults, with no Kafka
// brokers: set Kafka, then change what differs.
func DefaultConfig() Config {
	return Config{
		FloorRecords:    DefaultFloorRecords,
		Step:            DefaultStep,
		Devices:         DefaultDevices,
		MaxRate:         DefaultMaxRate,
		ReaderDevices:   DefaultReaderDevices,
		TwinDevices:     DefaultTwinDevices,
		FreshnessSample: DefaultFreshnessSample,
	}
}

// defaults fills the zero fields of c that have no meaning at zero.
func (c *Config) defaults() error {
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the vpp binary: %w", err)
		}
		c.Exe = exe
	}
	if c.BrokerPID == 0 && len(c.Kafka.Brokers) > 0 {
		c.BrokerPID = ListenerPID(c.Kafka.Brokers[0])
	}
	if c.FloorRecords <= 0 {
		c.FloorRecords = DefaultFloorRecords
	}
	if c.Step <= 0 {
		c.Step = DefaultStep
	}
	if c.Devices <= 0 {
		c.Devices = DefaultDevices
	}
	if c.MaxRate <= 0 {
		c.MaxRate = DefaultMaxRate
	}
	if c.FreshnessSample <= 0 {
		c.FreshnessSample = DefaultFreshnessSample
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// searchStart are the first rates of the search; after them the rate grows
// by half until a step is not sustained, then up to three bisections narrow
// the maximum down to within 8 %.
var searchStart = [...]float64{10_000, 25_000, 50_000, 100_000}

// Run measures the floor, searches the highest sustained end-to-end rate,
// measures freshness at 50 % and 90 % of it, then twin memory, the
// reader's fold and a dashboard frame.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &Result{Broker: fmt.Sprint(cfg.Kafka.Brokers), FreshnessSample: cfg.FreshnessSample}
	b0, s0 := brokerCPU(cfg.BrokerPID), selfCPU()
	rate, size, err := Floor(ctx, cfg.Kafka, cfg.FloorRecords)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	res.FloorClientCPU = (selfCPU() - s0) / time.Duration(cfg.FloorRecords)
	if cfg.BrokerPID > 0 {
		res.FloorBrokerCPU = (brokerCPU(cfg.BrokerPID) - b0) / time.Duration(cfg.FloorRecords)
	}
	res.FloorRate, res.FloorBytes = rate, size
	fmt.Fprintf(cfg.Progress, "floor: %.0f records/s (%d records of ~%d bytes, produce → consume), CPU/record broker %v, sarama client %v\n",
		rate, cfg.FloorRecords, size, res.FloorBrokerCPU, res.FloorClientCPU)

	e, cleanup, err := newEndToEnd(cfg)
	if err != nil {
		return res, err
	}
	defer cleanup()
	e.insecure = cfg.Insecure
	if cfg.DevicesPerSite > 0 {
		e.shape = SweepShape(cfg.Devices, cfg.DevicesPerSite)
	}

	step := func(rate float64) (Step, error) {
		st, err := e.run(ctx, rate)
		if err != nil {
			return st, fmt.Errorf("end to end at %.0f/s: %w", rate, err)
		}
		printStep(cfg.Progress, &st)
		return st, nil
	}
	if len(cfg.Rates) > 0 {
		for _, r := range cfg.Rates {
			st, err := step(r)
			if err != nil {
				return res, err
			}
			res.Steps = append(res.Steps, st)
			if !st.Sustained {
				break
			}
		}
	} else if err := search(cfg, res, step); err != nil {
		return res, err
	}

	if best := res.MaxSustained(); best != nil {
		for _, f := range []struct {
			frac float64
			dst  **Step
		}{{0.5, &res.Half}, {0.9, &res.Ninety}} {
			st, err := step(math.Round(f.frac * best.Applied))
			if err != nil {
				return res, err
			}
			*f.dst = &st
		}
	}

	if cfg.TwinDevices > 0 {
		if res.TwinBytes, err = aggregate.TwinMemory(cfg.TwinDevices); err != nil {
			return res, err
		}
		res.TwinDevices = cfg.TwinDevices
		fmt.Fprintf(cfg.Progress, "twin memory: %.0f bytes/device at %d devices\n", res.TwinBytes, cfg.TwinDevices)
	}
	if cfg.ReaderDevices > 0 {
		if err := readerCost(ctx, cfg, res); err != nil {
			return res, fmt.Errorf("reader cost: %w", err)
		}
		fmt.Fprintf(cfg.Progress, "reader: folded %d devices in %v; frame %dx%d refresh %v, redraw %v\n",
			res.ReaderDevices, res.ReaderFold, res.Frame.Width, res.Frame.Height, res.Frame.Refresh, res.Frame.Redraw)
	}
	return res, nil
}

// search runs the start rates, then grows the rate by half until a step is
// not sustained (or MaxRate), then bisects between the highest sustained
// and the lowest failed rate, at most three times, until they are within
// 8 % of each other.
func search(cfg Config, res *Result, step func(float64) (Step, error)) error {
	var good, bad float64
	try := func(r float64) (bool, error) {
		st, err := step(r)
		if err != nil {
			return false, err
		}
		res.Steps = append(res.Steps, st)
		if st.Sustained {
			good = max(good, r)
		} else if bad == 0 || r < bad {
			bad = r
		}
		return st.Sustained, nil
	}
	for _, r := range searchStart {
		if r > cfg.MaxRate {
			break
		}
		ok, err := try(r)
		if err != nil || !ok {
			if err == nil && good > 0 {
				break
			}
			return err
		}
	}
	for bad == 0 && good > 0 && good < cfg.MaxRate {
		if _, err := try(min(roundRate(good*1.5), cfg.MaxRate)); err != nil {
			return err
		}
	}
	for range 3 {
		if good == 0 || bad == 0 || bad/good < 1.08 {
			break
		}
		if _, err := try(roundRate((good + bad) / 2)); err != nil {
			return err
		}
	}
	return nil
}

// roundRate rounds a rate to 1,000 readings/s.
func roundRate(r float64) float64 { return math.Round(r/1000) * 1000 }

func printStep(w io.Writer, st *Step) {
	fmt.Fprintf(w, "end to end at %.0f/s: sim %.0f/s, applied %.0f/s, lag at end %d, drained in %v, sustained %v; freshness p50 %v p99 %v p99.9 %v max %v (%d); CPU/reading ingest %v aggregate %v broker %v sim %v\n",
		st.Requested, st.SimRate, st.Applied, st.LagAtEnd, st.DrainTime.Round(time.Millisecond), st.Sustained,
		st.Freshness.P50.Round(time.Millisecond), st.Freshness.P99.Round(time.Millisecond),
		st.Freshness.P999.Round(time.Millisecond), st.Freshness.Max.Round(time.Millisecond), st.Freshness.N,
		st.IngestCPU, st.AggregateCPU, st.BrokerCPU, st.SimCPU)
}

// brokerCPU is the broker's CPU so far, or 0 when unknown.
func brokerCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	d, err := procCPU(pid)
	if err != nil {
		return 0
	}
	return d
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
	defer func() { _ = dropTopics(o) }()
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
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, 0, fmt.Errorf("consume partition %d: %w", p, err)
		}
		go func() {
			defer pc.Close()
			for {
				select {
				case <-pc.Messages():
					consumed.Add(1)
				case <-cctx.Done():
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
	perr := make(chan error, 1)
	go func() {
		for range producer.Successes() {
		}
	}()
	go func() {
		for e := range producer.Errors() {
			select {
			case perr <- e.Err:
			default:
			}
		}
	}()
	start := time.Now()
	go func() {
		for i := range n {
			msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(keys[i%len(keys)]), Value: sarama.ByteEncoder(values[i%len(values)])}
			select {
			case producer.Input() <- msg:
			case <-cctx.Done():
				return
			}
		}
	}()
	defer producer.AsyncClose()
	timeout := time.After(5 * time.Minute)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for consumed.Load() < int64(n) {
		select {
		case <-poll.C:
		case err := <-perr:
			return 0, 0, fmt.Errorf("produce: %w", err)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-timeout:
			return 0, 0, fmt.Errorf("consumed %d of %d records in 5 minutes", consumed.Load(), n)
		}
	}
	return float64(n) / time.Since(start).Seconds(), size, nil
}

// endToEnd runs pipeline steps: ingest and aggregate as child processes on
// fresh topics, the simulator and the state watcher here.
type endToEnd struct {
	cfg     Config
	keyFile string
	token   sim.TokenFunc
	// shape is the simulator's fleet shape (zero: its default).
	shape sim.Shape
	// aggArgs are more flags of the aggregate process.
	aggArgs []string
	// insecure runs ingest with --insecure and the simulator without
	// tokens. A token lists the sites of its connection and is at most
	// auth.MaxTokenBytes long, which a connection carrying more than a few
	// hundred sites (a large fleet on the simulator's 256 connections)
	// exceeds.
	insecure bool
	// drainLimit bounds how long a step waits for the simulator's acks
	// and for the aggregator to apply the backlog (0: a minute).
	drainLimit time.Duration
	// after, when set, runs once a step has drained, while its topics,
	// ingest and aggregate are still there; o are the step's Kafka
	// options. Its error ends the step.
	after func(ctx context.Context, o kafka.Options, st *Step) error
}

// newEndToEnd returns the runner of cfg's end-to-end steps, with a fresh
// token key that ingest checks; cleanup removes the key.
func newEndToEnd(cfg Config) (e *endToEnd, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "vpp-bench-")
	if err != nil {
		return nil, nil, fmt.Errorf("temp dir: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	keyFile := filepath.Join(dir, "auth.key")
	if err := os.WriteFile(keyFile, auth.GenerateHMACSecret(), 0o600); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("write auth key: %w", err)
	}
	key, err := auth.LoadKey(keyFile)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return &endToEnd{cfg: cfg, keyFile: keyFile, token: auth.SiteMinter(key, "vpp-bench", time.Hour)}, cleanup, nil
}

func (e *endToEnd) run(ctx context.Context, rate float64) (st Step, err error) {
	cfg := e.cfg
	st.Requested = rate
	o := cfg.Kafka
	o.Prefix = cfg.Kafka.Prefix + "e2e." + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	if err := kafka.EnsureTopics(ctx, o); err != nil {
		return st, err
	}
	common := []string{"--brokers", strings.Join(o.Brokers, ","), "--topic-prefix", o.Prefix,
		"--partitions", strconv.Itoa(int(o.Partitions)), "--replication", strconv.Itoa(int(o.Replication)),
		"--log-level", "warn"}
	if o.Version != "" {
		common = append(common, "--kafka-version", o.Version)
	}
	if o.Compression != "" {
		common = append(common, "--compression", o.Compression)
	}
	if o.StateCompression != "" {
		common = append(common, "--state-compression", o.StateCompression)
	}
	common = append(common, o.Security.Flags()...)
	listen, err := freeAddr()
	if err != nil {
		return st, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return st, err
	}
	profArgs := func(part string) []string {
		if cfg.ProfileDir == "" {
			return nil
		}
		return []string{"--cpuprofile", filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%.0f.pprof", part, rate)),
			"--memprofile", filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%.0f.allocs.pprof", part, rate))}
	}
	authArgs, token := []string{"--auth-key", e.keyFile}, e.token
	if e.insecure {
		authArgs, token = []string{"--insecure"}, nil
	}
	ing, err := StartProc(ctx, "ingest", cfg.Exe, slices.Concat([]string{"ingest", "--listen", listen, "--http", httpAddr,
		"--status=false"}, authArgs, common, profArgs("ingest"))...)
	if err != nil {
		return st, err
	}
	group := o.Prefix + "aggregate"
	aargs := slices.Concat([]string{"aggregate", "--group", group, "--quiet"}, common, e.aggArgs, profArgs("aggregate"))
	if cfg.FlushInterval > 0 {
		aargs = append(aargs, "--flush-interval", cfg.FlushInterval.String())
	}
	agg, err := StartProc(ctx, "aggregate", cfg.Exe, aargs...)
	if err != nil {
		_ = ing.Stop(5 * time.Second)
		return st, err
	}
	defer func() {
		err = errors.Join(err, ing.Stop(time.Minute), agg.Stop(time.Minute))
		if derr := dropTopics(o); derr != nil {
			fmt.Fprintf(cfg.Progress, "warning: %v\n", derr)
		}
	}()
	if err := waitReady(ctx, "http://"+httpAddr+"/readyz", ing); err != nil {
		return st, err
	}
	if err := waitGroup(ctx, o, group, agg); err != nil {
		return st, err
	}

	period := time.Duration(float64(cfg.Devices) / rate * float64(time.Second))
	w := newStateWatcher(period, cfg.FreshnessSample)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ready := make(chan struct{})
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx, o, ready) }()
	select {
	case <-ready:
	case err := <-werr:
		return st, fmt.Errorf("state watcher: %w", err)
	}

	drainLimit := e.drainLimit
	if drainLimit <= 0 {
		drainLimit = time.Minute
	}
	s, err := sim.New(sim.Config{URL: "ws://" + listen + "/v1/telemetry", TokenFunc: token, Devices: cfg.Devices,
		Conns: cfg.Conns, Rate: rate, Duration: cfg.Step, Seed: 1, DrainTimeout: drainLimit, Logger: cfg.Logger,
		Regions: e.shape.Regions, SubstationsPerRegion: e.shape.SubstationsPerRegion, SitesPerSubstation: e.shape.SitesPerSubstation})
	if err != nil {
		return st, err
	}
	type cpus struct{ ingest, agg, broker, self time.Duration }
	sample := func() cpus {
		var c cpus
		c.ingest, _ = procCPU(ing.PID())
		c.agg, _ = procCPU(agg.PID())
		c.broker = brokerCPU(cfg.BrokerPID)
		c.self = selfCPU()
		return c
	}
	if cfg.ProfileDir != "" {
		stop, err := profile.StartCPU(filepath.Join(cfg.ProfileDir, fmt.Sprintf("bench-%.0f.pprof", rate)))
		if err != nil {
			return st, err
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	c0 := sample()
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()
	select {
	case <-time.After(cfg.Step):
	case <-ctx.Done():
		return st, ctx.Err()
	}
	// The simulator's generation stops at the same time (its Duration).
	c1 := sample()
	simSt := s.Stats()
	sent := simSt.Sent
	applied := w.appliedSum()
	st.SimRate = float64(sent) / cfg.Step.Seconds()
	st.AckedRate = float64(simSt.Acked) / cfg.Step.Seconds()
	st.Applied = float64(applied) / cfg.Step.Seconds()
	st.LagAtEnd = sent - int64(applied)
	st.IngestRSS, _ = procRSS(ing.PID())
	st.AggregateRSS, _ = procRSS(agg.PID())
	if sent > 0 {
		st.IngestCPU = (c1.ingest - c0.ingest) / time.Duration(sent)
		st.SimCPU = (c1.self - c0.self) / time.Duration(sent)
	}
	if applied > 0 {
		st.AggregateCPU = (c1.agg - c0.agg) / time.Duration(applied)
		if cfg.BrokerPID > 0 {
			st.BrokerCPU = (c1.broker - c0.broker) / time.Duration(applied)
		}
	}

	drainStart := time.Now()
	for {
		total := s.Stats().Sent
		if w.appliedSum() >= uint64(total) {
			break
		}
		if time.Since(drainStart) > drainLimit {
			break
		}
		if done, err := agg.Exited(); done {
			return st, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.DrainTime = time.Since(drainStart)
	if err := <-simDone; err != nil {
		return st, fmt.Errorf("sim: %w", err)
	}
	// The last site records: a busy site's are held for up to the
	// aggregator's state interval.
	time.Sleep(aggregate.DefaultStateInterval + 2*max(cfg.FlushInterval, aggregate.DefaultFlushInterval))
	wcancel()
	if err := <-werr; err != nil {
		return st, fmt.Errorf("state watcher: %w", err)
	}
	st.Sent = s.Stats().Sent
	st.Freshness = w.percentiles()
	// Sustained: the simulator kept the rate, the aggregators applied it,
	// the backlog at the end was under a second of readings and drained
	// within two seconds.
	st.Sustained = st.SimRate >= 0.95*rate && st.Applied >= 0.95*rate &&
		float64(st.LagAtEnd) <= rate && st.DrainTime < 2*time.Second
	// VmHWM is updated lazily and can lag an earlier VmRSS.
	if m, err := procMem(ing.PID()); err == nil {
		st.IngestPeakRSS = max(m.Peak, m.RSS, st.IngestRSS)
	}
	if m, err := procMem(agg.PID()); err == nil {
		st.AggregatePeakRSS = max(m.Peak, m.RSS, st.AggregateRSS)
	}
	if e.after != nil {
		if err := e.after(ctx, o, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Median combines runs: every figure is the median of the runs' figures
// (the search's steps are taken from the run with the median maximum).
func Median(runs []*Result) *Result {
	if len(runs) == 0 {
		return nil
	}
	if len(runs) == 1 {
		return runs[0]
	}
	maxOf := func(r *Result) float64 {
		if b := r.MaxSustained(); b != nil {
			return b.Applied
		}
		return 0
	}
	byMax := slices.Clone(runs)
	slices.SortFunc(byMax, func(a, b *Result) int { return cmpFloat(maxOf(a), maxOf(b)) })
	m := *byMax[len(byMax)/2]
	m.FloorRate = medianOf(runs, func(r *Result) float64 { return r.FloorRate })
	m.FloorBrokerCPU = time.Duration(medianOf(runs, func(r *Result) float64 { return float64(r.FloorBrokerCPU) }))
	m.FloorClientCPU = time.Duration(medianOf(runs, func(r *Result) float64 { return float64(r.FloorClientCPU) }))
	m.TwinBytes = medianOf(runs, func(r *Result) float64 { return r.TwinBytes })
	m.ReaderFold = time.Duration(medianOf(runs, func(r *Result) float64 { return float64(r.ReaderFold) }))
	m.Frame.Refresh = time.Duration(medianOf(runs, func(r *Result) float64 { return float64(r.Frame.Refresh) }))
	m.Frame.Redraw = time.Duration(medianOf(runs, func(r *Result) float64 { return float64(r.Frame.Redraw) }))
	// Steps at a fixed rate (10k, 100k): the median of each figure.
	m.Steps = slices.Clone(m.Steps)
	for i := range m.Steps {
		var same []*Step
		for _, r := range runs {
			if s := r.At(m.Steps[i].Requested); s != nil {
				same = append(same, s)
			}
		}
		if len(same) == len(runs) {
			m.Steps[i] = medianStep(same)
		}
	}
	for _, f := range []func(r *Result) **Step{
		func(r *Result) **Step { return &r.Half },
		func(r *Result) **Step { return &r.Ninety },
	} {
		var same []*Step
		for _, r := range runs {
			if s := *f(r); s != nil {
				same = append(same, s)
			}
		}
		if len(same) > 0 {
			s := medianStep(same)
			*f(&m) = &s
		}
	}
	return &m
}

// medianStep is the step whose figures are each the median over steps (the
// requested rate and the verdict of the middle one by applied rate).
func medianStep(steps []*Step) Step {
	byApplied := slices.Clone(steps)
	slices.SortFunc(byApplied, func(a, b *Step) int { return cmpFloat(a.Applied, b.Applied) })
	s := *byApplied[len(byApplied)/2]
	md := func(f func(*Step) float64) float64 {
		v := make([]float64, len(steps))
		for i, st := range steps {
			v[i] = f(st)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	dur := func(f func(*Step) time.Duration) time.Duration {
		return time.Duration(md(func(s *Step) float64 { return float64(f(s)) }))
	}
	s.SimRate = md(func(s *Step) float64 { return s.SimRate })
	s.Freshness.P50 = dur(func(s *Step) time.Duration { return s.Freshness.P50 })
	s.Freshness.P99 = dur(func(s *Step) time.Duration { return s.Freshness.P99 })
	s.Freshness.P999 = dur(func(s *Step) time.Duration { return s.Freshness.P999 })
	s.Freshness.Max = dur(func(s *Step) time.Duration { return s.Freshness.Max })
	s.IngestCPU = dur(func(s *Step) time.Duration { return s.IngestCPU })
	s.AggregateCPU = dur(func(s *Step) time.Duration { return s.AggregateCPU })
	s.BrokerCPU = dur(func(s *Step) time.Duration { return s.BrokerCPU })
	s.SimCPU = dur(func(s *Step) time.Duration { return s.SimCPU })
	s.AckedRate = md(func(s *Step) float64 { return s.AckedRate })
	for _, f := range []func(*Step) *int64{
		func(s *Step) *int64 { return &s.IngestRSS },
		func(s *Step) *int64 { return &s.AggregateRSS },
		func(s *Step) *int64 { return &s.IngestPeakRSS },
		func(s *Step) *int64 { return &s.AggregatePeakRSS },
	} {
		*f(&s) = int64(md(func(st *Step) float64 { return float64(*f(st)) }))
	}
	return s
}

func medianOf(runs []*Result, f func(*Result) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
