package ingest

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

func marshalFrame(t testing.TB, rs ...*vppv1.Reading) []byte {
	t.Helper()
	b, err := proto.Marshal(&vppv1.Frame{Readings: rs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFrame(t *testing.T) {
	good := validReading()
	bad := validReading()
	bad.Seq, bad.SocPct = 2, 150
	utf := validReading()
	utf.Seq, utf.DeviceId = 3, "DEVXX"
	frame := marshalFrame(t, good, bad, utf)
	// proto.Marshal refuses invalid UTF-8; patch the bytes on the wire.
	frame = bytes.Replace(frame, []byte("DEVXX"), []byte("\xff\xfeXXX"), 1)

	d := newDecoder(10, DefaultLimits())
	out, err := d.decode(frame, testNow.UnixMilli())
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(out) != 3 {
		t.Fatalf("got %d readings, want 3", len(out))
	}
	if out[0].reason != reasonOK || out[0].site != "site-1" || out[0].device != "dev-1" || out[0].seq != 1 {
		t.Errorf("reading 0: %+v", out[0])
	}
	if out[1].reason != rSoCOutOfRange || out[1].seq != 2 {
		t.Errorf("reading 1: reason %v seq %d", out[1].reason, out[1].seq)
	}
	if out[2].reason != rIDInvalidUTF8 || out[2].seq != 3 || out[2].device != "" || !bytes.Equal(out[2].rawDevice, []byte("\xff\xfeXXX")) {
		t.Errorf("reading 2: reason %v seq %d device %q raw %q", out[2].reason, out[2].seq, out[2].device, out[2].rawDevice)
	}
	var back vppv1.Reading
	if err := proto.Unmarshal(out[0].raw, &back); err != nil || !proto.Equal(&back, good) {
		t.Errorf("raw bytes of reading 0 do not decode to it: %v", err)
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	d := newDecoder(2, DefaultLimits())
	if _, err := d.decode([]byte{0xff, 0xff, 0xff}, testNow.UnixMilli()); err == nil {
		t.Error("garbage decoded without error")
	}
	if _, err := d.decode(marshalFrame(t, validReading(), validReading(), validReading()), testNow.UnixMilli()); !errors.Is(err, errTooManyReadings) {
		t.Errorf("3 readings with max 2: err %v, want errTooManyReadings", err)
	}
	// A reading whose nested bytes are not a message.
	if _, err := d.decode([]byte{0x0a, 0x02, 0x28, 0xff}, testNow.UnixMilli()); err == nil {
		t.Error("truncated varint inside a reading decoded without error")
	}
	// Unknown frame fields are skipped; an empty frame is fine.
	out, err := d.decode([]byte{0x10, 0x05}, testNow.UnixMilli())
	if err != nil || len(out) != 0 {
		t.Errorf("frame with an unknown field: %v, %d readings", err, len(out))
	}
}

// FuzzDecodeValidate: decoding and validating any bytes must never panic,
// and a frame that decodes yields readings whose raw bytes decode again.
func FuzzDecodeValidate(f *testing.F) {
	f.Add(marshalFrame(f, validReading()))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x0a, 0x02, 0x28, 0xff})
	d := newDecoder(100, DefaultLimits())
	now := testNow.UnixMilli()
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := d.decode(data, now)
		if err != nil {
			return
		}
		for _, r := range out {
			if r.reason >= numReasons {
				t.Fatalf("reason %d out of range", r.reason)
			}
			if r.reason == reasonOK && (r.device == "" || r.site == "" || r.seq == 0) {
				t.Fatalf("valid reading without IDs or seq: %+v", r)
			}
		}
	})
}

// BenchmarkDecodeValidate measures decode and validation per reading.
func BenchmarkDecodeValidate(b *testing.B) {
	rs := make([]*vppv1.Reading, 100)
	for i := range rs {
		r := validReading()
		r.Seq = uint64(i + 1)
		rs[i] = r
	}
	frame := marshalFrame(b, rs...)
	d := newDecoder(1000, DefaultLimits())
	now := testNow.UnixMilli()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) / len(rs)))
	b.ResetTimer()
	for i := 0; i < b.N; i += len(rs) {
		out, err := d.decode(frame, now)
		if err != nil || len(out) != len(rs) || out[0].reason != reasonOK {
			b.Fatalf("decode: %v", err)
		}
	}
}
