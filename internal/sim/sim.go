// Package sim simulates a fleet of batteries that stream telemetry to vpp
// ingest: a battery model a power engineer can accept, a fleet shape
// (regions, substations, sites), a gateway-style WebSocket client with
// acknowledgements, backpressure and retransmission, and the ground truth
// the rest of the system must reproduce.
//
// Pacing is a global schedule: reading g of the fleet (g = 0, 1, 2, …) is
// due g/Rate seconds after Run starts and belongs to device g mod Devices,
// so every device reports once per Devices/Rate seconds, staggered. Each
// reading advances its device's simulated clock by the fixed step
// dt = Devices/Rate × TimeScale seconds, so readings depend only on the
// seed, the fleet shape, Rate, TimeScale and Start, never on wall-clock
// timing (except ts_ms).
//
// Configuration: DefaultConfig holds vpp sim's defaults (its flags are
// registered from it); start from it and change what differs. A zero field
// that means nothing at zero (fleet shape, time scale, intervals) also
// takes its default, a field whose zero means something (Count, Duration,
// DuplicateFrames) is used as given.
package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config (see DefaultConfig); the optional fields of a Config
// that are zero take them.
const (
	DefaultURL                  = "ws://127.0.0.1:8080/v1/telemetry" // DefaultURL is Config.URL in DefaultConfig: a local vpp ingest.
	DefaultDevices              = 1000                               // DefaultDevices is Config.Devices in DefaultConfig.
	DefaultRate                 = 10_000                             // DefaultRate is Config.Rate in DefaultConfig.
	DefaultSeed                 = 1                                  // DefaultSeed is Config.Seed in DefaultConfig.
	DefaultTimeScale            = 60.0                               // DefaultTimeScale is Config.TimeScale's default.
	DefaultFrameInterval        = 50 * time.Millisecond              // DefaultFrameInterval is Config.FrameInterval's default.
	DefaultMaxInFlight          = 1024                               // DefaultMaxInFlight is Config.MaxInFlight's largest default.
	MaxFleetInFlight            = 1 << 20                            // MaxFleetInFlight bounds the default unacked readings of the fleet.
	DefaultDrainTimeout         = 30 * time.Second                   // DefaultDrainTimeout is Config.DrainTimeout's default.
	DefaultMaxConns             = 256                                // DefaultMaxConns caps Config.Conns' default of min(Devices, 256).
	DefaultRegions              = 4                                  // DefaultRegions is Config.Regions' default.
	DefaultSubstationsPerRegion = 5                                  // DefaultSubstationsPerRegion is Config.SubstationsPerRegion's default.
	DefaultSitesPerSubstation   = 25                                 // DefaultSitesPerSubstation is Config.SitesPerSubstation's default.
)

// MaxFrameReadings is the most readings the simulator puts into one frame
// (one WebSocket message). A reading marshals to about 115 bytes, so a full
// frame is about 58 KB.
const MaxFrameReadings = 500

// cancelDrain is how long Run tries to drain after its context is cancelled.
const cancelDrain = 2 * time.Second

// ErrUnacked is returned (wrapped) by Run when some readings were still not
// acknowledged when the drain timeout expired.
var ErrUnacked = errors.New("readings unacknowledged")

// Config configures a simulation. Start from DefaultConfig and change what
// differs; a Config literal works too, as every optional field that is
// zero (none of them means anything at zero) selects its default. Count,
// Duration and DuplicateFrames are used as given: 0 is no limit and no
// duplicates.
type Config struct {
	URL      string        // ws://HOST:PORT/v1/telemetry
	Devices  int           // fleet size
	Rate     float64       // readings per second for the whole fleet
	Count    int64         // stop after Count readings in total (0 = no limit)
	Duration time.Duration // stop generating after this (0 = no limit)
	Seed     int64         // same seed (and same Start) → same readings
	// Conns is the number of WebSocket connections shared by devices
	// (gateway style); device i uses connection i mod Conns. 0 selects
	// min(Devices, 256); more than Devices is reduced to Devices.
	Conns int
	// Regions, SubstationsPerRegion and SitesPerSubstation give the fleet
	// shape (defaults 4, 5, 25); devices are spread round-robin over sites.
	Regions, SubstationsPerRegion, SitesPerSubstation int
	// Start is the simulated clock origin (zero = time.Now()); simulated
	// time advances TimeScale× wall time. Its zone gives the local time of
	// day of the daily pattern.
	Start     time.Time
	TimeScale float64 // simulated seconds per wall second (default 60)
	// FrameInterval is how often each connection flushes the readings due
	// into one frame (default 50ms).
	FrameInterval time.Duration
	// MaxInFlight is the number of unacked readings per device at which
	// that device pauses generating: backpressure. The default keeps the
	// whole fleet's unacked readings near MaxFleetInFlight (about 300 MB):
	// MaxFleetInFlight ÷ Devices, between 16 and DefaultMaxInFlight.
	MaxInFlight int
	// DrainTimeout is how long Run waits for all acks after generation
	// stops (default 30s).
	DrainTimeout time.Duration
	// DuplicateFrames is the fraction of frames sent twice (0..1), fault
	// injection for dedupe tests; the choice is deterministic per seed.
	DuplicateFrames float64
	Logger          *slog.Logger // default slog.Default()
	// TLS configures wss:// connections (nil: the system roots).
	TLS *tls.Config
	// Token is a bearer token sent on every handshake (a gateway token
	// covering the fleet's devices or sites). TokenFunc wins over it.
	Token string
	// TokenFunc, when set, mints the token of each connection attempt for
	// the devices it carries and their sites.
	TokenFunc TokenFunc
}

// TokenFunc returns the bearer token for a connection that carries devices
// at sites. It is called before every dial.
type TokenFunc func(ctx context.Context, devices, sites []string) (string, error)

// Stats is a snapshot of a running simulation's counters.
type Stats struct {
	Sent            int64         // distinct readings generated
	Acked           int64         // distinct readings acknowledged
	InFlight        int64         // Sent - Acked
	Retransmitted   int64         // readings sent again after a reconnect
	Frames          int64         // frames written, duplicates included
	DuplicateFrames int64         // frames written a second time on purpose
	Reconnects      int64         // connections re-established after a loss
	Errors          int64         // dial, read, write and protocol errors
	Rate            float64       // achieved readings per second (Sent/Elapsed)
	Elapsed         time.Duration // since Run started (frozen when it returns)
	Setpoints       SetpointStats // dispatch: setpoints received, followed, refused, ended
}

// Truth is the simulator's ground truth: what it generated and what was
// acknowledged. Totals are exact sums over each device's last generated
// reading.
type Truth struct {
	ReadingsSent  int64      `json:"readings_sent"`  // distinct readings generated (not counting retransmits/duplicates)
	ReadingsAcked int64      `json:"readings_acked"` // distinct readings acknowledged
	Devices       int        `json:"devices"`        // devices that sent at least one reading
	Fleet         FleetTruth `json:"fleet"`
}

// FleetTruth sums each device's last generated reading over the fleet.
type FleetTruth struct {
	Devices     int     `json:"devices"`      // devices with at least one reading
	PowerKW     float64 `json:"power_kw"`     // net power, > 0 discharging
	EnergyKWh   float64 `json:"energy_kwh"`   // Σ soc_pct/100 × capacity_kwh
	CapacityKWh float64 `json:"capacity_kwh"` // Σ capacity_kwh
}

// WriteFile writes t as indented JSON to path, atomically (a temporary file
// in the same directory, then a rename).
func (t Truth) WriteFile(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal truth: %w", err)
	}
	b = append(b, '\n')
	f, err := os.CreateTemp(filepath.Dir(path), ".truth-*.json")
	if err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write truth %s: %w", path, err)
	}
	return nil
}

// Sim is a simulated battery fleet. Create it with New and start it with
// Run; Stats and Truth may be called at any time from any goroutine.
type Sim struct {
	cfg   Config
	log   *slog.Logger
	shape Shape
	conns []*conn

	dt            float64 // simulated seconds per device step
	startSecOfDay float64 // Start as local seconds since midnight

	started atomic.Bool
	halted  atomic.Bool // generation stopped (duration, cancel, end of Run)

	mu    sync.Mutex // guards t0, end
	t0    time.Time  // Run start (schedule origin)
	end   time.Time  // Run end
	t0Set atomic.Bool
	t0ms  atomic.Int64 // t0 in Unix milliseconds, the due time of reading 0

	generated     atomic.Int64
	acked         atomic.Int64
	retransmitted atomic.Int64
	frames        atomic.Int64
	dupFrames     atomic.Int64
	reconnects    atomic.Int64
	errs          atomic.Int64
	sp            setpointCounters

	dialLog, lostLog, reconnLog logLimiter // rate limits for per-connection log lines

	writeBufs sync.Pool // the connections' WebSocket write buffers
}

// New validates cfg, fills in defaults and builds the fleet.
func New(cfg Config) (*Sim, error) {
	if err := normalize(&cfg); err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:   cfg,
		log:   cfg.Logger,
		shape: Shape{cfg.Regions, cfg.SubstationsPerRegion, cfg.SitesPerSubstation},
		dt:    float64(cfg.Devices) / cfg.Rate * cfg.TimeScale,
	}
	_, off := cfg.Start.Zone()
	local := cfg.Start.Unix() + int64(off)
	s.startSecOfDay = float64(((local%86400)+86400)%86400) + float64(cfg.Start.Nanosecond())/1e9

	s.conns = make([]*conn, cfg.Conns)
	for c := range s.conns {
		s.conns[c] = newConn(s, c)
	}
	for i := range cfg.Devices {
		d := newDevice(s.shape, cfg.Seed, i)
		c := s.conns[i%cfg.Conns]
		c.devs = append(c.devs, d)
		if c.byID == nil {
			c.byID = make(map[string]*device, cfg.Devices/cfg.Conns+1)
		}
		c.byID[d.id] = d
	}
	return s, nil
}

// DefaultConfig returns the Config of vpp sim's defaults: DefaultDevices
// devices sending DefaultRate readings per second in all to a local ingest
// at DefaultURL, with seed DefaultSeed, the default fleet shape, clock and
// frame interval; Conns and MaxInFlight stay 0, which derives them from
// Devices (see their fields).
func DefaultConfig() Config {
	return Config{
		URL:                  DefaultURL,
		Devices:              DefaultDevices,
		Rate:                 DefaultRate,
		Seed:                 DefaultSeed,
		Regions:              DefaultRegions,
		SubstationsPerRegion: DefaultSubstationsPerRegion,
		SitesPerSubstation:   DefaultSitesPerSubstation,
		TimeScale:            DefaultTimeScale,
		FrameInterval:        DefaultFrameInterval,
		DrainTimeout:         DefaultDrainTimeout,
	}
}

// normalize validates cfg and fills in its defaults.
func normalize(cfg *Config) error {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return fmt.Errorf("url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "" {
		return fmt.Errorf("url %q: want ws://HOST:PORT/PATH or wss://…", cfg.URL)
	}
	if cfg.Devices < 1 {
		return fmt.Errorf("devices %d: must be >= 1", cfg.Devices)
	}
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		return fmt.Errorf("rate %v: must be a finite number > 0", cfg.Rate)
	}
	if cfg.Count < 0 {
		return fmt.Errorf("count %d: must be >= 0", cfg.Count)
	}
	if cfg.Duration < 0 {
		return fmt.Errorf("duration %s: must be >= 0", cfg.Duration)
	}
	if cfg.Conns < 0 {
		return fmt.Errorf("conns %d: must be >= 0", cfg.Conns)
	}
	if cfg.Conns == 0 {
		cfg.Conns = min(cfg.Devices, DefaultMaxConns)
	}
	cfg.Conns = min(cfg.Conns, cfg.Devices)
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"regions", &cfg.Regions, DefaultRegions},
		{"substations per region", &cfg.SubstationsPerRegion, DefaultSubstationsPerRegion},
		{"sites per substation", &cfg.SitesPerSubstation, DefaultSitesPerSubstation},
	} {
		if *f.v < 0 {
			return fmt.Errorf("%s %d: must be >= 0", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if cfg.Regions*cfg.SubstationsPerRegion*cfg.SitesPerSubstation > 100_000_000 {
		return errors.New("fleet shape: more than 100M sites")
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if cfg.TimeScale < 0 || math.IsNaN(cfg.TimeScale) || math.IsInf(cfg.TimeScale, 0) {
		return fmt.Errorf("time scale %v: must be a finite number > 0", cfg.TimeScale)
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = DefaultTimeScale
	}
	if cfg.FrameInterval < 0 {
		return fmt.Errorf("frame interval %s: must be > 0", cfg.FrameInterval)
	}
	if cfg.FrameInterval == 0 {
		cfg.FrameInterval = DefaultFrameInterval
	}
	if cfg.MaxInFlight < 0 {
		return fmt.Errorf("max in flight %d: must be > 0", cfg.MaxInFlight)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = min(DefaultMaxInFlight, max(16, MaxFleetInFlight/max(cfg.Devices, 1)))
	}
	if cfg.DrainTimeout < 0 {
		return fmt.Errorf("drain timeout %s: must be > 0", cfg.DrainTimeout)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if !(cfg.DuplicateFrames >= 0 && cfg.DuplicateFrames <= 1) {
		return fmt.Errorf("duplicate frames %v: must be within 0..1", cfg.DuplicateFrames)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

// Config returns the configuration with its defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

// Run connects the fleet, generates readings on schedule, sends them,
// retransmits what was not acknowledged after a reconnect and, once
// generation stops (Count reached or Duration elapsed), waits up to
// DrainTimeout for the remaining acks. It returns nil when every generated
// reading was acknowledged, and an error wrapping ErrUnacked otherwise. When
// ctx is cancelled it stops generating, tries to drain for up to 2s and
// returns ctx.Err(). Run may be called only once.
func (s *Sim) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	s.mu.Lock()
	s.t0 = time.Now()
	s.t0ms.Store(s.t0.UnixMilli())
	s.mu.Unlock()
	s.t0Set.Store(true)
	s.log.Info("sim starting", "url", s.cfg.URL, "devices", s.cfg.Devices, "rate", s.cfg.Rate,
		"conns", s.cfg.Conns, "count", s.cfg.Count, "duration", s.cfg.Duration,
		"seed", s.cfg.Seed, "step_s", s.dt, "start", s.cfg.Start.Format(time.RFC3339))

	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Go(func() { c.run(connCtx) })
	}
	defer func() {
		s.halted.Store(true)
		cancelConns()
		wg.Wait()
		s.mu.Lock()
		s.end = time.Now()
		s.mu.Unlock()
		st := s.Stats()
		s.log.Info("sim stopped", "sent", st.Sent, "acked", st.Acked, "in_flight", st.InFlight,
			"retransmitted", st.Retransmitted, "reconnects", st.Reconnects, "errors", st.Errors,
			"elapsed", st.Elapsed.Round(time.Millisecond),
			"setpoints_received", st.Setpoints.Received, "setpoints_applied", st.Setpoints.Applied,
			"setpoint_latency_p50", st.Setpoints.LatencyP50, "setpoint_latency_p99", st.Setpoints.LatencyP99)
	}()

	// Generation phase.
	var stopGen <-chan time.Time
	if s.cfg.Count > 0 {
		// The schedule reaches Count at Count/Rate; devices held back by
		// backpressure keep catching up during the drain.
		t := time.NewTimer(time.Duration(float64(s.cfg.Count) / s.cfg.Rate * float64(time.Second)))
		defer t.Stop()
		stopGen = t.C
	}
	var durC <-chan time.Time
	if s.cfg.Duration > 0 {
		t := time.NewTimer(s.cfg.Duration)
		defer t.Stop()
		durC = t.C
	}
	select {
	case <-ctx.Done():
		s.halted.Store(true)
		s.drain(context.Background(), min(cancelDrain, s.cfg.DrainTimeout))
		return ctx.Err()
	case <-durC:
		s.halted.Store(true)
	case <-stopGen:
	}

	// Drain phase.
	if err := s.drain(ctx, s.cfg.DrainTimeout); err != nil {
		if ctx.Err() != nil {
			s.halted.Store(true)
			s.drain(context.Background(), cancelDrain)
			return ctx.Err()
		}
		return err
	}
	return nil
}

// done reports whether generation is complete and every reading acked.
func (s *Sim) done() bool {
	gen := s.generated.Load()
	if !s.halted.Load() && gen < s.cfg.Count {
		return false
	}
	return s.acked.Load() >= gen
}

// drain waits until done, timeout or ctx. It returns an error wrapping
// ErrUnacked on timeout and ctx.Err() on cancellation.
func (s *Sim) drain(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !s.done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			gen, acked := s.generated.Load(), s.acked.Load()
			if !s.halted.Load() && gen < s.cfg.Count {
				return fmt.Errorf("%w: %d of %d readings unacked and %d of %d not generated (backpressure) after drain timeout %s",
					ErrUnacked, gen-acked, gen, s.cfg.Count-gen, s.cfg.Count, timeout)
			}
			return fmt.Errorf("%w: %d of %d readings unacked after drain timeout %s", ErrUnacked, gen-acked, gen, timeout)
		case <-tick.C:
		}
	}
	return nil
}

// scheduled returns the number of fleet readings due at now: the global
// schedule index, capped at Count.
func (s *Sim) scheduled(now time.Time) int64 {
	s.mu.Lock()
	t0 := s.t0
	s.mu.Unlock()
	g := int64(now.Sub(t0).Seconds() * s.cfg.Rate)
	if s.cfg.Count > 0 && g > s.cfg.Count {
		g = s.cfg.Count
	}
	return max(g, 0)
}

// due returns how many readings device i has due when the fleet has n due.
func (s *Sim) due(i int, n int64) uint64 {
	d := int64(s.cfg.Devices)
	k := n / d
	if int64(i) < n%d {
		k++
	}
	return uint64(k)
}

// Stats returns a snapshot of the counters. It is safe to call concurrently.
func (s *Sim) Stats() Stats {
	st := Stats{
		Sent:            s.generated.Load(),
		Acked:           s.acked.Load(),
		Retransmitted:   s.retransmitted.Load(),
		Frames:          s.frames.Load(),
		DuplicateFrames: s.dupFrames.Load(),
		Reconnects:      s.reconnects.Load(),
		Errors:          s.errs.Load(),
		Setpoints:       s.sp.stats(),
	}
	st.InFlight = st.Sent - st.Acked
	if s.t0Set.Load() {
		s.mu.Lock()
		t0, end := s.t0, s.end
		s.mu.Unlock()
		if end.IsZero() {
			end = time.Now()
		}
		st.Elapsed = end.Sub(t0)
		if sec := st.Elapsed.Seconds(); sec > 0 {
			st.Rate = float64(st.Sent) / sec
		}
	}
	return st
}

// Truth returns the ground truth: readings generated and acked, and the
// fleet totals over each device's last generated reading. Call it after Run
// returns for final values; it is safe to call concurrently.
func (s *Sim) Truth() Truth {
	var t Truth
	for _, c := range s.conns {
		c.mu.Lock()
		for _, d := range c.devs {
			r := d.last
			if r == nil {
				continue
			}
			t.Devices++
			t.Fleet.PowerKW += r.PowerKw
			t.Fleet.EnergyKWh += r.SocPct / 100 * r.CapacityKwh
			t.Fleet.CapacityKWh += r.CapacityKwh
		}
		c.mu.Unlock()
	}
	t.Fleet.Devices = t.Devices
	t.ReadingsSent = s.generated.Load()
	t.ReadingsAcked = s.acked.Load()
	return t
}
