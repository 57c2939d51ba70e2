package sim

import (
	"math"
	"math/rand/v2"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Battery model constants. Times are in simulated seconds.
const (
	// effCharge and effDischarge are the one-way efficiencies between the grid
	// connection and the cells (about 90 % round trip).
	effCharge    = 0.95
	effDischarge = 0.95

	// taperPct is the SoC band next to empty and full in which the power limit
	// falls linearly to zero (the BMS tapers current near the ends).
	taperPct = 5.0

	// deadbandFrac is the fraction of the larger power limit below which a
	// device counts (and reports) as idle with zero power.
	deadbandFrac = 0.01

	// thermalTau is the time constant of the cell temperature's first-order
	// lag towards ambient plus load heating.
	thermalTau = 1800.0

	// noiseTau is the correlation time of the setpoint noise (clouds, loads).
	noiseTau = 900.0

	// meanTimeBetweenFaults is the mean simulated time between two faults of
	// one device; faults last between faultMin and faultMax.
	meanTimeBetweenFaults = 20 * 86400.0
	faultMin              = 10 * 60.0
	faultMax              = 60 * 60.0

	// lowSoCAlarmPct and overTempAlarmC are the alarm thresholds.
	lowSoCAlarmPct = 10.0
	overTempAlarmC = 50.0
)

// battery is one simulated battery: nameplate data, the local controller's
// daily schedule and the physical state. It is not safe for concurrent use.
type battery struct {
	rng *rand.Rand

	// Nameplate and condition.
	ratedKWh       float64 // capacity when new
	sohPct         float64 // state of health
	capKWh         float64 // usable capacity = ratedKWh × sohPct/100
	maxChargeKW    float64 // magnitude
	maxDischargeKW float64
	nominalV       float64 // nominal DC bus voltage
	thermalK       float64 // °C of steady-state heating per kW

	// Controller behaviour.
	phaseH        float64 // schedule shift in hours
	solarFrac     float64 // midday charge amplitude, fraction of maxChargeKW
	peakFrac      float64 // evening discharge amplitude, fraction of maxDischargeKW
	reservePct    float64 // the controller does not discharge below this SoC
	topPct        float64 // the controller does not charge above this SoC
	ambientOffset float64 // °C, the site's climate relative to the region's
	noise         float64 // current value of the correlated setpoint noise (-1..1 typ.)

	// Physical state.
	socPct     float64
	tempC      float64
	faultLeft  float64 // simulated seconds of fault remaining; > 0 means faulted
	faultAlarm uint32  // the alarm bit of the current fault

	coef stepCoeffs // of the last step length
}

// stepCoeffs are the factors of a step of dt seconds that depend on dt
// alone. A fleet steps every battery by the same dt, so they are computed
// once per battery, not per reading.
type stepCoeffs struct {
	ok          bool
	dt          float64
	noiseRho    float64 // exp(-dt/noiseTau)
	noiseGain   float64 // sqrt(1 - noiseRho²)
	faultP      float64 // probability that a fault starts within the step
	thermalGain float64 // fraction of the way to the target temperature
}

// coeffs returns the coefficients of a step of dt seconds.
func (b *battery) coeffs(dt float64) *stepCoeffs {
	c := &b.coef
	if !c.ok || c.dt != dt {
		rho := math.Exp(-dt / noiseTau)
		*c = stepCoeffs{
			ok:          true,
			dt:          dt,
			noiseRho:    rho,
			noiseGain:   math.Sqrt(1 - rho*rho),
			faultP:      1 - math.Exp(-dt/meanTimeBetweenFaults),
			thermalGain: 1 - math.Exp(-dt/thermalTau),
		}
	}
	return c
}

// fmax returns math.Max(x, y), the same bits, and is inlined (math.Max is
// a call to assembly): when one operand is greater than the other, which
// rules out NaNs and signed zeros, it is the result; ties and NaNs take
// math.Max.
func fmax(x, y float64) float64 {
	if x > y {
		return x
	}
	if y > x {
		return y
	}
	return math.Max(x, y)
}

// fmin returns math.Min(x, y), the same bits, and is inlined (see fmax).
func fmin(x, y float64) float64 {
	if x < y {
		return x
	}
	if y < x {
		return y
	}
	return math.Min(x, y)
}

// mod returns math.Mod(x, y), the same bits, for a positive integer y,
// without math.Mod's bit-by-bit loop when 0 < x < 2^52. There
// n = trunc(x/y) is ⌊x/y⌋, or one more when x/y rounds up to an integer;
// n·y is an integer below 2^53, so exact, and x − n·y is exact too (both
// are multiples of x's ulp, and the difference is at most x in
// magnitude), as is adding y back when n was one too many: the result is
// the exact remainder, which is what math.Mod returns.
func mod(x, y float64) float64 {
	if !(x > 0 && x < 1<<52) {
		return math.Mod(x, y)
	}
	r := x - float64(int64(x/y))*y
	if r < 0 {
		r += y
	}
	return r
}

// newBattery builds the battery of device index with the given seed. The same
// (seed, index) always gives the same battery and the same readings.
func newBattery(seed int64, index int) *battery {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(index)))
	b := &battery{rng: rng}
	if rng.Float64() < 0.1 {
		// Commercial or community battery: 50–500 kWh, 0.5C.
		b.ratedKWh = 50 + rng.Float64()*450
		b.maxDischargeKW = b.ratedKWh * (0.4 + 0.1*rng.Float64())
		b.nominalV = 800
	} else {
		// Residential battery: 5–15 kWh, 3–5 kW.
		b.ratedKWh = 5 + rng.Float64()*10
		b.maxDischargeKW = 3 + rng.Float64()*2
		b.nominalV = 400
	}
	b.maxChargeKW = b.maxDischargeKW * (0.8 + 0.2*rng.Float64())
	b.sohPct = 80 + rng.Float64()*20
	b.capKWh = b.ratedKWh * b.sohPct / 100
	// Full power heats the hottest cell by 15–35 °C above ambient: a few
	// poorly ventilated units reach the over-temperature alarm on hot days.
	b.thermalK = (15 + rng.Float64()*20) / math.Max(b.maxChargeKW, b.maxDischargeKW)

	b.phaseH = (rng.Float64() - 0.5) * 1.5
	b.solarFrac = 0.3 + rng.Float64()*0.7
	b.peakFrac = 0.5 + rng.Float64()*0.5
	// Backup reserve below which the controller does not discharge: most
	// owners keep 10–25 %, a few run down to 5 % (and raise low-SoC alarms).
	b.reservePct = 10 + rng.Float64()*15
	if rng.Float64() < 0.05 {
		b.reservePct = 5
	}
	b.topPct = 95 + rng.Float64()*5
	b.ambientOffset = (rng.Float64() - 0.5) * 6

	b.socPct = 20 + rng.Float64()*60
	b.tempC = 20 + b.ambientOffset
	return b
}

// ambientC is the outdoor temperature at local hour h (0..24): 14 °C at
// night, 26 °C at 15:00, shifted by the site's climate.
func (b *battery) ambientC(h float64) float64 {
	return 20 + b.ambientOffset + 6*math.Cos(2*math.Pi*(h-15)/24)
}

// scheduleFrac is the controller's daily setpoint at local hour h as a signed
// fraction of the limits: negative charges from midday solar surplus,
// positive discharges into the evening peak, zero at night.
func (b *battery) scheduleFrac(h float64) float64 {
	h = mod(h-b.phaseH+48, 24)
	switch {
	case h >= 9 && h < 16:
		return -b.solarFrac * math.Sin(math.Pi*(h-9)/7)
	case h >= 16.5 && h < 22:
		return b.peakFrac * math.Sin(math.Pi*(h-16.5)/5.5)
	case h >= 6.5 && h < 8.5:
		// Small morning peak (kettles, heat pumps).
		return 0.2 * b.peakFrac * math.Sin(math.Pi*(h-6.5)/2)
	}
	return 0
}

// limits returns the charge (magnitude) and discharge power limits at the
// current SoC for a step of dt seconds: the nameplate limits, tapered near
// empty and full, and never more than the energy the step can move without
// leaving 0..100 % SoC.
func (b *battery) limits(dt float64) (chargeKW, dischargeKW float64) {
	chargeKW = b.maxChargeKW * fmin(1, (100-b.socPct)/taperPct)
	dischargeKW = b.maxDischargeKW * fmin(1, b.socPct/taperPct)
	if dt > 0 {
		stored := b.socPct / 100 * b.capKWh
		room := b.capKWh - stored
		hours := dt / 3600
		chargeKW = fmin(chargeKW, room/(effCharge*hours))
		dischargeKW = fmin(dischargeKW, stored*effDischarge/hours)
	}
	return fmax(chargeKW, 0), fmax(dischargeKW, 0)
}

// apply holds the grid power setpointKW (> 0 discharging) for dt seconds:
// it clamps the setpoint to the limits, integrates SoC with the one-way
// efficiencies, updates the cell temperature towards ambientC plus load
// heating, and returns the power actually delivered.
func (b *battery) apply(setpointKW, dt, ambientC float64) float64 {
	chargeKW, dischargeKW := b.limits(dt)
	p := fmax(-chargeKW, fmin(dischargeKW, setpointKW))
	if math.Abs(p) < deadbandFrac*fmax(b.maxChargeKW, b.maxDischargeKW) {
		p = 0
	}
	var dKWh float64 // energy into the cells
	if p > 0 {
		dKWh = -p / effDischarge * dt / 3600
	} else {
		dKWh = -p * effCharge * dt / 3600
	}
	b.socPct += dKWh / b.capKWh * 100
	b.socPct = fmax(0, fmin(100, b.socPct))

	target := ambientC + b.thermalK*math.Abs(p)
	b.tempC += (target - b.tempC) * b.coeffs(dt).thermalGain
	return p
}

// step advances the battery by dt simulated seconds ending at local hour h
// (0..24) and fills r with the resulting sample. It sets every measured
// field; the caller sets the IDs, seq and ts_ms.
func (b *battery) step(dt, h float64, r *vppv1.Reading) {
	b.stepWith(dt, h, r, false, 0)
}

// dispatchable reports whether the battery may follow a setpoint (not in
// fault).
func (b *battery) dispatchable() bool { return b.faultLeft <= 0 }

// stepWith is step with a dispatched command: when follow is set (and the
// battery is not faulted), cmdKW replaces the local controller's setpoint,
// clamped to the power limits and SoC bounds (the reserve when
// discharging, full when charging). It returns why the command was
// clamped (NONE if it was not).
func (b *battery) stepWith(dt, h float64, r *vppv1.Reading, follow bool, cmdKW float64) vppv1.SetpointReason {
	// Correlated noise: an AR(1) process with unit variance.
	c := b.coeffs(dt)
	b.noise = c.noiseRho*b.noise + c.noiseGain*b.rng.NormFloat64()

	// Faults: a Poisson process in simulated time.
	if b.faultLeft > 0 {
		b.faultLeft -= dt
		if b.faultLeft <= 0 {
			b.faultLeft, b.faultAlarm = 0, 0
		}
	} else if b.rng.Float64() < c.faultP {
		b.faultLeft = faultMin + b.rng.Float64()*(faultMax-faultMin)
		b.faultAlarm = uint32(vppv1.Alarm_ALARM_BMS_FAULT)
		if b.rng.IntN(2) == 0 {
			b.faultAlarm = uint32(vppv1.Alarm_ALARM_INVERTER_FAULT)
		}
	}

	amb := b.ambientC(h)
	var setpoint float64
	if b.faultLeft <= 0 {
		// Clouds and household loads modulate the schedule by about ±20 %;
		// at night the unit stays idle.
		f := b.scheduleFrac(h) * fmax(0, 1+0.2*b.noise)
		// The controller keeps a backup reserve and a top margin, tapering
		// next to them, and never plans to cross them within one step.
		hours := dt / 3600
		switch {
		case f > 0:
			setpoint = f * b.maxDischargeKW
			setpoint *= fmax(0, fmin(1, (b.socPct-b.reservePct)/taperPct))
			setpoint = fmin(setpoint, fmax(0, (b.socPct-b.reservePct)/100*b.capKWh*effDischarge/hours))
		case f < 0:
			setpoint = f * b.maxChargeKW
			setpoint *= fmax(0, fmin(1, (b.topPct-b.socPct)/taperPct))
			setpoint = fmax(setpoint, -fmax(0, (b.topPct-b.socPct)/100*b.capKWh/effCharge/hours))
		}
	}
	var clamp vppv1.SetpointReason
	if follow && b.faultLeft <= 0 {
		setpoint, clamp = b.clampDispatch(cmdKW, dt)
	}
	p := b.apply(setpoint, dt, amb)
	b.fill(p, r)
	return clamp
}

// clampDispatch limits a dispatched grid power to what the battery can
// hold for dt seconds: its power limits (POWER_LIMIT) and its SoC bounds,
// the reserve when discharging and full when charging (SOC_LIMIT).
func (b *battery) clampDispatch(kw, dt float64) (float64, vppv1.SetpointReason) {
	chargeKW, dischargeKW := b.limits(dt)
	hours := dt / 3600
	switch {
	case kw > 0:
		soc := b.maxDischargeKW * fmax(0, fmin(1, (b.socPct-b.reservePct)/taperPct))
		soc = fmin(soc, fmax(0, (b.socPct-b.reservePct)/100*b.capKWh*effDischarge/hours))
		soc = fmin(soc, dischargeKW)
		if kw > soc {
			if soc < b.maxDischargeKW {
				return soc, vppv1.SetpointReason_SETPOINT_REASON_SOC_LIMIT
			}
			return soc, vppv1.SetpointReason_SETPOINT_REASON_POWER_LIMIT
		}
	case kw < 0:
		if -kw > chargeKW {
			if chargeKW < b.maxChargeKW {
				return -chargeKW, vppv1.SetpointReason_SETPOINT_REASON_SOC_LIMIT
			}
			return -chargeKW, vppv1.SetpointReason_SETPOINT_REASON_POWER_LIMIT
		}
	}
	return kw, vppv1.SetpointReason_SETPOINT_REASON_NONE
}

// fill writes the measured fields for grid power p into r.
func (b *battery) fill(p float64, r *vppv1.Reading) {
	s := b.socPct / 100
	// Open-circuit voltage of a Li-ion pack: a flat middle from 88 % to 102 %
	// of nominal with steep knees near empty (84 %) and full (104 %); sag and
	// rise under load from the internal resistance (3 % at full power).
	ocv := b.nominalV * (0.88 + 0.14*s - 0.04*math.Exp(-15*s) + 0.02*math.Exp(20*(s-1)))
	var sag float64
	if p > 0 {
		sag = 0.03 * p / b.maxDischargeKW
	} else {
		sag = 0.03 * p / b.maxChargeKW
	}
	v := ocv * (1 - sag)

	mode := vppv1.Mode_MODE_IDLE
	switch {
	case b.faultLeft > 0:
		mode = vppv1.Mode_MODE_FAULT
	case p > 0:
		mode = vppv1.Mode_MODE_DISCHARGING
	case p < 0:
		mode = vppv1.Mode_MODE_CHARGING
	}
	alarms := b.faultAlarm
	if b.socPct < lowSoCAlarmPct {
		alarms |= uint32(vppv1.Alarm_ALARM_LOW_SOC)
	}
	if b.tempC > overTempAlarmC {
		alarms |= uint32(vppv1.Alarm_ALARM_OVER_TEMPERATURE)
	}

	r.SocPct = b.socPct
	r.SohPct = b.sohPct
	r.PowerKw = p
	r.VoltageV = v
	r.CurrentA = p * 1000 / v
	r.TemperatureC = b.tempC
	r.CapacityKwh = b.capKWh
	r.MaxChargeKw = b.maxChargeKW
	r.MaxDischargeKw = b.maxDischargeKW
	r.Mode = mode
	r.Alarms = alarms
}
