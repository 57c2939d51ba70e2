package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/status"
	"github.com/vppctl/vpp/internal/tlsutil"
)

// defaultSimTokenTTL is the lifetime of the tokens vpp sim mints with
// --token-key.
const defaultSimTokenTTL = time.Hour

const simLong = `Simulate a fleet of batteries that stream telemetry to vpp ingest.

Every device is a battery with its own size (residential 5–15 kWh or
commercial 50–500 kWh), state of health and power limits. A local
controller charges it from the midday solar surplus and discharges it into
the evening peak; state of charge integrates power with 95 % efficiency each
way, voltage follows the state of charge, temperature follows the load, and
rare faults take a device offline for a while.

Devices are spread round-robin over sites, sites over substations and
substations over regions. They share --conns WebSocket connections (like
gateways) and send binary protobuf frames every --frame-interval; the fleet
as a whole sends --rate readings per second, each device once every
devices/rate seconds. Simulated time runs --time-scale times faster than the
wall clock, so with the default of 60 a day passes in 24 minutes. The same
--seed and --start give the same readings.

Ingest acknowledges readings once they are durable. A device keeps every
unacked reading and stops generating when it has --max-in-flight of them
(backpressure); after a reconnect it sends all of them again, in order,
before new ones. When generation stops (--count reached or --duration over)
the simulator waits up to --drain-timeout for the last acks. It exits with
status 1 if some readings were never acknowledged.

--truth writes the ground truth as JSON at the end (also when interrupted):
the readings sent and acked, and the fleet's power, stored energy and
capacity summed over each device's last reading. Once the fleet is quiet,
the aggregator's fleet totals must equal it.

Ctrl-C stops generating, drains for up to two seconds, writes the truth file
and exits 0.`

const simExample = `  # 1000 devices, 10k readings/s, until Ctrl-C
  vpp sim

  # Exactly one million readings from 10k devices, then check the totals
  vpp sim --devices 10k --rate 50k --count 1M --truth truth.json

  # A reproducible day: fixed start and seed, one simulated day in 24 s
  vpp sim --start 2026-06-21T00:00:00Z --seed 7 --time-scale 3600 --duration 24s

  # Fault injection for dedupe tests: send 10 % of frames twice
  vpp sim --count 100k --duplicate-frames 0.1 --truth truth.json`

// simOptions are the parsed flags of vpp sim.
type simOptions struct {
	cfg     sim.Config
	rate    flagval.Count
	devices flagval.Count
	count   flagval.Count
	start   string
	truth   string
	quiet   bool

	tokenKey string
	tokenTTL time.Duration
	caFile   string

	errOut io.Writer // the status line and the summary
}

// newSimCmd is `vpp sim`; runF, when not nil, runs instead of runSim with
// the parsed options (for tests).
func newSimCmd(runF func(context.Context, *simOptions) error) *cobra.Command {
	def := sim.DefaultConfig()
	o := &simOptions{
		cfg:     def,
		rate:    flagval.Count{V: def.Rate},
		devices: flagval.Count{V: float64(def.Devices)},
	}
	cmd := &cobra.Command{
		Use:     "sim",
		Short:   "Simulate a battery fleet streaming telemetry to ingest",
		Long:    simLong,
		Example: simExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.cfg.Devices, err = wholeCount("--devices", o.devices.V); err != nil {
				return err
			}
			n, err := wholeCount("--count", o.count.V)
			if err != nil {
				return err
			}
			o.cfg.Count = int64(n)
			o.cfg.Rate = o.rate.V
			if o.start != "" {
				if o.cfg.Start, err = time.Parse(time.RFC3339, o.start); err != nil {
					return usageError{fmt.Errorf("--start: want RFC3339 such as 2026-06-21T00:00:00Z: %w", err)}
				}
			}
			if o.tokenKey != "" && o.cfg.Token != "" {
				return usageError{errors.New("--token and --token-key: choose one")}
			}
			o.errOut = cmd.ErrOrStderr()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSim(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.URL, "url", def.URL, "ingest WebSocket URL")
	f.Var(&o.devices, "devices", "fleet size (SI suffixes: 10k)")
	f.Var(&o.rate, "rate", "readings per second for the whole fleet (SI suffixes: 10k, 1.5M)")
	f.Var(&o.count, "count", "stop after this many readings in total, 0 = no limit (SI suffixes: 1M)")
	f.DurationVar(&o.cfg.Duration, "duration", def.Duration, "stop generating after this long, 0 = no limit")
	f.Int64Var(&o.cfg.Seed, "seed", def.Seed, "random seed: the same seed and --start give the same readings")
	f.IntVar(&o.cfg.Conns, "conns", def.Conns, fmt.Sprintf("WebSocket connections shared by the devices (default min(devices, %d))", sim.DefaultMaxConns))
	f.IntVar(&o.cfg.Regions, "regions", def.Regions, "regions in the fleet")
	f.IntVar(&o.cfg.SubstationsPerRegion, "substations", def.SubstationsPerRegion, "substations per region")
	f.IntVar(&o.cfg.SitesPerSubstation, "sites", def.SitesPerSubstation, "sites per substation (devices are spread round-robin over sites)")
	f.Float64Var(&o.cfg.TimeScale, "time-scale", def.TimeScale, "simulated seconds per wall-clock second")
	f.StringVar(&o.start, "start", "", "simulated clock origin, RFC3339 (default now)")
	f.DurationVar(&o.cfg.FrameInterval, "frame-interval", def.FrameInterval, "how often each connection sends the readings due as one frame")
	f.IntVar(&o.cfg.MaxInFlight, "max-in-flight", def.MaxInFlight, "unacked readings per device before it pauses (backpressure); 0: about 1M for the fleet (1M ÷ devices, 16 to 1024 per device)")
	f.DurationVar(&o.cfg.DrainTimeout, "drain-timeout", def.DrainTimeout, "after generation stops, how long to wait for the last acks")
	f.Float64Var(&o.cfg.DuplicateFrames, "duplicate-frames", def.DuplicateFrames, "fault injection: fraction of frames sent twice, 0..1")
	f.StringVar(&o.truth, "truth", "", "write the ground truth as JSON to this `file` at the end")
	f.BoolVar(&o.quiet, "quiet", false, "no live status line and no summary")
	f.StringVar(&o.cfg.Token, "token", "", "bearer token sent on every connection (vpp token issue; prefer $VPP_TOKEN over the command line)")
	f.StringVar(&o.tokenKey, "token-key", "", "mint a token per connection covering its devices' sites with this signing key `file` (HMAC secret or Ed25519 private key)")
	f.DurationVar(&o.tokenTTL, "token-ttl", defaultSimTokenTTL, "lifetime of the tokens minted with --token-key (a connection is closed when its token expires and reconnects with a new one)")
	f.StringVar(&o.caFile, "ca", "", "trust the CA certificates in this PEM `file` for wss:// (default: the system roots)")
	return cmd
}

// wholeCount converts a count flag's value to an int.
func wholeCount(flag string, v float64) (int, error) {
	if v != math.Trunc(v) || v > math.MaxInt32*1024.0 {
		return 0, usageError{fmt.Errorf("%s %v: want a whole number", flag, v)}
	}
	return int(v), nil
}

// runSim loads the token key and the CA as o says, runs the simulator
// with a status line on o.errOut once a second, writes the truth file and
// maps the outcome to the command's error.
func runSim(ctx context.Context, o *simOptions) error {
	cfg := o.cfg
	cfg.Logger = slog.Default()
	if o.tokenKey != "" {
		key, err := auth.LoadKey(o.tokenKey)
		if err != nil {
			return usageError{fmt.Errorf("--token-key: %w", err)}
		}
		if !key.CanSign() {
			return usageError{fmt.Errorf("--token-key: a %s cannot sign; give the HMAC secret or the Ed25519 private key", key)}
		}
		cfg.TokenFunc = auth.SiteMinter(key, "vpp-sim", o.tokenTTL)
	}
	if o.caFile != "" {
		tc, err := tlsutil.ClientConfig(o.caFile)
		if err != nil {
			return usageError{fmt.Errorf("--ca: %w", err)}
		}
		cfg.TLS = tc
	}
	s, err := sim.New(cfg)
	if err != nil {
		return usageError{err}
	}
	return simulate(ctx, s, o.errOut, o.truth, o.quiet)
}

// simulate runs s with a status line on w once a second, writes the truth
// file and maps the outcome to the command's error.
func simulate(ctx context.Context, s *sim.Sim, w io.Writer, truthPath string, quiet bool) error {
	stop := func() {}
	if !quiet {
		stop = status.Start(w, time.Second, simStatus(s))
	}
	err := s.Run(ctx)
	stop()

	st := s.Stats()
	if !quiet {
		fmt.Fprintf(w, "sim: %s readings sent, %s acked, %d unacked in %s (%s/s), %s retransmitted, %d duplicate frames, %d reconnects, %d errors\n",
			flagval.FormatCount(float64(st.Sent)), flagval.FormatCount(float64(st.Acked)), st.InFlight,
			st.Elapsed.Round(time.Millisecond), flagval.FormatCount(st.Rate),
			flagval.FormatCount(float64(st.Retransmitted)), st.DuplicateFrames, st.Reconnects, st.Errors)
		if sp := setpointSummary(st.Setpoints); sp != "" {
			fmt.Fprintf(w, "sim: %s\n", sp)
		}
	}
	if truthPath != "" {
		if werr := s.Truth().WriteFile(truthPath); werr != nil {
			return werr
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		if !quiet {
			if st.InFlight > 0 {
				fmt.Fprintf(w, "sim: interrupted; %d readings were not acknowledged\n", st.InFlight)
			} else {
				fmt.Fprintln(w, "sim: interrupted")
			}
		}
		return nil
	case errors.Is(err, sim.ErrUnacked):
		return fmt.Errorf("not every reading was acknowledged by ingest (is it running and healthy?): %w", err)
	}
	return err
}

// simStatus returns the status line of s: sent, acked, the last second's
// rate, in flight, reconnects and errors.
func simStatus(s *sim.Sim) func() string {
	var sent status.Rate // on the simulator's elapsed time, from 0
	return func() string {
		st := s.Stats()
		rate := sent.Observe(uint64(st.Sent), time.Time{}.Add(st.Elapsed))
		line := fmt.Sprintf("sent %s  acked %s  rate %s/s  in-flight %d  reconnects %d  errors %d  elapsed %s",
			flagval.FormatCount(float64(st.Sent)), flagval.FormatCount(float64(st.Acked)), flagval.FormatCount(rate),
			st.InFlight, st.Reconnects, st.Errors, st.Elapsed.Round(time.Second))
		if sp := st.Setpoints; sp.Received > 0 {
			line += fmt.Sprintf("  setpoints %d (p99 %s)", sp.Received, sp.LatencyP99)
		}
		return line
	}
}

// setpointSummary describes the setpoints the devices received, followed,
// refused and ended, and the latency from a dispatch's creation to the
// first reading following it; empty when none arrived.
func setpointSummary(sp sim.SetpointStats) string {
	if sp.Received == 0 && sp.Unknown == 0 {
		return ""
	}
	var refused, ended int64
	for _, n := range sp.Refused {
		refused += n
	}
	for _, n := range sp.Ended {
		ended += n
	}
	return fmt.Sprintf("%d setpoints received (%d for devices not held), %d followed, %d refused, %d ended; latency to the first reading following one p50 %s, p99 %s (bucket bounds)",
		sp.Received, sp.Unknown, sp.Applied, refused, ended, sp.LatencyP50, sp.LatencyP99)
}
