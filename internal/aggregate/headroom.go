package aggregate

import (
	"math"
	"time"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Headroom returns how much more power, in kW, the device that sent r could
// deliver (dischargeKW) and absorb (chargeKW) now, both >= 0.
//
// Discharge headroom is the device's discharge limit, capped by the power its
// energy above the reserve SoC (reserveSoCPct, percent) sustains for the
// horizon, minus what it delivers now. Charge headroom is its charge limit,
// capped by the power that fills the energy below full over the horizon, plus
// what it delivers now (a charging device, power_kw < 0, has less room left).
// With a horizon <= 0 only the power limits apply (energy never binds, unless
// there is none).
//
// A device that is not dispatchable (mode FAULT, STANDBY or UNSPECIFIED) has
// no headroom. Headroom knows nothing of offline devices: callers give an
// offline device 0, 0 themselves.
func Headroom(r *vppv1.Reading, reserveSoCPct float64, horizon time.Duration) (dischargeKW, chargeKW float64) {
	if r == nil {
		return 0, 0
	}
	return headroom(r.GetMode(), r.GetSocPct(), r.GetCapacityKwh(), r.GetMaxDischargeKw(), r.GetMaxChargeKw(), r.GetPowerKw(),
		reserveSoCPct, horizon)
}

// headroom is Headroom on the values of a reading.
func headroom(mode vppv1.Mode, socPct, capacityKWh, maxDischargeKW, maxChargeKW, powerKW, reserveSoCPct float64,
	horizon time.Duration) (dischargeKW, chargeKW float64) {
	if !dispatchable(mode) {
		return 0, 0
	}
	soc := clamp(socPct, 0, 100)
	reserve := clamp(reserveSoCPct, 0, 100)
	capacity := math.Max(0, capacityKWh)
	hours := horizon.Hours()

	aboveReserve := math.Max(0, (soc-reserve)/100*capacity)
	belowFull := (100 - soc) / 100 * capacity

	dischargeKW = math.Max(0, math.Min(math.Max(0, maxDischargeKW), sustainable(aboveReserve, hours))-powerKW)
	chargeKW = math.Max(0, math.Min(math.Max(0, maxChargeKW), sustainable(belowFull, hours))+powerKW)
	return dischargeKW, chargeKW
}

// dispatchable reports whether a device in mode m can be dispatched.
func dispatchable(m vppv1.Mode) bool {
	switch m {
	case vppv1.Mode_MODE_FAULT, vppv1.Mode_MODE_STANDBY, vppv1.Mode_MODE_UNSPECIFIED:
		return false
	}
	return true
}

// sustainable is the power (kW) that energyKWh sustains for hours.
func sustainable(energyKWh, hours float64) float64 {
	switch {
	case energyKWh <= 0:
		return 0
	case hours <= 0:
		return math.Inf(1)
	}
	return energyKWh / hours
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
