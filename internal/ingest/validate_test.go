package ingest

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vppctl/vpp/internal/wire"
	"github.com/vppctl/vpp/proto/vppv1"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// validReading returns a reading that passes every rule at testNow.
func validReading() *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: "dev-1", SiteId: "site-1", SubstationId: "sub-1", RegionId: "reg-1",
		Seq: 1, TsMs: testNow.UnixMilli(),
		SocPct: 50, SohPct: 98, PowerKw: 2.5, VoltageV: 400, CurrentA: 6, TemperatureC: 25,
		CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_DISCHARGING,
	}
}

// validateTest is a rule of the wire contract: a change to a valid reading
// and the reason it is rejected for ("" = still valid).
type validateTest struct {
	name string
	mut  func(r *vppv1.Reading)
	want string
}

func validateTests() []validateTest {
	return []validateTest{
		{"valid", func(*vppv1.Reading) {}, ""},
		{"valid charging at limit", func(r *vppv1.Reading) { r.PowerKw = -5; r.Mode = vppv1.Mode_MODE_CHARGING }, ""},
		{"valid idle zero limits", func(r *vppv1.Reading) { r.PowerKw = 0; r.MaxChargeKw = 0; r.MaxDischargeKw = 0 }, ""},
		{"valid id at max length", func(r *vppv1.Reading) { r.DeviceId = strings.Repeat("d", 64) }, ""},
		{"valid soc bounds", func(r *vppv1.Reading) { r.SocPct = 100; r.SohPct = 0 }, ""},
		{"valid ts at skew bound", func(r *vppv1.Reading) { r.TsMs = testNow.Add(5 * time.Minute).UnixMilli() }, ""},
		{"valid ts at age bound", func(r *vppv1.Reading) { r.TsMs = testNow.Add(-24 * time.Hour).UnixMilli() }, ""},
		{"valid temperature bounds", func(r *vppv1.Reading) { r.TemperatureC = -50 }, ""},
		{"power just within discharge tolerance", func(r *vppv1.Reading) { r.PowerKw = 5*1.05 + 0.0009 }, ""},
		{"power just within charge tolerance", func(r *vppv1.Reading) { r.PowerKw = -(5*1.05 + 0.0009) }, ""},
		{"device id empty", func(r *vppv1.Reading) { r.DeviceId = "" }, ReasonDeviceIDMissing},
		{"device id 10 kB", func(r *vppv1.Reading) { r.DeviceId = strings.Repeat("x", 10_000) }, ReasonDeviceIDTooLong},
		{"device id 65 bytes", func(r *vppv1.Reading) { r.DeviceId = strings.Repeat("x", 65) }, ReasonDeviceIDTooLong},
		{"device id invalid utf8", func(r *vppv1.Reading) { r.DeviceId = "dev\xff" }, ReasonIDInvalidUTF8},
		{"site id missing", func(r *vppv1.Reading) { r.SiteId = "" }, ReasonSiteIDMissing},
		{"site id too long", func(r *vppv1.Reading) { r.SiteId = strings.Repeat("s", 65) }, ReasonSiteIDTooLong},
		{"site id invalid utf8", func(r *vppv1.Reading) { r.SiteId = "\xc3\x28" }, ReasonIDInvalidUTF8},
		{"substation missing", func(r *vppv1.Reading) { r.SubstationId = "" }, ReasonSubstationIDMissing},
		{"substation too long", func(r *vppv1.Reading) { r.SubstationId = strings.Repeat("s", 65) }, ReasonSubstationIDTooLong},
		{"region missing", func(r *vppv1.Reading) { r.RegionId = "" }, ReasonRegionIDMissing},
		{"region too long", func(r *vppv1.Reading) { r.RegionId = strings.Repeat("r", 65) }, ReasonRegionIDTooLong},
		{"region invalid utf8", func(r *vppv1.Reading) { r.RegionId = "\xed\xa0\x80" }, ReasonIDInvalidUTF8},
		{"seq zero", func(r *vppv1.Reading) { r.Seq = 0 }, ReasonSeqZero},
		{"ts a year ahead", func(r *vppv1.Reading) { r.TsMs = testNow.AddDate(1, 0, 0).UnixMilli() }, ReasonTSTooFarAhead},
		{"ts just beyond skew", func(r *vppv1.Reading) { r.TsMs = testNow.Add(5*time.Minute + time.Millisecond).UnixMilli() }, ReasonTSTooFarAhead},
		{"ts too old", func(r *vppv1.Reading) { r.TsMs = testNow.Add(-25 * time.Hour).UnixMilli() }, ReasonTSTooOld},
		{"ts zero", func(r *vppv1.Reading) { r.TsMs = 0 }, ReasonTSTooOld},
		{"soc NaN", func(r *vppv1.Reading) { r.SocPct = math.NaN() }, ReasonNotFinite},
		{"power +Inf", func(r *vppv1.Reading) { r.PowerKw = math.Inf(1) }, ReasonNotFinite},
		{"voltage -Inf", func(r *vppv1.Reading) { r.VoltageV = math.Inf(-1) }, ReasonNotFinite},
		{"current NaN", func(r *vppv1.Reading) { r.CurrentA = math.NaN() }, ReasonNotFinite},
		{"capacity NaN", func(r *vppv1.Reading) { r.CapacityKwh = math.NaN() }, ReasonNotFinite},
		{"limit Inf", func(r *vppv1.Reading) { r.MaxDischargeKw = math.Inf(1) }, ReasonNotFinite},
		{"temperature NaN", func(r *vppv1.Reading) { r.TemperatureC = math.NaN() }, ReasonNotFinite},
		{"soh NaN", func(r *vppv1.Reading) { r.SohPct = math.NaN() }, ReasonNotFinite},
		{"max charge NaN", func(r *vppv1.Reading) { r.MaxChargeKw = math.NaN() }, ReasonNotFinite},
		{"soc 150", func(r *vppv1.Reading) { r.SocPct = 150 }, ReasonSoCOutOfRange},
		{"soc negative", func(r *vppv1.Reading) { r.SocPct = -0.1 }, ReasonSoCOutOfRange},
		{"soh 101", func(r *vppv1.Reading) { r.SohPct = 101 }, ReasonSoHOutOfRange},
		{"capacity negative", func(r *vppv1.Reading) { r.CapacityKwh = -13.5 }, ReasonCapacityNotPositive},
		{"capacity zero", func(r *vppv1.Reading) { r.CapacityKwh = 0 }, ReasonCapacityNotPositive},
		{"charge limit negative", func(r *vppv1.Reading) { r.MaxChargeKw = -1 }, ReasonLimitNegative},
		{"discharge limit negative", func(r *vppv1.Reading) { r.MaxDischargeKw = -1; r.PowerKw = 0 }, ReasonLimitNegative},
		{"power just outside discharge tolerance", func(r *vppv1.Reading) { r.PowerKw = 5*1.05 + 0.0011 }, ReasonPowerAboveDischarge},
		{"power just outside charge tolerance", func(r *vppv1.Reading) { r.PowerKw = -(5*1.05 + 0.0011) }, ReasonPowerAboveCharge},
		{"power with zero limit", func(r *vppv1.Reading) { r.MaxDischargeKw = 0; r.PowerKw = 0.01 }, ReasonPowerAboveDischarge},
		{"voltage negative", func(r *vppv1.Reading) { r.VoltageV = -1 }, ReasonVoltageNegative},
		{"temperature too hot", func(r *vppv1.Reading) { r.TemperatureC = 150.5 }, ReasonTemperatureOutOfRange},
		{"temperature too cold", func(r *vppv1.Reading) { r.TemperatureC = -51 }, ReasonTemperatureOutOfRange},
		{"mode unspecified", func(r *vppv1.Reading) { r.Mode = vppv1.Mode_MODE_UNSPECIFIED }, ReasonModeUnknown},
		{"mode unknown value", func(r *vppv1.Reading) { r.Mode = vppv1.Mode(42) }, ReasonModeUnknown},
		{"mode negative", func(r *vppv1.Reading) { r.Mode = vppv1.Mode(-1) }, ReasonModeUnknown},
		{"setpoint ID too long", func(r *vppv1.Reading) { r.SetpointId = strings.Repeat("d", 65) }, ReasonSetpointInvalid},
		{"setpoint kW NaN", func(r *vppv1.Reading) { r.SetpointKw = math.NaN() }, ReasonSetpointInvalid},
		{"setpoint state unknown", func(r *vppv1.Reading) { r.SetpointState = vppv1.SetpointState(9) }, ReasonSetpointInvalid},
		{"setpoint reason unknown", func(r *vppv1.Reading) { r.SetpointReason = vppv1.SetpointReason(-2) }, ReasonSetpointInvalid},
	}
}

// validateCases are the readings of validateTests.
func validateCases() []*vppv1.Reading {
	var rs []*vppv1.Reading
	for _, tt := range validateTests() {
		r := validReading()
		tt.mut(r)
		rs = append(rs, r)
	}
	return rs
}

// appendReading appends r in the wire format, as proto.Marshal would, but
// without refusing IDs that are not UTF-8 (wire.AppendReading, tested
// against proto.Marshal).
func appendReading(b []byte, r *vppv1.Reading) []byte { return wire.AppendReading(b, r) }

// frameOf is a serialized Frame of the readings rs.
func frameOf(rs ...*vppv1.Reading) []byte {
	var b []byte
	for _, r := range rs {
		b = protowire.AppendBytes(protowire.AppendTag(b, frameReadingsField, protowire.BytesType), appendReading(nil, r))
	}
	return b
}

// validateBoth validates r with Validate and through the decoder (the wire
// form, as ingest validates), which must agree.
func validateBoth(t *testing.T, r *vppv1.Reading, lim Limits) (reason string, ok bool) {
	t.Helper()
	reason, ok = Validate(r, testNow, lim)
	d := newDecoder(1, lim)
	out, err := d.decode(frameOf(r), testNow.UnixMilli())
	if err != nil || len(out) != 1 {
		t.Fatalf("decode: %v, %d readings", err, len(out))
	}
	if got := out[0].reason.String(); got != reason {
		t.Fatalf("Validate says %q, the decoder %q", reason, got)
	}
	return reason, ok
}

func TestValidate(t *testing.T) {
	lim := DefaultLimits()
	tests := validateTests()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReading()
			tt.mut(r)
			reason, ok := validateBoth(t, r, lim)
			if tt.want == "" {
				if !ok || reason != "" {
					t.Fatalf("Validate = (%q, %v), want valid", reason, ok)
				}
				return
			}
			if ok || reason != tt.want {
				t.Fatalf("Validate = (%q, %v), want (%q, false)", reason, ok, tt.want)
			}
		})
	}
}

func TestValidateCustomLimits(t *testing.T) {
	lim := Limits{MaxClockSkew: time.Second, MaxAge: time.Minute, PowerTolerance: 0, MaxIDLength: 3}
	r := validReading()
	if reason, _ := validateBoth(t, r, lim); reason != ReasonDeviceIDTooLong {
		t.Fatalf("device id of 5 bytes with MaxIDLength 3: got %q", reason)
	}
	r = validReading()
	r.DeviceId, r.SiteId, r.SubstationId, r.RegionId = "d", "s", "b", "r"
	r.PowerKw = 5.0011
	if reason, _ := validateBoth(t, r, lim); reason != ReasonPowerAboveDischarge {
		t.Fatalf("power 5.0011 with zero tolerance: got %q", reason)
	}
	r.PowerKw = 5.0009
	if reason, ok := validateBoth(t, r, lim); !ok {
		t.Fatalf("power 5.0009 within absolute slack: got %q", reason)
	}
	r.TsMs = testNow.Add(2 * time.Second).UnixMilli()
	if reason, _ := validateBoth(t, r, lim); reason != ReasonTSTooFarAhead {
		t.Fatalf("ts 2s ahead with 1s skew: got %q", reason)
	}
}

func TestValidateAllocs(t *testing.T) {
	r := validReading()
	lim := DefaultLimits()
	bad := validReading()
	bad.SocPct = 150
	if n := testing.AllocsPerRun(100, func() {
		Validate(r, testNow, lim)
		Validate(bad, testNow, lim)
	}); n != 0 && !raceEnabled {
		t.Fatalf("Validate allocates %v times per run, want 0", n)
	}
}

func TestReasonNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := reason(1); i < numReasons; i++ {
		name := i.String()
		if name == "" || seen[name] {
			t.Fatalf("reason %d has empty or duplicate name %q", i, name)
		}
		seen[name] = true
	}
}
