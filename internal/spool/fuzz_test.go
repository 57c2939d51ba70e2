package spool

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/vppctl/vpp/internal/buffer"
)

// FuzzSpoolRecordReader decodes arbitrary bytes as a segment's records:
// it must never panic, must stop at the first bad frame with errTorn or
// errCorrupt, and every record it accepts must encode back to the same
// frame.
func FuzzSpoolRecordReader(f *testing.F) {
	var valid []byte
	for i := range 3 {
		var err error
		if valid, err = appendRecord(valid, &rec(i*5, nil).Message); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := newRecordReader(bytes.NewReader(data), 0)
		var dec decoder
		for n := 0; ; n++ {
			start := rr.off
			p, frame, err := rr.next()
			if err == io.EOF {
				if rr.off != int64(len(data)) {
					t.Fatalf("EOF at %d of %d", rr.off, len(data))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, errTorn) && !errors.Is(err, errCorrupt) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				if rr.off != start {
					t.Fatalf("offset moved on error")
				}
				return
			}
			if frame != int64(len(p))+frameHeader || rr.off != start+frame {
				t.Fatalf("frame %d, payload %d, offset %d → %d", frame, len(p), start, rr.off)
			}
			var m buffer.Message
			if err := dec.decode(p, &m); err != nil {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("decode error kind: %v", err)
				}
				continue // a valid frame with an invalid payload
			}
			again, err := appendRecord(nil, &m)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(again)) != frameLen(&m) {
				t.Fatalf("frameLen %d, encoded %d", frameLen(&m), len(again))
			}
			var m2 buffer.Message
			if err := dec.decode(again[frameHeader:], &m2); err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
			if m2.Topic != m.Topic || !bytes.Equal(m2.Key, m.Key) || (m2.Key == nil) != (m.Key == nil) ||
				!bytes.Equal(m2.Value, m.Value) || len(m2.Headers) != len(m.Headers) {
				t.Fatalf("round trip changed the record: %+v → %+v", m, m2)
			}
		}
	})
}
