package ingest

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/proto/vppv1"
)

// errTooManyReadings is returned by splitFrame when a frame holds more
// readings than allowed.
var errTooManyReadings = errors.New("too many readings in frame")

// Field numbers of the wire contract that the decoder reads directly.
const (
	frameReadingsField = 1 // Frame.readings
	readingDeviceField = 1 // Reading.device_id
	readingRegionField = 4 // Reading.region_id (fields 1..4 are the IDs)
	readingSeqField    = 5 // Reading.seq
)

// splitFrame appends to dst the serialized readings of a serialized Frame,
// as sub-slices of frame (no copy), and returns it. Unknown fields are
// skipped. It fails when frame is not well-formed protobuf or holds more
// than maxReadings readings (errTooManyReadings).
func splitFrame(dst [][]byte, frame []byte, maxReadings int) ([][]byte, error) {
	for len(frame) > 0 {
		num, typ, n := protowire.ConsumeTag(frame)
		if n < 0 {
			return dst, fmt.Errorf("frame tag: %w", protowire.ParseError(n))
		}
		frame = frame[n:]
		if num == frameReadingsField {
			if typ != protowire.BytesType {
				return dst, fmt.Errorf("frame readings: wire type %d, want bytes", typ)
			}
			v, n := protowire.ConsumeBytes(frame)
			if n < 0 {
				return dst, fmt.Errorf("frame reading: %w", protowire.ParseError(n))
			}
			if len(dst) >= maxReadings {
				return dst, errTooManyReadings
			}
			dst = append(dst, v)
			frame = frame[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, frame)
		if n < 0 {
			return dst, fmt.Errorf("frame field %d: %w", num, protowire.ParseError(n))
		}
		frame = frame[n:]
	}
	return dst, nil
}

// scanReading reads the device ID and seq of a serialized Reading without
// decoding it, and reports whether any of its four IDs is invalid UTF-8
// (proto.Unmarshal refuses such a message, but the contract wants it
// rejected with a reason, not the whole frame). The last occurrence of a
// field wins, as in protobuf.
func scanReading(b []byte) (device []byte, seq uint64, badUTF8 bool, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, false, fmt.Errorf("reading tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num >= readingDeviceField && num <= readingRegionField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, 0, false, fmt.Errorf("reading field %d: %w", num, protowire.ParseError(n))
			}
			if !utf8.Valid(v) {
				badUTF8 = true
			}
			if num == readingDeviceField {
				device = v
			}
			b = b[n:]
		case num == readingSeqField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, 0, false, fmt.Errorf("reading seq: %w", protowire.ParseError(n))
			}
			seq = v
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, 0, false, fmt.Errorf("reading field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return device, seq, badUTF8, nil
}

// decodedReading is the outcome of decoding and validating one reading.
type decodedReading struct {
	raw    []byte // the serialized reading, a sub-slice of the frame
	device string // device ID ("" when missing or not valid UTF-8)
	site   string // site ID (valid readings only)
	seq    uint64
	reason reason // reasonOK when valid
	// rawDevice is the device ID as sent, for the rejected record's header.
	rawDevice []byte
}

// idReason reports whether rs rejects a reading for one of its IDs
// (missing, too long or not UTF-8): such a reading cannot be authorized or
// rate limited by device.
func idReason(rs reason) bool { return rs >= rDeviceIDMissing && rs <= rIDInvalidUTF8 }

// decoder decodes and validates frames. It reuses its scratch space, so it
// belongs to one goroutine (one connection).
type decoder struct {
	maxReadings int
	limits      Limits
	raws        [][]byte
	out         []decodedReading
	scratch     vppv1.Reading
	unmarshal   proto.UnmarshalOptions
	// admit, when set, decides on every reading whose IDs are valid:
	// reasonOK, or a reason (not authorized, rate limited) that overrides
	// the content checks.
	admit func(device, site string, nowMS int64) reason
}

func newDecoder(maxReadings int, lim Limits) *decoder {
	return &decoder{maxReadings: maxReadings, limits: lim}
}

// decode splits a frame into readings and validates each one. The result
// is valid until the next call. An error means the frame as a whole is
// undecodable (or errTooManyReadings); nothing of it may be accepted then.
func (d *decoder) decode(frame []byte, nowMS int64) ([]decodedReading, error) {
	var err error
	d.raws, err = splitFrame(d.raws[:0], frame, d.maxReadings)
	if err != nil {
		return nil, err
	}
	d.out = d.out[:0]
	for _, raw := range d.raws {
		dev, seq, badUTF8, err := scanReading(raw)
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
			if err := d.unmarshal.Unmarshal(raw, &d.scratch); err != nil {
				return nil, fmt.Errorf("reading: %w", err)
			}
			dr.reason = validate(&d.scratch, nowMS, d.limits)
			dr.device = d.scratch.GetDeviceId()
			dr.site = d.scratch.GetSiteId()
			if d.admit != nil && !idReason(dr.reason) {
				if rs := d.admit(dr.device, dr.site, nowMS); rs != reasonOK {
					dr.reason = rs
				}
			}
		}
		d.out = append(d.out, dr)
	}
	return d.out, nil
}
