package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/vppctl/vpp/proto/vppv1"
)

func sample() *vppv1.Reading {
	return &vppv1.Reading{
		DeviceId: "dev-1", SiteId: "site-1", SubstationId: "sub-1", RegionId: "reg-1",
		Seq: 7, TsMs: 1_772_366_400_000,
		SocPct: 50, SohPct: 98, PowerKw: -2.5, VoltageV: 400, CurrentA: 6, TemperatureC: 25,
		CapacityKwh: 13.5, MaxChargeKw: 5, MaxDischargeKw: 5, Mode: vppv1.Mode_MODE_CHARGING,
		Alarms:     0b1001,
		SetpointId: "d-1", SetpointSeq: 3, SetpointKw: 2.5,
		SetpointState: vppv1.SetpointState_SETPOINT_STATE_CLAMPED, SetpointReason: vppv1.SetpointReason_SETPOINT_REASON_POWER_LIMIT,
	}
}

func marshal(t testing.TB, r *vppv1.Reading) []byte {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bytesReading is vpp.v1.Reading with its four string IDs declared as
// bytes: proto.Unmarshal into it parses exactly what Reading parses, minus
// the UTF-8 check. It is the oracle for what Parse returns with
// ErrInvalidUTF8.
func bytesReading(t testing.TB) protoreflect.MessageDescriptor {
	t.Helper()
	fdp := protodesc.ToFileDescriptorProto(vppv1.File_vpp_v1_telemetry_proto)
	fdp.Name = proto.String("vpp/v1/telemetry_bytes_test.proto")
	for _, m := range fdp.MessageType {
		if m.GetName() != "Reading" {
			continue
		}
		for _, f := range m.Field {
			if f.GetNumber() >= fieldDeviceID && f.GetNumber() <= fieldRegionID || f.GetNumber() == fieldSetpointID {
				f.Type = descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum()
			}
		}
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("Reading")
}

// fromBytesReading is the Reading that the oracle message m holds.
func fromBytesReading(m protoreflect.Message) Reading {
	fields := m.Descriptor().Fields()
	get := func(n protoreflect.FieldNumber) protoreflect.Value { return m.Get(fields.ByNumber(n)) }
	id := func(n protoreflect.FieldNumber) []byte {
		if b := get(n).Bytes(); len(b) > 0 {
			return b
		}
		return nil
	}
	return Reading{
		DeviceID: id(fieldDeviceID), SiteID: id(fieldSiteID),
		SubstationID: id(fieldSubstationID), RegionID: id(fieldRegionID),
		Seq: get(fieldSeq).Uint(), TsMs: get(fieldTsMs).Int(),
		SocPct: get(fieldSocPct).Float(), SohPct: get(fieldSohPct).Float(),
		PowerKw: get(fieldPowerKw).Float(), VoltageV: get(fieldVoltageV).Float(),
		CurrentA: get(fieldCurrentA).Float(), TemperatureC: get(fieldTemperatureC).Float(),
		CapacityKwh: get(fieldCapacityKwh).Float(), MaxChargeKw: get(fieldMaxChargeKw).Float(),
		MaxDischargeKw: get(fieldMaxDischargeKw).Float(),
		Mode:           vppv1.Mode(get(fieldMode).Enum()), Alarms: uint32(get(fieldAlarms).Uint()),
		SetpointID: id(fieldSetpointID), SetpointSeq: get(fieldSetpointSeq).Uint(),
		SetpointKw:     get(fieldSetpointKw).Float(),
		SetpointState:  vppv1.SetpointState(get(fieldSetpointState).Enum()),
		SetpointReason: vppv1.SetpointReason(get(fieldSetpointReason).Enum()),
	}
}

// same reports whether a and b hold the same values (floats bit for bit, an
// empty ID equal to a missing one).
func same(a, b *Reading) bool {
	fa := []float64{a.SocPct, a.SohPct, a.PowerKw, a.VoltageV, a.CurrentA, a.TemperatureC, a.CapacityKwh, a.MaxChargeKw, a.MaxDischargeKw, a.SetpointKw}
	fb := []float64{b.SocPct, b.SohPct, b.PowerKw, b.VoltageV, b.CurrentA, b.TemperatureC, b.CapacityKwh, b.MaxChargeKw, b.MaxDischargeKw, b.SetpointKw}
	for i := range fa {
		if math.Float64bits(fa[i]) != math.Float64bits(fb[i]) {
			return false
		}
	}
	return bytes.Equal(a.DeviceID, b.DeviceID) && bytes.Equal(a.SiteID, b.SiteID) &&
		bytes.Equal(a.SubstationID, b.SubstationID) && bytes.Equal(a.RegionID, b.RegionID) &&
		a.Seq == b.Seq && a.TsMs == b.TsMs && a.Mode == b.Mode && a.Alarms == b.Alarms &&
		bytes.Equal(a.SetpointID, b.SetpointID) && a.SetpointSeq == b.SetpointSeq &&
		a.SetpointState == b.SetpointState && a.SetpointReason == b.SetpointReason
}

// check compares Parse on b with proto.Unmarshal into a vppv1.Reading and
// into the bytes-typed oracle.
func check(t *testing.T, oracle protoreflect.MessageDescriptor, b []byte) {
	t.Helper()
	var got Reading
	err := got.Parse(b)

	var want vppv1.Reading
	perr := proto.Unmarshal(b, &want)
	dyn := dynamicpb.NewMessage(oracle)
	derr := proto.Unmarshal(b, dyn)

	switch {
	case err == nil:
		if perr != nil {
			t.Fatalf("Parse accepted %x, proto.Unmarshal failed: %v", b, perr)
		}
		var w Reading
		w.SetValues(&want)
		w.DeviceID, w.SiteID = []byte(want.GetDeviceId()), []byte(want.GetSiteId())
		w.SubstationID, w.RegionID = []byte(want.GetSubstationId()), []byte(want.GetRegionId())
		w.SetpointID = []byte(want.GetSetpointId())
		if !same(&got, &w) {
			t.Fatalf("Parse(%x) = %+v, proto.Unmarshal = %+v", b, got, w)
		}
	case errors.Is(err, ErrInvalidUTF8):
		if perr == nil {
			t.Fatalf("Parse(%x) reported invalid UTF-8, proto.Unmarshal accepted it", b)
		}
		if derr != nil {
			// As in ingest before Parse: a reading with an invalid ID is
			// rejected for it even with a field number beyond the maximum.
			if !bigField(b) {
				t.Fatalf("Parse(%x) reported invalid UTF-8 only, the bytes oracle failed: %v", b, derr)
			}
			return
		}
		if w := fromBytesReading(dyn); !same(&got, &w) {
			t.Fatalf("Parse(%x) = %+v, bytes oracle = %+v", b, got, w)
		}
	default:
		if perr == nil {
			t.Fatalf("Parse(%x) failed (%v), proto.Unmarshal accepted it", b, err)
		}
		// Malformed protobuf fails without the UTF-8 check too, except for
		// field numbers beyond the maximum (also refused by the oracle).
		if derr == nil {
			t.Fatalf("Parse(%x) failed (%v), the bytes oracle accepted it", b, err)
		}
	}
}

// bigField reports whether well-formed b has a top-level field number
// beyond protowire.MaxValidNumber.
func bigField(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		if num > protowire.MaxValidNumber {
			return true
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return false
}

// seeds are hand-made edge cases of the wire format.
func seeds(t testing.TB) [][]byte {
	good := marshal(t, sample())
	var out [][]byte
	add := func(b []byte) { out = append(out, b) }
	add(good)
	add(nil)
	add(marshal(t, &vppv1.Reading{}))
	add(marshal(t, &vppv1.Reading{Mode: vppv1.Mode(-1), Alarms: math.MaxUint32, TsMs: -5}))
	// Last occurrence wins: the reading twice, then a second device ID.
	twice := append(append([]byte{}, good...), good...)
	add(protowire.AppendString(protowire.AppendTag(twice, fieldDeviceID, protowire.BytesType), "dev-2"))
	// Invalid UTF-8 in each ID, in an earlier occurrence only, and in a
	// later one.
	for _, num := range []protowire.Number{fieldDeviceID, fieldSiteID, fieldSubstationID, fieldRegionID, fieldSetpointID} {
		b := protowire.AppendTag(append([]byte{}, good...), num, protowire.BytesType)
		add(protowire.AppendBytes(b, []byte("x\xff")))
		b = protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), []byte("\xc3\x28"))
		add(append(b, good...))
	}
	// Known fields with another wire type are skipped.
	b := protowire.AppendFixed64(protowire.AppendTag(nil, fieldSeq, protowire.Fixed64Type), 9)
	b = protowire.AppendVarint(protowire.AppendTag(b, fieldSocPct, protowire.VarintType), 12)
	b = protowire.AppendVarint(protowire.AppendTag(b, fieldDeviceID, protowire.VarintType), 1)
	b = protowire.AppendFixed32(protowire.AppendTag(b, fieldMode, protowire.Fixed32Type), 3)
	b = protowire.AppendBytes(protowire.AppendTag(b, fieldTsMs, protowire.BytesType), []byte("zz"))
	add(append(b, good...))
	// Unknown fields, a group among them.
	b = protowire.AppendVarint(protowire.AppendTag(append([]byte{}, good...), 99, protowire.VarintType), 1)
	b = protowire.AppendTag(b, 100, protowire.StartGroupType)
	b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 1)
	add(protowire.AppendTag(b, 100, protowire.EndGroupType))
	// Mismatched and stray end groups.
	add(protowire.AppendTag(protowire.AppendTag(nil, 100, protowire.StartGroupType), 101, protowire.EndGroupType))
	add(protowire.AppendTag(append([]byte{}, good...), 100, protowire.EndGroupType))
	// Field numbers: 0, the maximum, beyond it, beyond int32.
	add([]byte{0x00, 0x01})
	add(protowire.AppendVarint(protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.VarintType), 1))
	add(protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1))
	add(protowire.AppendVarint(protowire.AppendVarint(append([]byte{}, good...), uint64(math.MaxInt32)<<3), 1))
	add(protowire.AppendVarint(protowire.AppendVarint(nil, uint64(math.MaxInt32+1)<<3), 1))
	// A big field number together with an invalid ID.
	b = protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1)
	add(protowire.AppendBytes(protowire.AppendTag(b, fieldSiteID, protowire.BytesType), []byte{0xff}))
	// Truncations of the good reading, a 64-bit mode, an overlong varint.
	for i := 1; i < len(good); i += 7 {
		add(good[:i])
	}
	add(protowire.AppendVarint(protowire.AppendTag(nil, fieldMode, protowire.VarintType), 1<<40|3))
	add([]byte{0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	add([]byte{0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})
	add([]byte{0x28, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})
	// Wire types 6 and 7.
	add([]byte{0x0e, 0x00})
	add([]byte{0x0f, 0x00})
	return out
}

func TestParseMatchesUnmarshal(t *testing.T) {
	oracle := bytesReading(t)
	for _, b := range seeds(t) {
		check(t, oracle, b)
	}
}

func TestParseValues(t *testing.T) {
	want := sample()
	var r Reading
	if err := r.Parse(marshal(t, want)); err != nil {
		t.Fatal(err)
	}
	if got := r.ToProto(); !proto.Equal(got, want) {
		t.Fatalf("Parse = %v, want %v", got, want)
	}
	bad := protowire.AppendBytes(protowire.AppendTag(marshal(t, want), fieldDeviceID, protowire.BytesType), []byte("d\xff"))
	if err := r.Parse(bad); !errors.Is(err, ErrInvalidUTF8) || string(r.DeviceID) != "d\xff" || r.Seq != want.Seq {
		t.Fatalf("invalid device ID: err %v, device %q, seq %d", err, r.DeviceID, r.Seq)
	}
}

func TestParseAllocs(t *testing.T) {
	b := marshal(t, sample())
	var r Reading
	if n := testing.AllocsPerRun(100, func() {
		if err := r.Parse(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 && !raceEnabled {
		t.Fatalf("Parse allocates %v times, want 0", n)
	}
}

// FuzzParse compares Parse with proto.Unmarshal on any bytes.
func FuzzParse(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	oracle := bytesReading(f)
	f.Fuzz(func(t *testing.T, b []byte) { check(t, oracle, b) })
}

func BenchmarkParse(b *testing.B) {
	data := marshal(b, sample())
	var r Reading
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := r.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	data := marshal(b, sample())
	var r vppv1.Reading
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := proto.Unmarshal(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}
