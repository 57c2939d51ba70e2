package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/sim"
)

// Defaults of SweepConfig (see DefaultSweepConfig).
const (
	DefaultSweepRate           = 100_000
	DefaultSweepStep           = 40 * time.Second
	DefaultSweepDevicesPerSite = 5
	DefaultSweepOfflineAfter   = 5 * time.Minute
	DefaultSweepCatchUpTimeout = 2 * time.Minute
	// DefaultSweepFreshnessSample reads 1 site in 64 for the freshness
	// figure of the progress lines: the sweep is about CPU and memory, and
	// reading state records is the bench process's CPU, taken from the
	// pipeline it measures.
	DefaultSweepFreshnessSample = 64
	// SweepRegions × SweepSubstationsPerRegion is the substations of the
	// sweep's fleet shape; the sites per substation follow from the fleet
	// size and the devices per site.
	SweepRegions              = 4
	SweepSubstationsPerRegion = 5
)

// sweepDrainLimit bounds how long the sweep waits for a step's backlog to
// be applied before it times vpp top --once.
const sweepDrainLimit = 5 * time.Minute

// DefaultSweepFleets are the fleet sizes of vpp bench sweep.
var DefaultSweepFleets = []int{20_000, 200_000, 1_000_000}

// SweepConfig configures a fleet-size sweep. Start from
// DefaultSweepConfig and change what differs; a zero field takes its
// default.
type SweepConfig struct {
	// Kafka are the brokers; every fleet size uses topics under a fresh
	// prefix below Kafka.Prefix.
	Kafka kafka.Options
	// Exe is the vpp binary run as ingest, aggregate and top --once
	// (default: this executable).
	Exe string
	// Fleets are the fleet sizes in devices, ascending (default 20k, 200k,
	// 1M); the ratios are to the first.
	Fleets []int
	// DevicesPerSite is the devices of each site (default 5): a fleet of
	// N devices has N ÷ DevicesPerSite sites, SweepRegions ×
	// SweepSubstationsPerRegion substations of them.
	DevicesPerSite int
	// Rate is the readings/s of every fleet size (default 100,000).
	Rate float64
	// Step is how long each fleet size runs at Rate (default 40s).
	Step time.Duration
	// Conns is the simulator's WebSocket connections (default: the
	// simulator's own, min(devices, 256)).
	Conns int
	// OfflineAfter is the aggregator's --offline-after (default 5m: no
	// device goes offline during a step).
	OfflineAfter time.Duration
	// FlushInterval is the aggregator's --flush-interval (0: its default).
	FlushInterval time.Duration
	// CatchUpTimeout is vpp top --once's --catch-up-timeout (default 2m).
	CatchUpTimeout time.Duration
	// FreshnessSample k reads freshness from 1 site in k (default 64).
	FreshnessSample int
	// BrokerPID is the broker's process, for its CPU; 0 looks for the
	// process listening on the first broker's port on this machine.
	BrokerPID int
	// Progress receives a line per phase (default: discarded).
	Progress io.Writer
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
}

// DefaultSweepConfig returns the SweepConfig of vpp bench sweep's
// defaults, with no Kafka brokers.
func DefaultSweepConfig() SweepConfig {
	return SweepConfig{
		Fleets:          slices.Clone(DefaultSweepFleets),
		DevicesPerSite:  DefaultSweepDevicesPerSite,
		Rate:            DefaultSweepRate,
		Step:            DefaultSweepStep,
		OfflineAfter:    DefaultSweepOfflineAfter,
		CatchUpTimeout:  DefaultSweepCatchUpTimeout,
		FreshnessSample: DefaultSweepFreshnessSample,
	}
}

// Validate reports a configuration the sweep cannot run: no fleet sizes,
// sizes not ascending, a fleet smaller than one site per substation, or
// one larger than the readings of a step (Rate × Step).
func (c *SweepConfig) Validate() error {
	if len(c.Fleets) == 0 {
		return errors.New("no fleet sizes")
	}
	if c.DevicesPerSite < 0 || c.Rate < 0 || c.Step < 0 {
		return fmt.Errorf("devices per site %d, rate %v, step %v: must not be negative", c.DevicesPerSite, c.Rate, c.Step)
	}
	perSite := c.DevicesPerSite
	if perSite == 0 {
		perSite = DefaultSweepDevicesPerSite
	}
	rate, step := c.Rate, c.Step
	if rate == 0 {
		rate = DefaultSweepRate
	}
	if step == 0 {
		step = DefaultSweepStep
	}
	least := SweepRegions * SweepSubstationsPerRegion * perSite
	for i, n := range c.Fleets {
		if n < least {
			return fmt.Errorf("fleet of %d devices: want at least %d (%d substations × %d devices per site)",
				n, least, SweepRegions*SweepSubstationsPerRegion, perSite)
		}
		// Every device must report at least once, or the reader loads a
		// part of the fleet and the figures per device are wrong.
		if readings := rate * step.Seconds(); readings < float64(n) {
			return fmt.Errorf("fleet of %d devices: %.0f readings/s for %v is %.0f readings, not one per device", n, rate, step, readings)
		}
		if i > 0 && n <= c.Fleets[i-1] {
			return fmt.Errorf("fleet sizes %v: want them ascending", c.Fleets)
		}
	}
	return nil
}

func (c *SweepConfig) defaults() error {
	if err := c.Validate(); err != nil {
		return err
	}
	def := DefaultSweepConfig()
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the vpp binary: %w", err)
		}
		c.Exe = exe
	}
	if c.DevicesPerSite == 0 {
		c.DevicesPerSite = def.DevicesPerSite
	}
	if c.Rate == 0 {
		c.Rate = def.Rate
	}
	if c.Step == 0 {
		c.Step = def.Step
	}
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = def.OfflineAfter
	}
	if c.CatchUpTimeout <= 0 {
		c.CatchUpTimeout = def.CatchUpTimeout
	}
	if c.FreshnessSample <= 0 {
		c.FreshnessSample = def.FreshnessSample
	}
	if c.BrokerPID == 0 && len(c.Kafka.Brokers) > 0 {
		c.BrokerPID = ListenerPID(c.Kafka.Brokers[0])
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// SweepShape is the fleet shape of devices at perSite devices per site:
// SweepRegions regions × SweepSubstationsPerRegion substations × the sites
// that hold them (rounded up).
func SweepShape(devices, perSite int) sim.Shape {
	subs := SweepRegions * SweepSubstationsPerRegion
	perSite = max(perSite, 1)
	return sim.Shape{Regions: SweepRegions, SubstationsPerRegion: SweepSubstationsPerRegion,
		SitesPerSubstation: max(1, (devices+perSite*subs-1)/(perSite*subs))}
}

// SweepPoint is one fleet size's figures.
type SweepPoint struct {
	Devices, Sites int
	// Step is the end-to-end step at the sweep's rate: rates, sustained,
	// CPU per reading, resident memory.
	Step Step
	// CatchUp is the wall time of vpp top --once (start to exit: connect,
	// read the state topic to its high-water marks, print the fleet).
	CatchUp time.Duration
	// ReaderDevices is the devices vpp top --once showed (online +
	// offline): the fleet, when it loaded completely.
	ReaderDevices int64
	// ReaderPeakRSS is vpp top --once's peak resident memory (VmHWM,
	// polled every 10 ms while it runs).
	ReaderPeakRSS int64
	// StateRecords is the records of the state topic the reader read (the
	// sum of its partitions' high-water minus oldest offsets).
	StateRecords int64
}

// PerDevice divides bytes by the fleet size.
func (p *SweepPoint) PerDevice(bytes int64) float64 {
	if p.Devices <= 0 {
		return 0
	}
	return float64(bytes) / float64(p.Devices)
}

// Sweep runs the pipeline at cfg.Rate for cfg.Step at each fleet size, on
// fresh topics and fresh ingest and aggregate processes each, then times
// vpp top --once loading that fleet from the state topic. It returns the
// points measured so far with an error.
func Sweep(ctx context.Context, cfg SweepConfig) ([]SweepPoint, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	bcfg := Config{Kafka: cfg.Kafka, Exe: cfg.Exe, BrokerPID: cfg.BrokerPID, Step: cfg.Step, Conns: cfg.Conns,
		FlushInterval: cfg.FlushInterval, FreshnessSample: cfg.FreshnessSample, Progress: cfg.Progress, Logger: cfg.Logger}
	if err := bcfg.defaults(); err != nil {
		return nil, err
	}
	e, cleanup, err := newEndToEnd(bcfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	e.aggArgs = []string{"--offline-after", cfg.OfflineAfter.String()}
	// As the fleet grows, a simulator connection carries more sites than
	// a token may list: ingest runs --insecure.
	e.insecure = true
	// The reader is timed on the whole fleet at rest: a step that is not
	// sustained may take minutes to be applied.
	e.drainLimit = sweepDrainLimit
	var points []SweepPoint
	for _, n := range cfg.Fleets {
		p := SweepPoint{Devices: n}
		shape := SweepShape(n, cfg.DevicesPerSite)
		p.Sites = min(n, shape.Sites())
		e.cfg.Devices, e.shape = n, shape
		fmt.Fprintf(cfg.Progress, "fleet %d devices: %d sites (%d regions × %d substations × %d), %.0f readings/s for %v\n",
			n, p.Sites, shape.Regions, shape.SubstationsPerRegion, shape.SitesPerSubstation, cfg.Rate, cfg.Step)
		e.after = func(ctx context.Context, o kafka.Options, st *Step) error {
			if st.DrainTime > sweepDrainLimit { // the drain gave up
				fmt.Fprintf(cfg.Progress, "warning: fleet %d devices: backlog not applied after %v: vpp top --once reads a fleet still changing\n", n, sweepDrainLimit)
			}
			fmt.Fprintf(cfg.Progress, "fleet %d devices: drained in %v; vpp top --once loading the fleet\n", n, st.DrainTime.Round(time.Millisecond))
			var err error
			if p.StateRecords, err = stateRecords(o); err != nil {
				return err
			}
			p.CatchUp, p.ReaderDevices, p.ReaderPeakRSS, err = topOnce(ctx, cfg.Exe, o, cfg.CatchUpTimeout)
			return err
		}
		st, err := e.run(ctx, cfg.Rate)
		p.Step = st
		if err != nil {
			return points, fmt.Errorf("fleet of %d devices: %w", n, err)
		}
		printStep(cfg.Progress, &st)
		mb := func(b int64) float64 { return float64(b) / 1e6 }
		fmt.Fprintf(cfg.Progress, "fleet %d devices: vpp top --once %v for %d devices (%d state records), peak RSS %.0f MB; ingest RSS %.0f MB (peak %.0f), aggregate %.0f MB (peak %.0f)\n",
			n, p.CatchUp.Round(time.Millisecond), p.ReaderDevices, p.StateRecords, mb(p.ReaderPeakRSS),
			mb(st.IngestRSS), mb(st.IngestPeakRSS), mb(st.AggregateRSS), mb(st.AggregatePeakRSS))
		if p.ReaderDevices != int64(n) {
			fmt.Fprintf(cfg.Progress, "warning: vpp top --once showed %d devices of %d\n", p.ReaderDevices, n)
		}
		points = append(points, p)
	}
	return points, nil
}

// topOnceDevices finds the device counts in vpp top --once's header
// ("Devices 19,998 on · 2 off · 0 alarm").
var topOnceDevices = regexp.MustCompile(`Devices ([0-9,]+) on · ([0-9,]+) off`)

// topOnce runs `exe top --once` against o's topics as a child process and
// returns its wall time, the devices it showed and its peak RSS.
func topOnce(ctx context.Context, exe string, o kafka.Options, timeout time.Duration) (time.Duration, int64, int64, error) {
	args := []string{"top", "--once", "--brokers", strings.Join(o.Brokers, ","), "--topic-prefix", o.Prefix,
		"--catch-up-timeout", timeout.String(), "--width", "120"}
	if o.Version != "" {
		args = append(args, "--kafka-version", o.Version)
	}
	args = append(args, o.Security.Flags()...)
	start := time.Now()
	p, err := StartProc(ctx, "top --once", exe, args...)
	if err != nil {
		return 0, 0, 0, err
	}
	// The peak is polled from /proc: getrusage's ru_maxrss of a child
	// counts the parent's resident memory it was forked with.
	var peak int64
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for running := true; running; {
		if m, err := procMem(p.PID()); err == nil {
			peak = max(peak, m.Peak, m.RSS)
		}
		select {
		case <-p.Done():
			running = false
		case <-ctx.Done():
			running = false
		case <-poll.C:
		}
	}
	if err := p.Wait(ctx); err != nil {
		return 0, 0, 0, err
	}
	took := time.Since(start)
	n, err := topOnceDeviceCount(p.Output())
	return took, n, peak, err
}

// topOnceDeviceCount is the devices (online + offline) in the header of
// vpp top --once's output.
func topOnceDeviceCount(out string) (int64, error) {
	m := topOnceDevices.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("top --once printed no device counts: %s", out)
	}
	var n int64
	for _, s := range m[1:] {
		v, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("top --once device count %q: %w", s, err)
		}
		n += v
	}
	return n, nil
}

// stateRecords is the records in o's state topic: the sum over its
// partitions of the newest minus the oldest offset.
func stateRecords(o kafka.Options) (int64, error) {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return 0, err
	}
	c, err := sarama.NewClient(o.Brokers, cfg)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer c.Close()
	topic := o.Topics().State()
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	var n int64
	for _, p := range parts {
		hi, err1 := c.GetOffset(topic, p, sarama.OffsetNewest)
		lo, err2 := c.GetOffset(topic, p, sarama.OffsetOldest)
		if err := errors.Join(err1, err2); err != nil {
			return 0, fmt.Errorf("offsets of %s/%d: %w", topic, p, err)
		}
		n += hi - lo
	}
	return n, nil
}

// MedianSweep combines runs of the same sweep: every figure of a fleet
// size is the median over the runs (the verdict of the middle step by
// applied rate, as Median does). Runs must have the same fleet sizes.
func MedianSweep(runs [][]SweepPoint) []SweepPoint {
	if len(runs) == 0 {
		return nil
	}
	out := slices.Clone(runs[0])
	for i := range out {
		var same []SweepPoint
		for _, r := range runs {
			if i < len(r) && r[i].Devices == out[i].Devices {
				same = append(same, r[i])
			}
		}
		if len(same) < 2 {
			continue
		}
		steps := make([]*Step, len(same))
		for j := range same {
			steps[j] = &same[j].Step
		}
		out[i].Step = medianStep(steps)
		md := func(f func(*SweepPoint) float64) float64 {
			v := make([]float64, len(same))
			for j := range same {
				v[j] = f(&same[j])
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		out[i].CatchUp = time.Duration(md(func(p *SweepPoint) float64 { return float64(p.CatchUp) }))
		out[i].ReaderDevices = int64(md(func(p *SweepPoint) float64 { return float64(p.ReaderDevices) }))
		out[i].ReaderPeakRSS = int64(md(func(p *SweepPoint) float64 { return float64(p.ReaderPeakRSS) }))
		out[i].StateRecords = int64(md(func(p *SweepPoint) float64 { return float64(p.StateRecords) }))
	}
	return out
}
