package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/smallmap"
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

// refDecode is how the decoder worked before it parsed readings itself:
// each reading scanned for its device, seq and UTF-8 validity, then
// proto.Unmarshal'ed and validated as a vppv1.Reading. The decoder must give
// the same outcome for any input.
func refDecode(frame []byte, maxReadings int, nowMS int64, lim Limits) ([]decodedReading, error) {
	raws, err := splitFrame(nil, frame, maxReadings)
	if err != nil {
		return nil, err
	}
	var out []decodedReading
	for _, raw := range raws {
		dev, seq, badUTF8, err := refScanReading(raw)
		if err != nil {
			return nil, err
		}
		dr := decodedReading{raw: raw, seq: seq, rawDevice: dev}
		if badUTF8 {
			dr.reason = rIDInvalidUTF8
			if utf8.Valid(dev) {
				dr.device = string(dev)
			}
		} else {
			var r vppv1.Reading
			if err := proto.Unmarshal(raw, &r); err != nil {
				return nil, fmt.Errorf("reading: %w", err)
			}
			dr.reason = validate(&r, nowMS, lim)
			dr.device = r.GetDeviceId()
			dr.site = r.GetSiteId()
		}
		out = append(out, dr)
	}
	return out, nil
}

func refScanReading(b []byte) (device []byte, seq uint64, badUTF8 bool, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, false, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num >= 1 && num <= 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, 0, false, protowire.ParseError(n)
			}
			if !utf8.Valid(v) {
				badUTF8 = true
			}
			if num == 1 {
				device = v
			}
			b = b[n:]
		case num == 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, 0, false, protowire.ParseError(n)
			}
			seq = v
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, 0, false, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return device, seq, badUTF8, nil
}

// checkDecode compares the decoder with refDecode on one frame.
func checkDecode(t *testing.T, d *decoder, data []byte, nowMS int64) {
	t.Helper()
	out, err := d.decode(data, nowMS)
	want, werr := refDecode(data, d.maxReadings, nowMS, d.limits)
	if (err == nil) != (werr == nil) || errors.Is(err, errTooManyReadings) != errors.Is(werr, errTooManyReadings) {
		t.Fatalf("decode(%x): err %v, reference %v", data, err, werr)
	}
	if err != nil {
		return
	}
	if len(out) != len(want) {
		t.Fatalf("decode(%x): %d readings, reference %d", data, len(out), len(want))
	}
	for i, r := range out {
		w := want[i]
		if r.reason >= numReasons {
			t.Fatalf("reason %d out of range", r.reason)
		}
		if r.reason == reasonOK && (r.device == "" || r.site == "" || r.seq == 0) {
			t.Fatalf("valid reading without IDs or seq: %+v", r)
		}
		if r.reason != w.reason || r.device != w.device || r.site != w.site || r.seq != w.seq ||
			!bytes.Equal(r.raw, w.raw) || !bytes.Equal(r.rawDevice, w.rawDevice) {
			t.Fatalf("decode(%x) reading %d = %+v, reference %+v", data, i, r, w)
		}
		if r.reason == reasonOK && string(r.siteKey) != r.site {
			t.Fatalf("site key %q, site %q", r.siteKey, r.site)
		}
	}
}

// FuzzDecodeValidate: decoding and validating any bytes must never panic,
// and must give what the decoder gave when it used proto.Unmarshal
// (refDecode): the same frame errors, and per reading the same reason,
// IDs and seq.
func FuzzDecodeValidate(f *testing.F) {
	f.Add(marshalFrame(f, validReading()))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x0a, 0x02, 0x28, 0xff})
	for _, r := range validateCases() {
		f.Add(frameOf(r))
	}
	lim := DefaultLimits()
	lim.MaxIDLength = 8 // so that the fuzzer finds IDs too long
	d := newDecoder(100, lim)
	now := testNow.UnixMilli()
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, d, data, now) })
}

func TestDecodeMatchesReference(t *testing.T) {
	d := newDecoder(100, DefaultLimits())
	now := testNow.UnixMilli()
	var all []byte
	for _, r := range validateCases() {
		checkDecode(t, d, frameOf(r), now)
		all = append(all, frameOf(r)...)
	}
	checkDecode(t, d, all, now)
}

// TestDecodeInterns: the IDs of known devices and sites cost no
// allocation, and the intern table stays bounded.
func TestDecodeInterns(t *testing.T) {
	d := newDecoder(10, DefaultLimits())
	frame := marshalFrame(t, validReading())
	now := testNow.UnixMilli()
	if n := testing.AllocsPerRun(100, func() {
		if out, err := d.decode(frame, now); err != nil || out[0].reason != reasonOK {
			t.Fatalf("decode: %v", err)
		}
	}); n != 0 && !raceEnabled {
		t.Fatalf("decode of a known device allocates %v times, want 0", n)
	}
	for i := range 3 * maxInterned {
		r := validReading()
		r.DeviceId = fmt.Sprintf("dev-%d", i)
		out, err := d.decode(marshalFrame(t, r), now)
		if err != nil || out[0].device != r.DeviceId {
			t.Fatalf("decode %s: %v %+v", r.DeviceId, err, out)
		}
		if d.devs.Len() > maxInterned || len(d.ids) > maxSites {
			t.Fatalf("%d device IDs and %d site IDs interned, limits %d and %d", d.devs.Len(), len(d.ids), maxInterned, maxSites)
		}
	}
}

// TestDecodeFewDevices: a connection's first smallmap.MaxFew devices
// are interned without maps, a device more moves them all into the maps
// with the same entries (their rate buckets and ack states stay attached),
// and devices of one site share its site ID either way.
func TestDecodeFewDevices(t *testing.T) {
	d := newDecoder(10, DefaultLimits())
	now := testNow.UnixMilli()
	entries := map[string]*devEntry{}
	read := func(id, site string) decodedReading {
		t.Helper()
		r := validReading()
		r.DeviceId, r.SiteId = id, site
		out, err := d.decode(marshalFrame(t, r), now)
		if err != nil || len(out) != 1 || out[0].reason != reasonOK || out[0].device != id || out[0].site != site {
			t.Fatalf("decode %s@%s: %v %+v", id, site, err, out)
		}
		if e := entries[id]; e != nil && out[0].dev != e {
			t.Fatalf("device %s got a new entry", id)
		}
		entries[id] = out[0].dev
		return out[0]
	}
	var first decodedReading
	for i := range smallmap.MaxFew {
		dr := read(fmt.Sprintf("dev-%d", i), "site-a")
		if i == 0 {
			first = dr
		} else if unsafe.StringData(dr.site) != unsafe.StringData(first.site) {
			t.Fatalf("device %d of site-a holds a site ID of its own", i)
		}
	}
	if d.devs.Mapped() || d.ids != nil || d.devs.Len() != smallmap.MaxFew {
		t.Fatalf("%d devices: maps made (devs %v, ids %v), %d devices", smallmap.MaxFew, d.devs.Mapped(), d.ids != nil, d.devs.Len())
	}
	known := validReading()
	known.DeviceId, known.SiteId = "dev-3", "site-a"
	frame := marshalFrame(t, known)
	if n := testing.AllocsPerRun(20, func() {
		if out, err := d.decode(frame, now); err != nil || out[0].dev != entries["dev-3"] {
			t.Fatalf("decode dev-3: %v", err)
		}
	}); n != 0 && !raceEnabled {
		t.Fatalf("a known device among few allocates %v times", n)
	}
	more := read("dev-more", "site-a")
	if !d.devs.Mapped() || d.devs.Len() != smallmap.MaxFew+1 {
		t.Fatalf("after %d devices: mapped %v, devs %d", smallmap.MaxFew+1, d.devs.Mapped(), d.devs.Len())
	}
	if unsafe.StringData(more.site) != unsafe.StringData(first.site) {
		t.Fatal("the first device in the maps did not get the interned site ID")
	}
	for i := range smallmap.MaxFew {
		read(fmt.Sprintf("dev-%d", i), "site-a")
	}
	read("dev-0", "site-b") // a device that moves site keeps its entry
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
