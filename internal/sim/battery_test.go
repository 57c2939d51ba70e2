package sim

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// stored returns the battery's stored energy in kWh.
func stored(b *battery) float64 { return b.socPct / 100 * b.capKWh }

func TestBatterySoCBoundsAndLimitsWithRandomSetpoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 0))
	for dev := range 50 {
		b := newBattery(7, dev)
		for step := range 20000 {
			maxKW := math.Max(b.maxChargeKW, b.maxDischargeKW)
			sp := (rng.Float64()*2 - 1) * 2 * maxKW // often beyond the limits
			if step%97 == 0 {
				sp = math.Copysign(1e9, sp) // absurd setpoints too
			}
			dt := 1 + rng.Float64()*3600
			p := b.apply(sp, dt, 20)
			if b.socPct < 0 || b.socPct > 100 || math.IsNaN(b.socPct) {
				t.Fatalf("device %d step %d: soc %v out of 0..100", dev, step, b.socPct)
			}
			if p < -b.maxChargeKW-1e-9 || p > b.maxDischargeKW+1e-9 || math.IsNaN(p) {
				t.Fatalf("device %d step %d: power %v outside [-%v, %v]", dev, step, p, b.maxChargeKW, b.maxDischargeKW)
			}
			if sp > 0 && p < 0 || sp < 0 && p > 0 {
				t.Fatalf("device %d step %d: setpoint %v but power %v has the other sign", dev, step, sp, p)
			}
		}
	}
}

func TestBatteryEnergyConservation(t *testing.T) {
	// Hard numbers first: 1 kW for one hour charges 0.95 kWh into the cells
	// and discharging 1 kW for one hour takes 1/0.95 kWh out of them.
	b := newBattery(1, 0)
	b.socPct = 50
	e0 := stored(b)
	if p := b.apply(-1, 3600, 20); p != -1 {
		t.Fatalf("charge 1 kW: got power %v", p)
	}
	if got := stored(b) - e0; math.Abs(got-0.95) > 1e-9 {
		t.Fatalf("1 kWh charged at the grid stored %v kWh, want 0.95", got)
	}
	e0 = stored(b)
	if p := b.apply(1, 3600, 20); p != 1 {
		t.Fatalf("discharge 1 kW: got power %v", p)
	}
	if got := e0 - stored(b); math.Abs(got-1/0.95) > 1e-9 {
		t.Fatalf("1 kWh delivered took %v kWh from the cells, want %v", got, 1/0.95)
	}

	// Then a long random run: ΔSoC × capacity equals ∫P dt with the one-way
	// efficiencies, summed independently of the model.
	rng := rand.New(rand.NewPCG(3, 3))
	for dev := range 20 {
		b := newBattery(9, dev)
		start := stored(b)
		var cells float64 // energy into the cells, kWh
		var gridIn, gridOut float64
		for range 5000 {
			sp := (rng.Float64()*2 - 1) * b.maxDischargeKW
			dt := 60 + rng.Float64()*600
			p := b.apply(sp, dt, 20)
			if p > 0 {
				cells -= p * dt / 3600 / 0.95
				gridOut += p * dt / 3600
			} else {
				cells -= p * dt / 3600 * 0.95
				gridIn -= p * dt / 3600
			}
		}
		if gridIn < b.capKWh || gridOut < b.capKWh {
			t.Fatalf("device %d: run too short to test anything (in %v, out %v kWh)", dev, gridIn, gridOut)
		}
		got := stored(b) - start
		if math.Abs(got-cells) > 1e-6*b.capKWh {
			t.Fatalf("device %d: stored energy changed by %v kWh, ∫P dt with efficiency gives %v", dev, got, cells)
		}
	}
}

func TestBatteryEmptyNeverDischargesFullNeverCharges(t *testing.T) {
	for dev := range 20 {
		b := newBattery(5, dev)
		b.socPct = 0
		if p := b.apply(b.maxDischargeKW, 60, 20); p > 0 {
			t.Fatalf("device %d: empty battery discharged %v kW", dev, p)
		}
		b.socPct = 100
		if p := b.apply(-b.maxChargeKW, 60, 20); p < 0 {
			t.Fatalf("device %d: full battery charged %v kW", dev, p)
		}
		// Near the ends the limit tapers, and one long step cannot overshoot.
		b.socPct = 1
		if p := b.apply(b.maxDischargeKW, 60, 20); p > b.maxDischargeKW*1/taperPct+1e-9 {
			t.Fatalf("device %d: at 1%% SoC discharged %v kW, taper allows %v", dev, p, b.maxDischargeKW/taperPct)
		}
		b.socPct = 0.5
		b.apply(b.maxDischargeKW, 86400, 20)
		if b.socPct < 0 {
			t.Fatalf("device %d: soc %v after a long discharge", dev, b.socPct)
		}
	}
}

func TestBatteryTemperatureFollowsLoad(t *testing.T) {
	b := newBattery(2, 0)
	b.socPct = 50
	b.tempC = 20
	// Hold full power, alternating direction, for two hours.
	for i := range 120 {
		sp := b.maxDischargeKW
		if i%2 == 1 {
			sp = -b.maxChargeKW
		}
		b.apply(sp, 60, 20)
	}
	hot := b.tempC
	if hot < 25 {
		t.Fatalf("after two hours at full power the temperature is %v °C, want well above ambient 20 °C", hot)
	}
	for range 240 {
		b.apply(0, 60, 20)
	}
	if b.tempC >= hot || math.Abs(b.tempC-20) > 1 {
		t.Fatalf("after four idle hours the temperature is %v °C (was %v), want back near ambient 20 °C", b.tempC, hot)
	}
}

// runDevices steps the given devices of a sim through n readings each,
// without a network, and returns the readings with ts_ms cleared.
func runDevices(t *testing.T, cfg Config, n int) [][]*vppv1.Reading {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]*vppv1.Reading, cfg.Devices)
	for _, c := range s.conns {
		for _, d := range c.devs {
			for range n {
				r := proto.Clone(s.next(d)).(*vppv1.Reading)
				r.TsMs = 0
				out[d.idx] = append(out[d.idx], r)
			}
		}
	}
	return out
}

func TestReadingsDeterministic(t *testing.T) {
	start := time.Date(2026, 6, 21, 0, 0, 0, 0, time.UTC)
	cfg := Config{URL: "ws://x/v1/telemetry", Devices: 20, Rate: 20, Seed: 11, Start: start, TimeScale: 600, Logger: discard()}
	a := runDevices(t, cfg, 500)
	b := runDevices(t, cfg, 500)
	for i := range a {
		for k := range a[i] {
			if !proto.Equal(a[i][k], b[i][k]) {
				t.Fatalf("same seed: device %d reading %d differs:\n%v\n%v", i, k, a[i][k], b[i][k])
			}
		}
	}
	cfg.Seed = 12
	c := runDevices(t, cfg, 500)
	same := 0
	for i := range a {
		if proto.Equal(a[i][len(a[i])-1], c[i][len(c[i])-1]) {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("different seed: %d of %d devices produced identical readings", same, len(a))
	}
}

// TestReadingsPlausible runs a fleet through simulated weeks and checks what
// ingest validates and what a power engineer expects.
func TestReadingsPlausible(t *testing.T) {
	const devices = 200
	start := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	// 10-minute steps: Devices/Rate × TimeScale = 200/200 × 600 s.
	cfg := Config{URL: "ws://x/v1/telemetry", Devices: devices, Rate: devices, Seed: 1, Start: start, TimeScale: 600, Logger: discard()}
	const steps = 6 * 24 * 14 // two weeks
	all := runDevices(t, cfg, steps)

	var faults, lowSoC, overTemp, commercial int
	var noonKW, eveningKW, nightKW float64
	for i, rs := range all {
		if rs[0].CapacityKwh > 40 {
			commercial++
		}
		for k, r := range rs {
			if r.Seq != uint64(k+1) {
				t.Fatalf("device %d reading %d: seq %d", i, k, r.Seq)
			}
			for _, v := range []float64{r.SocPct, r.SohPct, r.PowerKw, r.VoltageV, r.CurrentA, r.TemperatureC, r.CapacityKwh, r.MaxChargeKw, r.MaxDischargeKw} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("device %d reading %d: non-finite value in %v", i, k, r)
				}
			}
			if r.SocPct < 0 || r.SocPct > 100 || r.SohPct < 80 || r.SohPct > 100 {
				t.Fatalf("device %d reading %d: soc %v soh %v", i, k, r.SocPct, r.SohPct)
			}
			if r.PowerKw < -r.MaxChargeKw || r.PowerKw > r.MaxDischargeKw {
				t.Fatalf("device %d reading %d: power %v outside limits", i, k, r.PowerKw)
			}
			if r.VoltageV <= 0 || r.TemperatureC < -50 || r.TemperatureC > 150 || r.CapacityKwh <= 0 {
				t.Fatalf("device %d reading %d: implausible %v", i, k, r)
			}
			if math.Abs(r.CurrentA-r.PowerKw*1000/r.VoltageV) > 1e-9 {
				t.Fatalf("device %d reading %d: current %v != P/V", i, k, r.CurrentA)
			}
			switch r.Mode {
			case vppv1.Mode_MODE_FAULT:
				faults++
				if r.PowerKw != 0 || r.Alarms&uint32(vppv1.Alarm_ALARM_BMS_FAULT|vppv1.Alarm_ALARM_INVERTER_FAULT) == 0 {
					t.Fatalf("device %d reading %d: fault with power %v alarms %b", i, k, r.PowerKw, r.Alarms)
				}
			case vppv1.Mode_MODE_CHARGING:
				if r.PowerKw >= 0 {
					t.Fatalf("device %d reading %d: charging with power %v", i, k, r.PowerKw)
				}
			case vppv1.Mode_MODE_DISCHARGING:
				if r.PowerKw <= 0 {
					t.Fatalf("device %d reading %d: discharging with power %v", i, k, r.PowerKw)
				}
			case vppv1.Mode_MODE_IDLE:
				if r.PowerKw != 0 {
					t.Fatalf("device %d reading %d: idle with power %v", i, k, r.PowerKw)
				}
			default:
				t.Fatalf("device %d reading %d: mode %v", i, k, r.Mode)
			}
			if low := r.Alarms&uint32(vppv1.Alarm_ALARM_LOW_SOC) != 0; low != (r.SocPct < lowSoCAlarmPct) {
				t.Fatalf("device %d reading %d: low-SoC alarm %v at soc %v", i, k, low, r.SocPct)
			}
			if hot := r.Alarms&uint32(vppv1.Alarm_ALARM_OVER_TEMPERATURE) != 0; hot != (r.TemperatureC > overTempAlarmC) {
				t.Fatalf("device %d reading %d: over-temperature alarm %v at %v °C", i, k, hot, r.TemperatureC)
			}
			if r.SocPct < lowSoCAlarmPct {
				lowSoC++
			}
			if r.TemperatureC > overTempAlarmC {
				overTemp++
			}
			// Reading k (0-based) of device i ends at simulated time
			// ((k·Devices + i)/Rate) × TimeScale after midnight UTC.
			g := k*devices + i
			h := math.Mod(float64(g)/cfg.Rate*cfg.TimeScale, 86400) / 3600
			switch {
			case h >= 11 && h < 14:
				noonKW += r.PowerKw
			case h >= 18 && h < 21:
				eveningKW += r.PowerKw
			case h >= 1 && h < 4:
				nightKW += r.PowerKw
			}
		}
	}
	t.Logf("commercial %d/%d, fault readings %d, low-SoC %d, over-temperature %d, noon %.0f, evening %.0f, night %.0f",
		commercial, devices, faults, lowSoC, overTemp, noonKW, eveningKW, nightKW)
	if commercial == 0 || commercial > devices/3 {
		t.Errorf("commercial units: %d of %d, want some but a minority", commercial, devices)
	}
	if faults == 0 {
		t.Errorf("no fault in %d device-weeks", devices*2)
	}
	if noonKW >= 0 {
		t.Errorf("fleet power around noon %v, want charging (< 0)", noonKW)
	}
	if eveningKW <= 0 {
		t.Errorf("fleet power in the evening %v, want discharging (> 0)", eveningKW)
	}
	if nightKW != 0 {
		t.Errorf("fleet power at night %v, want idle", nightKW)
	}
	if lowSoC == 0 || lowSoC > devices*steps/20 {
		t.Errorf("low-SoC readings %d of %d, want some but rare", lowSoC, devices*steps)
	}
	if overTemp > devices*steps/20 {
		t.Errorf("over-temperature readings %d of %d, want rare", overTemp, devices*steps)
	}
}

func TestShapePlace(t *testing.T) {
	sh := Shape{Regions: 7, SubstationsPerRegion: 3, SitesPerSubstation: 4}
	siteOf := map[string][2]string{}
	regions := map[string]bool{}
	for i := range 500 {
		dev, site, sub, reg := sh.Place(i)
		for _, id := range []string{dev, site, sub, reg} {
			if len(id) < 1 || len(id) > 64 {
				t.Fatalf("device %d: id %q length", i, id)
			}
		}
		if want := [2]string{sub, reg}; siteOf[site] != want && siteOf[site] != [2]string{} {
			t.Fatalf("site %s is in %v and in %v", site, siteOf[site], want)
		}
		siteOf[site] = [2]string{sub, reg}
		regions[reg] = true
	}
	if len(siteOf) != sh.Sites() || len(regions) != 7 {
		t.Fatalf("got %d sites and %d regions, want %d and 7", len(siteOf), len(regions), sh.Sites())
	}
	for _, r := range []string{"north", "south", "east", "west", "central", "region-5", "region-6"} {
		if !regions[r] {
			t.Errorf("region %s missing from %v", r, regions)
		}
	}
	if d, s, sub, r := sh.Place(123); d != "dev-000123" || s != "site-0039" || sub != "sub-09" || r != "west" {
		t.Errorf("Place(123) = %s %s %s %s", d, s, sub, r)
	}
}

// TestTimestampIsScheduledTime checks that a reading's ts_ms is the time the
// schedule made it due (origin + g/Rate), whenever it is generated, so
// latency measured from it includes any delay in generating it.
func TestTimestampIsScheduledTime(t *testing.T) {
	s, err := New(Config{URL: "ws://127.0.0.1:1/v1/telemetry", Devices: 10, Rate: 400, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	const origin = 1_700_000_000_000
	s.t0ms.Store(origin)
	for _, c := range s.conns {
		for _, d := range c.devs {
			for k := range 5 {
				r := s.next(d)
				g := int64(k*10 + d.idx) // the reading's place in the fleet's schedule
				if want := origin + g*1000/400; r.GetTsMs() != want {
					t.Fatalf("device %d reading %d: ts %d, want %d", d.idx, k+1, r.GetTsMs(), want)
				}
			}
		}
	}
}

// specials are the float64 values at the edges of the helpers' fast paths.
var specials = []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1),
	math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64,
	1, -1, 24, 86400, 1 << 52, 1<<52 - 0.5, 1<<53 + 2, math.Nextafter(86400, 0), math.Nextafter(24, 100)}

// TestModMatchesMathMod compares mod with math.Mod bit for bit.
func TestModMatchesMathMod(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, y := range []float64{24, 86400, 1, 7, 3600} {
		xs := append([]float64(nil), specials...)
		for range 200000 {
			var x float64
			switch rng.IntN(6) {
			case 0: // next to a multiple of y, where x/y rounds to an integer
				k := float64(rng.IntN(1 << 20))
				x = k * y
				for range rng.IntN(4) {
					x = math.Nextafter(x, math.Inf(2*rng.IntN(2)-1))
				}
			case 1:
				x = rng.Float64() * y
			case 2:
				x = rng.Float64() * 1e7
			case 3:
				x = math.Ldexp(rng.Float64(), rng.IntN(120)-60)
			case 4:
				x = math.Float64frombits(rng.Uint64())
			default:
				x = -rng.Float64() * 1e5
			}
			xs = append(xs, x)
		}
		for _, x := range xs {
			if got, want := mod(x, y), math.Mod(x, y); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("mod(%v, %v) = %v, math.Mod = %v", x, y, got, want)
			}
		}
	}
}

// TestMinMaxMatchMath compares fmin and fmax with math.Min and math.Max
// bit for bit.
func TestMinMaxMatchMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	xs := append([]float64(nil), specials...)
	for range 1000 {
		xs = append(xs, rng.NormFloat64()*100, math.Float64frombits(rng.Uint64()))
	}
	for _, x := range xs {
		for _, y := range xs {
			if got, want := fmin(x, y), math.Min(x, y); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("fmin(%v, %v) = %v, math.Min = %v", x, y, got, want)
			}
			if got, want := fmax(x, y), math.Max(x, y); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("fmax(%v, %v) = %v, math.Max = %v", x, y, got, want)
			}
		}
	}
}

// TestStepCoeffsFollowDt checks that the coefficients cached per battery
// are those of the step length asked for, when it changes too.
func TestStepCoeffsFollowDt(t *testing.T) {
	b := newBattery(1, 1)
	for _, dt := range []float64{60, 60, 1, 3600, 60, 1e-9} {
		c := b.coeffs(dt)
		rho := math.Exp(-dt / noiseTau)
		if c.noiseRho != rho || c.noiseGain != math.Sqrt(1-rho*rho) ||
			c.faultP != 1-math.Exp(-dt/meanTimeBetweenFaults) || c.thermalGain != 1-math.Exp(-dt/thermalTau) {
			t.Fatalf("coefficients for dt %v: %+v", dt, *c)
		}
	}
}
