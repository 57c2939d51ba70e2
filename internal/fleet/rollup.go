// Package fleet is the model of the grid hierarchy (fleet → regions →
// substations → sites → devices): the Tree that site states fold into, its
// rollup math (DeviceContribution, Rollup), immutable Snapshots, and the
// names of alarms and modes. It is shared by aggregate, the readers, the
// API and the dashboard, and depends on no Kafka client and no net/http
// (a test keeps it so): internal/reader feeds it from Kafka, internal/api
// serves it.
//
// Rollups use integer fixed-point sums (1e-6 kW and 1e-6 kWh units), so an
// incremental update (subtract the old contribution, add the new one) gives
// exactly the same result as a recomputation from scratch, however many
// updates were applied.
package fleet

import (
	"math"
	"math/bits"

	"github.com/vppctl/vpp/proto/vppv1"
)

// Micro is the fixed-point scale of every rollup quantity: one unit is 1e-6
// of the base unit (kW → mW, kWh → mWh, °C → µ°C).
const Micro = 1_000_000

// AlarmBits is the number of alarm bits a Rollup counts (Reading.alarms is a
// uint32 bit set).
const AlarmBits = 32

// maxMicro bounds one converted device quantity (±1e6 kW or kWh, far above
// any battery) so that sums over millions of devices cannot overflow int64.
const maxMicro = 1e12

// ToMicro converts a float quantity to fixed point: math.Round(x*1e6),
// clamped to ±1e12 (±1e6 base units); NaN converts to 0.
func ToMicro(x float64) int64 {
	v := math.Round(x * Micro)
	switch {
	case math.IsNaN(v):
		return 0
	case v > maxMicro:
		return maxMicro
	case v < -maxMicro:
		return -maxMicro
	}
	return int64(v)
}

// FromMicro converts a fixed-point quantity back to a float in base units.
func FromMicro(v int64) float64 { return float64(v) / Micro }

// Rollup aggregates the devices below one node of the hierarchy.
//
// The additive fields (counts, power, capacity, energy, headroom, alarm
// counts, Temps) are exact integer sums: Add and Sub are inverses of each
// other for them. The extremes (TempMinMicroC, TempMaxMicroC, UpdatedMS)
// cannot be subtracted; Sub leaves them as they are (clearing them only when
// nothing remains) and the owner of the rollup recomputes them from the
// children (see Tree).
type Rollup struct {
	// Devices is the number of devices; Online + Offline == Devices.
	Devices int64
	// Online is the number of devices heard from within --offline-after.
	Online int64
	// Offline is the number of devices not heard from for --offline-after.
	Offline int64
	// Alarming is the number of devices with at least one alarm bit set.
	Alarming int64

	// NetMicroKW is the net power, 1e-6 kW (mW); > 0 discharging.
	NetMicroKW int64
	// ChargeMicroKW is the sum of |power| of the charging devices, mW.
	ChargeMicroKW int64
	// DischargeMicroKW is the sum of the power of the discharging devices, mW.
	DischargeMicroKW int64
	// CapacityMicroKWh is the usable capacity, 1e-6 kWh (mWh).
	CapacityMicroKWh int64
	// EnergyMicroKWh is the stored energy (soc_pct/100 × capacity), mWh.
	EnergyMicroKWh int64
	// HeadroomDischargeMicroKW is how much more the online devices could
	// discharge now, mW.
	HeadroomDischargeMicroKW int64
	// HeadroomChargeMicroKW is how much more the online devices could absorb
	// now, mW.
	HeadroomChargeMicroKW int64

	// Temps is the number of devices with a reading (and so a temperature);
	// the temperature range is meaningful only when Temps > 0.
	Temps int64
	// TempMinMicroC is the lowest device temperature, 1e-6 °C.
	TempMinMicroC int64
	// TempMaxMicroC is the highest device temperature, 1e-6 °C.
	TempMaxMicroC int64
	// UpdatedMS is the newest data time below the node (site state time or
	// device applied time), Unix ms UTC; 0 when unknown.
	UpdatedMS int64

	// Alarms counts, for each alarm bit i (Alarm value 1<<i), the devices
	// that have it set.
	Alarms [AlarmBits]int64
}

// DeviceContribution is what one device adds to every rollup it belongs to.
// Energy is soc_pct/100 × capacity_kwh. An offline device keeps its power,
// energy and capacity in the totals but contributes no headroom. A device
// without a reading counts as a device and nothing else.
func DeviceContribution(d *vppv1.DeviceState) Rollup {
	var r Rollup
	if d == nil {
		return r
	}
	r.Devices = 1
	if d.GetOffline() {
		r.Offline = 1
	} else {
		r.Online = 1
		r.HeadroomDischargeMicroKW = ToMicro(d.GetHeadroomDischargeKw())
		r.HeadroomChargeMicroKW = ToMicro(d.GetHeadroomChargeKw())
	}
	r.UpdatedMS = d.GetAppliedMs()
	last := d.GetLast()
	if last == nil {
		return r
	}
	p := ToMicro(last.GetPowerKw())
	r.NetMicroKW = p
	if p < 0 {
		r.ChargeMicroKW = -p
	} else {
		r.DischargeMicroKW = p
	}
	r.CapacityMicroKWh = ToMicro(last.GetCapacityKwh())
	r.EnergyMicroKWh = ToMicro(last.GetSocPct() / 100 * last.GetCapacityKwh())
	t := ToMicro(last.GetTemperatureC())
	r.Temps = 1
	r.TempMinMicroC, r.TempMaxMicroC = t, t
	if a := last.GetAlarms(); a != 0 {
		r.Alarming = 1
		for a != 0 {
			i := bits.TrailingZeros32(a)
			r.Alarms[i] = 1
			a &^= 1 << i
		}
	}
	return r
}

// SiteContribution is the rollup of a whole site: the sum of its devices'
// contributions, with UpdatedMS at least the site state's updated_ms.
func SiteContribution(s *vppv1.SiteState) Rollup {
	var r Rollup
	for _, d := range s.GetDevices() {
		c := DeviceContribution(d)
		r.Add(&c)
	}
	r.UpdatedMS = max(r.UpdatedMS, s.GetUpdatedMs())
	return r
}

// Add adds b to r: sums for the additive fields, min/max for the extremes.
func (r *Rollup) Add(b *Rollup) {
	r.Devices += b.Devices
	r.Online += b.Online
	r.Offline += b.Offline
	r.Alarming += b.Alarming
	r.NetMicroKW += b.NetMicroKW
	r.ChargeMicroKW += b.ChargeMicroKW
	r.DischargeMicroKW += b.DischargeMicroKW
	r.CapacityMicroKWh += b.CapacityMicroKWh
	r.EnergyMicroKWh += b.EnergyMicroKWh
	r.HeadroomDischargeMicroKW += b.HeadroomDischargeMicroKW
	r.HeadroomChargeMicroKW += b.HeadroomChargeMicroKW
	r.mergeExtremes(b)
	r.Temps += b.Temps
	for i := range r.Alarms {
		r.Alarms[i] += b.Alarms[i]
	}
}

// mergeExtremes widens r's temperature range and UpdatedMS by b's. It must
// run before r.Temps is increased by b.Temps.
func (r *Rollup) mergeExtremes(b *Rollup) {
	if b.Temps > 0 {
		if r.Temps <= 0 {
			r.TempMinMicroC, r.TempMaxMicroC = b.TempMinMicroC, b.TempMaxMicroC
		} else {
			r.TempMinMicroC = min(r.TempMinMicroC, b.TempMinMicroC)
			r.TempMaxMicroC = max(r.TempMaxMicroC, b.TempMaxMicroC)
		}
	}
	r.UpdatedMS = max(r.UpdatedMS, b.UpdatedMS)
}

// Sub subtracts b from r's additive fields. The extremes cannot be
// subtracted: they are left unchanged, except that the temperature range is
// cleared when no device with a temperature remains. Recompute the extremes from the remaining parts
// when b may have held one of them.
func (r *Rollup) Sub(b *Rollup) {
	r.Devices -= b.Devices
	r.Online -= b.Online
	r.Offline -= b.Offline
	r.Alarming -= b.Alarming
	r.NetMicroKW -= b.NetMicroKW
	r.ChargeMicroKW -= b.ChargeMicroKW
	r.DischargeMicroKW -= b.DischargeMicroKW
	r.CapacityMicroKWh -= b.CapacityMicroKWh
	r.EnergyMicroKWh -= b.EnergyMicroKWh
	r.HeadroomDischargeMicroKW -= b.HeadroomDischargeMicroKW
	r.HeadroomChargeMicroKW -= b.HeadroomChargeMicroKW
	r.Temps -= b.Temps
	if r.Temps == 0 {
		r.TempMinMicroC, r.TempMaxMicroC = 0, 0
	}
	for i := range r.Alarms {
		r.Alarms[i] -= b.Alarms[i]
	}
}

// losesExtreme reports whether replacing part old (a child's rollup
// included in r) by new may shrink one of r's extremes, so that r needs a
// recomputation from its children: old may have defined an extreme (it
// equals r's) and new does not reach as far. A new part that keeps or
// widens every extreme old held (the usual update: a newer time, the same
// or a wider temperature range) needs none, so a site update costs
// O(depth), not O(sites of the substation).
func (r *Rollup) losesExtreme(old, new *Rollup) bool {
	if old.Temps > 0 {
		if old.TempMinMicroC <= r.TempMinMicroC && (new.Temps <= 0 || new.TempMinMicroC > old.TempMinMicroC) {
			return true
		}
		if old.TempMaxMicroC >= r.TempMaxMicroC && (new.Temps <= 0 || new.TempMaxMicroC < old.TempMaxMicroC) {
			return true
		}
	}
	return old.UpdatedMS != 0 && old.UpdatedMS >= r.UpdatedMS && new.UpdatedMS < old.UpdatedMS
}

// PowerKW is the net power in kW; > 0 discharging.
func (r *Rollup) PowerKW() float64 { return FromMicro(r.NetMicroKW) }

// ChargeKW is the charging power in kW, a magnitude.
func (r *Rollup) ChargeKW() float64 { return FromMicro(r.ChargeMicroKW) }

// DischargeKW is the discharging power in kW.
func (r *Rollup) DischargeKW() float64 { return FromMicro(r.DischargeMicroKW) }

// CapacityKWh is the usable capacity in kWh.
func (r *Rollup) CapacityKWh() float64 { return FromMicro(r.CapacityMicroKWh) }

// EnergyKWh is the stored energy in kWh.
func (r *Rollup) EnergyKWh() float64 { return FromMicro(r.EnergyMicroKWh) }

// SoCPct is the capacity-weighted state of charge in percent
// (energy / capacity); 0 when there is no capacity.
func (r *Rollup) SoCPct() float64 {
	if r.CapacityMicroKWh <= 0 {
		return 0
	}
	return float64(r.EnergyMicroKWh) / float64(r.CapacityMicroKWh) * 100
}

// HeadroomDischargeKW is how much more the online devices could discharge
// now, kW.
func (r *Rollup) HeadroomDischargeKW() float64 { return FromMicro(r.HeadroomDischargeMicroKW) }

// HeadroomChargeKW is how much more the online devices could absorb now, kW.
func (r *Rollup) HeadroomChargeKW() float64 { return FromMicro(r.HeadroomChargeMicroKW) }

// TemperatureRangeC returns the lowest and highest device temperature in °C;
// ok is false when no device has a reading.
func (r *Rollup) TemperatureRangeC() (lo, hi float64, ok bool) {
	if r.Temps <= 0 {
		return 0, 0, false
	}
	return FromMicro(r.TempMinMicroC), FromMicro(r.TempMaxMicroC), true
}

// AlarmCounts returns the number of devices per active alarm, keyed by the
// alarm's short name ("over_temperature", or "bit_N" for an unnamed bit).
// Alarms no device has are left out.
func (r *Rollup) AlarmCounts() map[string]int64 {
	m := make(map[string]int64)
	for i, n := range r.Alarms {
		if n != 0 {
			m[AlarmName(uint32(1)<<i)] = n
		}
	}
	return m
}
