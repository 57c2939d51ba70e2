package wire

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/vppctl/vpp/proto/vppv1"
)

// checkAppend compares AppendReading with proto.Marshal on r, after a
// prefix to show that it appends. proto.Marshal refuses IDs that are not
// valid UTF-8; those readings are compared with the bytes-typed oracle,
// which encodes the same fields without the check (deterministically:
// otherwise proto.Marshal of a dynamic message shuffles the field order on
// purpose).
func checkAppend(t testing.TB, oracle protoreflect.MessageDescriptor, r *vppv1.Reading) {
	t.Helper()
	prefix := []byte("prefix")
	got := AppendReading(append([]byte(nil), prefix...), r)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendReading(%v) overwrote its input: %x", r, got)
	}
	got = got[len(prefix):]

	want, err := proto.Marshal(r)
	valid := utf8.ValidString(r.GetDeviceId()) && utf8.ValidString(r.GetSiteId()) &&
		utf8.ValidString(r.GetSubstationId()) && utf8.ValidString(r.GetRegionId())
	switch {
	case valid && err != nil:
		t.Fatalf("proto.Marshal(%v): %v", r, err)
	case !valid && err == nil:
		t.Fatalf("proto.Marshal(%v) accepted invalid UTF-8", r)
	case !valid:
		if want, err = (proto.MarshalOptions{Deterministic: true}).Marshal(toBytesReading(oracle, r)); err != nil {
			t.Fatalf("bytes oracle (%v): %v", r, err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendReading(%v)\n = %x\nproto.Marshal\n = %x", r, got, want)
	}
}

// toBytesReading copies r into the bytes-typed oracle message, unknown
// fields included.
func toBytesReading(oracle protoreflect.MessageDescriptor, r *vppv1.Reading) proto.Message {
	dyn := dynamicpb.NewMessage(oracle)
	fields := oracle.Fields()
	r.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() == protoreflect.StringKind {
			v = protoreflect.ValueOfBytes([]byte(v.String()))
		}
		dyn.Set(fields.ByNumber(fd.Number()), v)
		return true
	})
	dyn.SetUnknown(r.ProtoReflect().GetUnknown())
	return dyn
}

// randomReading draws a reading that mixes ordinary values with the edges
// of each field's encoding: zero and negative zero, NaN and infinities,
// one- and multi-byte varints and lengths, non-ASCII and invalid UTF-8.
func randomReading(rng *rand.Rand) *vppv1.Reading {
	str := func() string {
		switch rng.IntN(8) {
		case 0:
			return ""
		case 1:
			return "Zürich-Süd ⚡🔋"
		case 2:
			return strings.Repeat("x", 127+rng.IntN(3)) // length varint of 1 or 2 bytes
		case 3:
			return strings.Repeat("é", 20000) // 3-byte length
		case 4:
			return "bad\xff" + "\xc3\x28"
		case 5:
			return "\x00"
		}
		return "dev-" + strings.Repeat("0", rng.IntN(8))
	}
	u64 := func() uint64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return 1 + rng.Uint64N(127)
		case 2:
			return 128
		case 3:
			return math.MaxUint64
		case 4:
			return 1 << rng.IntN(64)
		}
		return rng.Uint64()
	}
	f64 := func() float64 {
		switch rng.IntN(12) {
		case 0:
			return 0
		case 1:
			return math.Copysign(0, -1)
		case 2:
			return math.NaN()
		case 3:
			return math.Float64frombits(0x7ff0_0000_0000_0001 | rng.Uint64()&0x000f_ffff_ffff_ffff | rng.Uint64()&(1<<63)) // other NaNs
		case 4:
			return math.Inf(1)
		case 5:
			return math.Inf(-1)
		case 6:
			return math.MaxFloat64
		case 7:
			return -math.SmallestNonzeroFloat64
		case 8:
			return math.Float64frombits(rng.Uint64())
		}
		return rng.NormFloat64() * 100
	}
	modes := []vppv1.Mode{0, 1, 2, 3, 4, 5, 6, -1, math.MinInt32, math.MaxInt32, 127, 128}
	alarms := func() uint32 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return 1 << rng.IntN(5) // one flag
		case 2:
			return 0b11111 // every flag
		}
		return rng.Uint32()
	}
	return &vppv1.Reading{
		DeviceId: str(), SiteId: str(), SubstationId: str(), RegionId: str(),
		Seq: u64(), TsMs: int64(u64()),
		SocPct: f64(), SohPct: f64(), PowerKw: f64(), VoltageV: f64(), CurrentA: f64(),
		TemperatureC: f64(), CapacityKwh: f64(), MaxChargeKw: f64(), MaxDischargeKw: f64(),
		Mode: modes[rng.IntN(len(modes))], Alarms: alarms(),
	}
}

func TestAppendReadingMatchesMarshal(t *testing.T) {
	oracle := bytesReading(t)
	checkAppend(t, oracle, sample())
	checkAppend(t, oracle, &vppv1.Reading{})
	if got := AppendReading([]byte("x"), nil); string(got) != "x" {
		t.Fatalf("AppendReading(nil) = %q", got)
	}
	for mode := range vppv1.Mode_name {
		r := sample()
		r.Mode = vppv1.Mode(mode)
		checkAppend(t, oracle, r)
	}
	for alarm := range vppv1.Alarm_name {
		r := sample()
		r.Alarms = uint32(alarm)
		checkAppend(t, oracle, r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		checkAppend(t, oracle, randomReading(rng))
	}
}

// TestAppendReadingEveryField sets each field of vpp.v1.Reading through
// reflection, one at a time and all together, so that a field added to the
// .proto but not to AppendReading fails here.
func TestAppendReadingEveryField(t *testing.T) {
	oracle := bytesReading(t)
	fields := (&vppv1.Reading{}).ProtoReflect().Descriptor().Fields()
	value := func(fd protoreflect.FieldDescriptor) protoreflect.Value {
		if fd.Cardinality() == protoreflect.Repeated || fd.ContainingOneof() != nil {
			t.Fatalf("field %s: repeated, map or oneof fields are not covered by this test", fd.Name())
		}
		n := int64(fd.Number())
		switch fd.Kind() {
		case protoreflect.StringKind:
			return protoreflect.ValueOfString("id-" + string(fd.Name()))
		case protoreflect.Uint64Kind:
			return protoreflect.ValueOfUint64(uint64(n) << 40)
		case protoreflect.Int64Kind:
			return protoreflect.ValueOfInt64(-n << 40)
		case protoreflect.Uint32Kind:
			return protoreflect.ValueOfUint32(uint32(n) << 20)
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(float64(n) + 0.25)
		case protoreflect.EnumKind:
			return protoreflect.ValueOfEnum(fd.Enum().Values().Get(fd.Enum().Values().Len() - 1).Number())
		}
		t.Fatalf("field %s: kind %s is not covered by this test", fd.Name(), fd.Kind())
		return protoreflect.Value{}
	}
	all := &vppv1.Reading{}
	for i := range fields.Len() {
		fd := fields.Get(i)
		one := &vppv1.Reading{}
		one.ProtoReflect().Set(fd, value(fd))
		if b := AppendReading(nil, one); len(b) == 0 {
			t.Errorf("field %s is not encoded", fd.Name())
		}
		checkAppend(t, oracle, one)
		all.ProtoReflect().Set(fd, value(fd))
	}
	checkAppend(t, oracle, all)
}

// TestAppendReadingUnknownFields round-trips the parser's seeds that
// proto.Unmarshal accepts: unknown fields are kept and written last.
func TestAppendReadingUnknownFields(t *testing.T) {
	oracle := bytesReading(t)
	n := 0
	for _, b := range seeds(t) {
		var r vppv1.Reading
		if proto.Unmarshal(b, &r) != nil {
			continue
		}
		if len(r.ProtoReflect().GetUnknown()) > 0 {
			n++
		}
		checkAppend(t, oracle, &r)
	}
	if n == 0 {
		t.Fatal("no seed with unknown fields")
	}
}

func TestAppendReadingAllocs(t *testing.T) {
	r := sample()
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendReading(buf[:0], r) }); n != 0 && !raceEnabled {
		t.Fatalf("AppendReading allocates %v times, want 0", n)
	}
}

// FuzzAppendReading compares AppendReading with proto.Marshal on any
// field values.
func FuzzAppendReading(f *testing.F) {
	add := func(r *vppv1.Reading) {
		f.Add(r.DeviceId, r.SiteId, r.SubstationId, r.RegionId, r.Seq, r.TsMs,
			r.SocPct, r.SohPct, r.PowerKw, r.VoltageV, r.CurrentA, r.TemperatureC,
			r.CapacityKwh, r.MaxChargeKw, r.MaxDischargeKw, int32(r.Mode), r.Alarms)
	}
	add(sample())
	add(&vppv1.Reading{})
	rng := rand.New(rand.NewPCG(3, 4))
	for range 32 {
		add(randomReading(rng))
	}
	oracle := bytesReading(f)
	f.Fuzz(func(t *testing.T, dev, site, sub, reg string, seq uint64, ts int64,
		soc, soh, p, v, i, temp, capacity, maxCharge, maxDischarge float64, mode int32, alarms uint32) {
		checkAppend(t, oracle, &vppv1.Reading{
			DeviceId: dev, SiteId: site, SubstationId: sub, RegionId: reg, Seq: seq, TsMs: ts,
			SocPct: soc, SohPct: soh, PowerKw: p, VoltageV: v, CurrentA: i, TemperatureC: temp,
			CapacityKwh: capacity, MaxChargeKw: maxCharge, MaxDischargeKw: maxDischarge,
			Mode: vppv1.Mode(mode), Alarms: alarms,
		})
	})
}

func BenchmarkAppendReading(b *testing.B) {
	r := sample()
	buf := AppendReading(nil, r)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = AppendReading(buf[:0], r)
	}
}

func BenchmarkMarshal(b *testing.B) {
	r := sample()
	buf, err := proto.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], r); err != nil {
			b.Fatal(err)
		}
	}
}
