package ingest

import (
	"math"
	"time"
	"unicode/utf8"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Rejection reasons. They are stable: they appear in the rejected topic's
// HeaderReason header and in the accounting, and operators alert on them.
const (
	ReasonDeviceIDMissing       = "device_id_missing"
	ReasonDeviceIDTooLong       = "device_id_too_long"
	ReasonSiteIDMissing         = "site_id_missing"
	ReasonSiteIDTooLong         = "site_id_too_long"
	ReasonSubstationIDMissing   = "substation_id_missing"
	ReasonSubstationIDTooLong   = "substation_id_too_long"
	ReasonRegionIDMissing       = "region_id_missing"
	ReasonRegionIDTooLong       = "region_id_too_long"
	ReasonIDInvalidUTF8         = "id_invalid_utf8"
	ReasonSeqZero               = "seq_zero"
	ReasonTSTooFarAhead         = "ts_too_far_ahead"
	ReasonTSTooOld              = "ts_too_old"
	ReasonNotFinite             = "not_finite"
	ReasonSoCOutOfRange         = "soc_out_of_range"
	ReasonSoHOutOfRange         = "soh_out_of_range"
	ReasonCapacityNotPositive   = "capacity_not_positive"
	ReasonLimitNegative         = "limit_negative"
	ReasonPowerAboveDischarge   = "power_above_discharge_limit"
	ReasonPowerAboveCharge      = "power_above_charge_limit"
	ReasonVoltageNegative       = "voltage_negative"
	ReasonTemperatureOutOfRange = "temperature_out_of_range"
	ReasonModeUnknown           = "mode_unknown"
	// ReasonSetpointInvalid marks a reading whose dispatch compliance
	// fields (18-22) are malformed: a setpoint_id longer than the ID limit,
	// a setpoint_kw that is not finite, or an unknown setpoint_state or
	// setpoint_reason.
	ReasonSetpointInvalid = "setpoint_invalid"
	// ReasonFrameUndecodable marks a whole frame that is not a valid
	// serialized vpp.v1.Frame (the connection is closed with 1007).
	ReasonFrameUndecodable = "frame_undecodable"
	// ReasonFrameTooManyReadings marks a whole frame with more than
	// MaxReadingsPerFrame readings (the connection is closed with 1008).
	ReasonFrameTooManyReadings = "frame_too_many_readings"
	// ReasonDeviceNotAuthorized marks a reading of a device and site the
	// connection's token does not cover.
	ReasonDeviceNotAuthorized = "device_not_authorized"
)

// reason is the index of a rejection reason in reasonNames; reasonOK (0)
// means valid. Counters are indexed by it, so accounting needs no map.
type reason uint8

const (
	reasonOK reason = iota
	rDeviceIDMissing
	rDeviceIDTooLong
	rSiteIDMissing
	rSiteIDTooLong
	rSubstationIDMissing
	rSubstationIDTooLong
	rRegionIDMissing
	rRegionIDTooLong
	rIDInvalidUTF8
	rSeqZero
	rTSTooFarAhead
	rTSTooOld
	rNotFinite
	rSoCOutOfRange
	rSoHOutOfRange
	rCapacityNotPositive
	rLimitNegative
	rPowerAboveDischarge
	rPowerAboveCharge
	rVoltageNegative
	rTemperatureOutOfRange
	rModeUnknown
	rSetpointInvalid
	rFrameUndecodable
	rFrameTooManyReadings
	rDeviceNotAuthorized
	numReasons
)

// String returns the stable reason name ("" for reasonOK).
func (r reason) String() string {
	switch r {
	case rDeviceIDMissing:
		return ReasonDeviceIDMissing
	case rDeviceIDTooLong:
		return ReasonDeviceIDTooLong
	case rSiteIDMissing:
		return ReasonSiteIDMissing
	case rSiteIDTooLong:
		return ReasonSiteIDTooLong
	case rSubstationIDMissing:
		return ReasonSubstationIDMissing
	case rSubstationIDTooLong:
		return ReasonSubstationIDTooLong
	case rRegionIDMissing:
		return ReasonRegionIDMissing
	case rRegionIDTooLong:
		return ReasonRegionIDTooLong
	case rIDInvalidUTF8:
		return ReasonIDInvalidUTF8
	case rSeqZero:
		return ReasonSeqZero
	case rTSTooFarAhead:
		return ReasonTSTooFarAhead
	case rTSTooOld:
		return ReasonTSTooOld
	case rNotFinite:
		return ReasonNotFinite
	case rSoCOutOfRange:
		return ReasonSoCOutOfRange
	case rSoHOutOfRange:
		return ReasonSoHOutOfRange
	case rCapacityNotPositive:
		return ReasonCapacityNotPositive
	case rLimitNegative:
		return ReasonLimitNegative
	case rPowerAboveDischarge:
		return ReasonPowerAboveDischarge
	case rPowerAboveCharge:
		return ReasonPowerAboveCharge
	case rVoltageNegative:
		return ReasonVoltageNegative
	case rTemperatureOutOfRange:
		return ReasonTemperatureOutOfRange
	case rModeUnknown:
		return ReasonModeUnknown
	case rFrameUndecodable:
		return ReasonFrameUndecodable
	case rFrameTooManyReadings:
		return ReasonFrameTooManyReadings
	case rDeviceNotAuthorized:
		return ReasonDeviceNotAuthorized
	case rSetpointInvalid:
		return ReasonSetpointInvalid
	}
	return ""
}

// Limits are the validation bounds that are configurable.
type Limits struct {
	// MaxClockSkew is how far in the future a reading's timestamp may lie.
	MaxClockSkew time.Duration
	// MaxAge is how far in the past a reading's timestamp may lie.
	MaxAge time.Duration
	// PowerTolerance is the fraction above the device's own power limits
	// still accepted (0.05 = 5 %).
	PowerTolerance float64
	// MaxIDLength bounds every ID, in bytes.
	MaxIDLength int
}

// DefaultLimits returns the limits of a Config with every field defaulted.
func DefaultLimits() Limits {
	return Limits{MaxClockSkew: 5 * time.Minute, MaxAge: 24 * time.Hour, PowerTolerance: 0.05, MaxIDLength: 64}
}

// Temperature range accepted, degrees Celsius (see telemetry.proto).
const (
	minTemperatureC = -50
	maxTemperatureC = 150
	// powerSlackKW is an absolute slack on the power limits, so rounding on
	// a device at exactly its limit (or with limits of 0) is not rejected.
	powerSlackKW = 0.001
)

// Validate checks one reading against the wire contract at time now. It
// returns ok, or the stable rejection reason (one of the Reason constants)
// of the first rule the reading breaks. It is pure and does not allocate.
func Validate(r *vppv1.Reading, now time.Time, lim Limits) (reason string, ok bool) {
	rs := validate(r, now.UnixMilli(), lim)
	return rs.String(), rs == reasonOK
}

func checkID(s string, maxLen int, missing, tooLong reason) reason {
	if rs := checkIDLen(len(s), maxLen, missing, tooLong); rs != reasonOK {
		return rs
	}
	if !utf8.ValidString(s) {
		return rIDInvalidUTF8
	}
	return reasonOK
}

func checkIDLen(n, maxLen int, missing, tooLong reason) reason {
	switch {
	case n == 0:
		return missing
	case n > maxLen:
		return tooLong
	}
	return reasonOK
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// validate applies the rules to a decoded reading.
func validate(r *vppv1.Reading, nowMS int64, lim Limits) reason {
	if rs := checkID(r.GetDeviceId(), lim.MaxIDLength, rDeviceIDMissing, rDeviceIDTooLong); rs != reasonOK {
		return rs
	}
	if rs := checkID(r.GetSiteId(), lim.MaxIDLength, rSiteIDMissing, rSiteIDTooLong); rs != reasonOK {
		return rs
	}
	if rs := checkID(r.GetSubstationId(), lim.MaxIDLength, rSubstationIDMissing, rSubstationIDTooLong); rs != reasonOK {
		return rs
	}
	if rs := checkID(r.GetRegionId(), lim.MaxIDLength, rRegionIDMissing, rRegionIDTooLong); rs != reasonOK {
		return rs
	}
	var w wire.Reading
	w.SetValues(r)
	w.SetpointID = []byte(r.GetSetpointId())
	return validateValues(&w, nowMS, lim)
}

// validateWire applies the rules to a reading parsed by wire.Parse without
// error, so every ID is valid UTF-8. It is validate for the wire form: the
// same rules in the same order.
func validateWire(r *wire.Reading, nowMS int64, lim Limits) reason {
	if rs := checkIDLen(len(r.DeviceID), lim.MaxIDLength, rDeviceIDMissing, rDeviceIDTooLong); rs != reasonOK {
		return rs
	}
	if rs := checkIDLen(len(r.SiteID), lim.MaxIDLength, rSiteIDMissing, rSiteIDTooLong); rs != reasonOK {
		return rs
	}
	if rs := checkIDLen(len(r.SubstationID), lim.MaxIDLength, rSubstationIDMissing, rSubstationIDTooLong); rs != reasonOK {
		return rs
	}
	if rs := checkIDLen(len(r.RegionID), lim.MaxIDLength, rRegionIDMissing, rRegionIDTooLong); rs != reasonOK {
		return rs
	}
	return validateValues(r, nowMS, lim)
}

// validateValues applies the rules after the IDs' (r's IDs are not read).
func validateValues(r *wire.Reading, nowMS int64, lim Limits) reason {
	if r.Seq == 0 {
		return rSeqZero
	}
	ts := r.TsMs
	if ts > nowMS+lim.MaxClockSkew.Milliseconds() {
		return rTSTooFarAhead
	}
	if ts < nowMS-lim.MaxAge.Milliseconds() {
		return rTSTooOld
	}
	if !finite(r.SocPct) || !finite(r.SohPct) || !finite(r.PowerKw) ||
		!finite(r.VoltageV) || !finite(r.CurrentA) || !finite(r.TemperatureC) ||
		!finite(r.CapacityKwh) || !finite(r.MaxChargeKw) || !finite(r.MaxDischargeKw) {
		return rNotFinite
	}
	if soc := r.SocPct; soc < 0 || soc > 100 {
		return rSoCOutOfRange
	}
	if soh := r.SohPct; soh < 0 || soh > 100 {
		return rSoHOutOfRange
	}
	if r.CapacityKwh <= 0 {
		return rCapacityNotPositive
	}
	if r.MaxChargeKw < 0 || r.MaxDischargeKw < 0 {
		return rLimitNegative
	}
	tol := 1 + lim.PowerTolerance
	p := r.PowerKw
	if p > r.MaxDischargeKw*tol+powerSlackKW {
		return rPowerAboveDischarge
	}
	if p < -(r.MaxChargeKw*tol + powerSlackKW) {
		return rPowerAboveCharge
	}
	if r.VoltageV < 0 {
		return rVoltageNegative
	}
	if t := r.TemperatureC; t < minTemperatureC || t > maxTemperatureC {
		return rTemperatureOutOfRange
	}
	if m := r.Mode; m < vppv1.Mode_MODE_IDLE || m > vppv1.Mode_MODE_FAULT {
		return rModeUnknown
	}
	if len(r.SetpointID) > lim.MaxIDLength || !finite(r.SetpointKw) ||
		r.SetpointState < vppv1.SetpointState_SETPOINT_STATE_NONE || r.SetpointState > vppv1.SetpointState_SETPOINT_STATE_ENDED ||
		r.SetpointReason < vppv1.SetpointReason_SETPOINT_REASON_NONE || r.SetpointReason > vppv1.SetpointReason_SETPOINT_REASON_RELEASED {
		return rSetpointInvalid
	}
	return reasonOK
}
